//! A small server-sent-events parser for task streams: bytes in, in whatever chunks the
//! network delivers, `(event, data)` pairs out. It knows only what llama-orchd sends: `event:`
//! and `data:` fields (several `data:` lines join with `\n`), `:` comments (keep-alives), and
//! lines ended by `\n`, `\r\n` or `\r`. `id:` and `retry:` are ignored: a task stream is not
//! resumable.

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when none was given, as in browsers).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` at the start of the next one belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// An empty parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk and returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.line_done(&line) {
                        out.push(ev);
                    }
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| SseEvent {
                event: event.unwrap_or_else(|| "message".to_string()),
                data,
            });
        }
        if line.first() == Some(&b':') {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match self.data.as_mut() {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: started\ndata: {\"queue_position\":0}\n\n: keep-alive\n\n\
                          event: token\r\ndata: {\"t\":\"Hi\",\"i\":0}\r\n\r\n\
                          event: end\rdata: a\rdata: b\r\r";

    fn expected() -> Vec<SseEvent> {
        let ev = |e: &str, d: &str| SseEvent {
            event: e.into(),
            data: d.into(),
        };
        vec![
            ev("started", "{\"queue_position\":0}"),
            ev("token", "{\"t\":\"Hi\",\"i\":0}"),
            ev("end", "a\nb"),
        ]
    }

    #[test]
    fn events_comments_and_every_line_ending_parse_in_one_chunk() {
        assert_eq!(SseParser::new().push(STREAM.as_bytes()), expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        for split in 0..=bytes.len() {
            let mut p = SseParser::new();
            let mut got = p.push(&bytes[..split]);
            got.extend(p.push(&bytes[split..]));
            assert_eq!(got, expected(), "split at {split}");
        }
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_a_nameless_one_is_a_message() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: lonely\n\n").is_empty());
        assert_eq!(
            p.push(b"data:x\n\n"),
            vec![SseEvent {
                event: "message".into(),
                data: "x".into()
            }]
        );
    }
}
