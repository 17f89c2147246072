//! Aligned text tables like kubectl's: a header row, columns padded to their widest cell with
//! three spaces between them, no trailing spaces.

/// A table being built.
#[derive(Clone, Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row; missing cells print empty, extra cells are kept.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Data rows (without the header).
    pub fn len(&self) -> usize {
        self.rows.len().saturating_sub(1)
    }

    /// True without data rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text, one line per row, each ending in `\n`.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                line.push_str(cell);
                if i + 1 < columns {
                    line.push_str(&" ".repeat(width - cell.chars().count() + 3));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_their_widest_cell_without_trailing_spaces() {
        let mut t = Table::new(&["NAME", "READY"]);
        t.row(vec!["chat".into(), "2/2".into()]);
        t.row(vec!["a-longer-name".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NAME            READY\nchat            2/2\na-longer-name\n"
        );
        assert_eq!(t.len(), 2);
    }
}
