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

    /// Appends columns: `headers` to the header row and `cells[i]` to data row `i` (`-o wide`).
    pub fn widen(&mut self, headers: &[&str], cells: Vec<Vec<String>>) {
        if let Some(header) = self.rows.first_mut() {
            header.extend(headers.iter().map(|h| h.to_string()));
        }
        for (row, extra) in self.rows.iter_mut().skip(1).zip(cells) {
            row.extend(extra);
        }
    }

    /// Each column's width as [`Table::render`] pads it.
    pub fn widths(&self) -> Vec<usize> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        widths
    }

    /// The data rows only, padded to at least `min_widths` (a watch's later rows line up under
    /// the table printed first).
    pub fn render_rows(&self, min_widths: &[usize]) -> String {
        let mut widths = self.widths();
        for (w, min) in widths.iter_mut().zip(min_widths) {
            *w = (*w).max(*min);
        }
        self.rows.iter().skip(1).map(|row| line(row, &widths)).collect()
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
        let widths = self.widths();
        self.rows.iter().map(|row| line(row, &widths)).collect()
    }
}

/// One row padded to `widths`, ending in `\n`.
fn line(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, width) in widths.iter().enumerate() {
        let cell = row.get(i).map(String::as_str).unwrap_or("");
        line.push_str(cell);
        if i + 1 < widths.len() {
            line.push_str(&" ".repeat(width.saturating_sub(cell.chars().count()) + 3));
        }
    }
    let mut line = line.trim_end().to_string();
    line.push('\n');
    line
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

    #[test]
    fn wider_tables_get_more_columns_and_later_rows_line_up_with_earlier_ones() {
        let mut t = Table::new(&["NAME", "READY"]);
        t.row(vec!["chat".into(), "2/2".into()]);
        t.widen(&["LABELS"], vec![vec!["team=demo".into()]]);
        assert_eq!(t.render(), "NAME   READY   LABELS\nchat   2/2     team=demo\n");
        let mut later = Table::new(&["NAME", "READY"]);
        later.row(vec!["a".into(), "0/2".into()]);
        assert_eq!(later.render_rows(&t.widths()), "a      0/2\n");
    }
}
