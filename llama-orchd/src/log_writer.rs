//! Where the daemon's log lines go: appended to a memory buffer by the thread that logs (a
//! copy), and written to stderr by a background thread [`FLUSH_EVERY`] after the first line
//! it has not written yet, and at exit. Requests never wait for the terminal or the disk; a
//! task's lines stay in order (one buffer, appended under one lock). The thread sleeps while
//! there is nothing to write: an idle daemon has no timer firing (it used to wake 100 times a
//! second), and a busy one wakes it at most once per [`FLUSH_EVERY`] (the line that finds the
//! buffer empty does).
//!
//! Why not `tracing-appender`'s non-blocking writer: it hands each line to its thread through a
//! channel and wakes that thread per line; on a loaded 2-core host that wake-up sat on every
//! task's path four times (measured in docs/benchmarks.md). Lines written in the last
//! [`FLUSH_EVERY`] before a SIGKILL are lost; a normal exit flushes them.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How often buffered lines are written out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// Buffered lines beyond this are written by the logging thread itself (a burst must not
/// grow memory without bound).
const MAX_BUFFERED: usize = 4 << 20;

#[derive(Default)]
struct Shared {
    buffer: Mutex<Buffer>,
    /// Signalled by the first line into an empty buffer, and by the stop.
    wake: Condvar,
}

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    stopping: bool,
}

/// The writer the subscriber logs through. Cheap to clone.
#[derive(Clone)]
pub struct BufferedStderr {
    shared: Arc<Shared>,
}

/// Flushes what is left and stops the background thread when dropped (keep it alive in
/// `main`).
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The writer and the guard that owns its background thread.
pub fn buffered_stderr() -> (BufferedStderr, FlushGuard) {
    let shared = Arc::new(Shared::default());
    let flusher = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("llama-orchd-log".into())
        .spawn(move || flush_loop(&flusher))
        .ok();
    (
        BufferedStderr {
            shared: Arc::clone(&shared),
        },
        FlushGuard { shared, thread },
    )
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Buffer> {
    shared.buffer.lock().unwrap_or_else(|p| p.into_inner())
}

fn flush_loop(shared: &Shared) {
    let mut out = Vec::new();
    loop {
        let stopping = {
            // Asleep, without a timer, until there is a line (or the stop)...
            let buffer = shared
                .wake
                .wait_while(lock(shared), |b| b.bytes.is_empty() && !b.stopping)
                .unwrap_or_else(|p| p.into_inner());
            // ...then the lines of the next FLUSH_EVERY join it (the stop cuts that short).
            let (mut buffer, _) = shared
                .wake
                .wait_timeout_while(buffer, FLUSH_EVERY, |b| !b.stopping)
                .unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut out, &mut buffer.bytes);
            buffer.stopping
        };
        if !out.is_empty() {
            let _ = io::stderr().lock().write_all(&out);
            out.clear();
        }
        if stopping {
            return;
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        lock(&self.shared).stopping = true;
        self.shared.wake.notify_all();
        match self.thread.take() {
            Some(thread) => {
                let _ = thread.join();
            }
            // No thread could be started: write what was buffered here.
            None => {
                let bytes = std::mem::take(&mut lock(&self.shared).bytes);
                let _ = io::stderr().lock().write_all(&bytes);
            }
        }
    }
}

impl Write for BufferedStderr {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut buffer = lock(&self.shared);
        if buffer.bytes.len() + data.len() > MAX_BUFFERED {
            let bytes = std::mem::take(&mut buffer.bytes);
            drop(buffer);
            let mut err = io::stderr().lock();
            err.write_all(&bytes)?;
            err.write_all(data)?;
            return Ok(data.len());
        }
        let first = buffer.bytes.is_empty();
        buffer.bytes.extend_from_slice(data);
        drop(buffer);
        if first {
            self.shared.wake.notify_one();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = BufferedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Whether text log lines carry ANSI colours: only when stderr is a terminal and `NO_COLOR`
/// (<https://no-color.org>: set and not empty) does not say otherwise. A file, a pipe or the
/// journal gets plain text.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_in_order_and_the_guard_flushes_them() {
        let (writer, guard) = buffered_stderr();
        let mut w = writer.make_writer();
        for i in 0..3 {
            let _ = writeln!(w, "line {i}");
        }
        assert!(
            std::str::from_utf8(&lock(&writer.shared).bytes)
                .is_ok_and(|s| s == "line 0\nline 1\nline 2\n" || s.is_empty()),
            "buffered in order (or already flushed)"
        );
        drop(guard);
        assert!(lock(&writer.shared).bytes.is_empty(), "the guard wrote everything out");
    }

    #[test]
    fn a_line_is_written_out_without_a_stop() {
        let (writer, _guard) = buffered_stderr();
        let _ = writeln!(writer.make_writer(), "one line");
        // The flusher wakes for it and empties the buffer within about FLUSH_EVERY.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !lock(&writer.shared).bytes.is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line was never flushed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod colour_tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn text_logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset");
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None), "a file or a pipe gets plain text");
    }
}
