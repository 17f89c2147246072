//! The one line of progress `orchctl run` keeps on stderr while a task waits. On a terminal it
//! is rewritten in place (`\r`, erase line) and erased when tokens start; otherwise (a file, a
//! pipe, a test) each distinct state is written once as a plain line.

use crate::Io;

/// Milliseconds as people read them: `450 ms`, `1.8 s`.
pub fn ms(n: u64) -> String {
    if n < 1000 {
        format!("{n} ms")
    } else {
        format!("{:.1} s", n as f64 / 1000.0)
    }
}

/// What a waiting task looks like.
pub fn queued_text(pool: &str, position: u32, predicted_start_ms: u64) -> String {
    match (position, predicted_start_ms) {
        (0, 0) => format!("starting on pool {pool}…"),
        (0, p) => format!("next in line on pool {pool}; predicted start in ~{}", ms(p)),
        (n, p) => format!(
            "queued on pool {pool}: {n} task(s) ahead; predicted start in ~{}",
            ms(p)
        ),
    }
}

/// The progress line.
#[derive(Debug)]
pub struct StatusLine {
    tty: bool,
    shown: Option<String>,
}

impl StatusLine {
    /// A line for a terminal (`tty`) or for plain output.
    pub fn new(tty: bool) -> Self {
        Self { tty, shown: None }
    }

    /// Shows the queue position.
    pub fn queued(
        &mut self,
        io: &mut Io<'_>,
        pool: &str,
        position: u32,
        predicted_start_ms: u64,
    ) -> std::io::Result<()> {
        self.show(io, queued_text(pool, position, predicted_start_ms))
    }

    /// Replaces the line with `text`.
    pub fn show(&mut self, io: &mut Io<'_>, text: String) -> std::io::Result<()> {
        if self.shown.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        if self.tty {
            write!(io.err, "\r\x1b[2K{text}")?;
        } else {
            writeln!(io.err, "{text}")?;
        }
        io.err.flush()?;
        self.shown = Some(text);
        Ok(())
    }

    /// Erases the line (on a terminal); nothing is shown afterwards.
    pub fn clear(&mut self, io: &mut Io<'_>) -> std::io::Result<()> {
        if self.shown.take().is_some() && self.tty {
            write!(io.err, "\r\x1b[2K")?;
            io.err.flush()?;
        }
        Ok(())
    }

    /// A line that stays.
    pub fn note(&mut self, io: &mut Io<'_>, text: &str) -> std::io::Result<()> {
        self.clear(io)?;
        writeln!(io.err, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_io(f: impl FnOnce(&mut Io<'_>)) -> String {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input: &[u8] = b"";
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            input: &mut input,
            err_tty: false,
        };
        f(&mut io);
        String::from_utf8(err).unwrap()
    }

    #[test]
    fn plain_output_writes_each_distinct_state_once() {
        let err = with_io(|io| {
            let mut line = StatusLine::new(false);
            line.queued(io, "chat", 2, 1800).unwrap();
            line.queued(io, "chat", 2, 1800).unwrap();
            line.queued(io, "chat", 0, 400).unwrap();
            line.clear(io).unwrap();
        });
        assert_eq!(
            err,
            "queued on pool chat: 2 task(s) ahead; predicted start in ~1.8 s\n\
             next in line on pool chat; predicted start in ~400 ms\n"
        );
    }

    #[test]
    fn a_terminal_line_is_rewritten_in_place_and_erased() {
        let err = with_io(|io| {
            let mut line = StatusLine::new(true);
            line.queued(io, "chat", 1, 900).unwrap();
            line.queued(io, "chat", 0, 0).unwrap();
            line.clear(io).unwrap();
        });
        assert_eq!(
            err,
            "\r\x1b[2Kqueued on pool chat: 1 task(s) ahead; predicted start in ~900 ms\
             \r\x1b[2Kstarting on pool chat…\r\x1b[2K"
        );
    }
}
