//! An incremental server-sent-events decoder: bytes in, in whatever pieces the network delivers
//! them, whole events out.
//!
//! It follows the SSE framing rules that matter for engines: lines end in `\n`, `\r\n` or `\r`
//! (even when a chunk splits the pair), an event ends at a blank line, several `data:` lines
//! join with `\n`, `:` lines are comments, one space after the colon is dropped. Besides `data`
//! it reports llama-server's non-standard `error:` lines, which older builds send instead of
//! `data:` for an error in mid-stream. `event:`, `id:` and `retry:` are ignored: no engine we
//! speak to uses them to carry tokens.
//!
//! It owns two buffers and reuses them: decoding allocates only when an event is larger than
//! any before it. It knows nothing of JSON or of any engine.

/// The most bytes one line or one event may hold; beyond it the peer is not speaking SSE.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// Which field an event's payload came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `data:` lines.
    Data,
    /// llama-server's `error:` lines (at least one was present).
    Error,
}

/// One complete event; it borrows the decoder until the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// Where the payload came from.
    pub kind: EventKind,
    /// The payload, lines joined with `\n`, without the field names.
    pub data: &'a [u8],
}

/// The stream is not SSE as far as we can tell.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an event or line passed {MAX_EVENT_BYTES} bytes without ending")]
pub struct EventTooLarge;

/// Turns byte chunks into events. Feed it with [`push`](Self::push), drain it with
/// [`next_event`](Self::next_event) until `None`, and call [`end`](Self::end) at the end of
/// input.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Received bytes; `buf[pos..]` is not yet decoded.
    buf: Vec<u8>,
    pos: usize,
    /// The payload of the event being assembled.
    data: Vec<u8>,
    has_data: bool,
    kind: Option<EventKind>,
    /// `data` was handed out and must be cleared before the next event.
    dispatched: bool,
    /// No more input will come.
    ended: bool,
}

impl SseDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk. Call [`next_event`](Self::next_event) until it returns `None` first:
    /// this is where decoded bytes are dropped.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), EventTooLarge> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Marks the end of input: a trailing `\r` ends its line, and an event whose lines all
    /// arrived is dispatched even without its blank line. An unterminated last line is dropped
    /// (the peer was cut off in the middle of it).
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The next complete event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Result<Option<SseEvent<'_>>, EventTooLarge> {
        if self.dispatched {
            self.dispatched = false;
            self.data.clear();
            self.has_data = false;
            self.kind = None;
        }
        loop {
            let rest = &self.buf[self.pos..];
            let Some(at) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if self.ended && self.has_data {
                    return Ok(Some(self.dispatch()));
                }
                return Ok(None);
            };
            let line_end = self.pos + at;
            let next = match (rest[at], rest.get(at + 1)) {
                (b'\r', Some(b'\n')) => line_end + 2,
                // A `\r` at the end of the bytes so far may be the first half of `\r\n`.
                (b'\r', None) if !self.ended => return Ok(None),
                _ => line_end + 1,
            };
            let line = self.pos..line_end;
            self.pos = next;
            if line.is_empty() {
                if self.has_data {
                    return Ok(Some(self.dispatch()));
                }
                continue;
            }
            self.field(line)?;
        }
    }

    fn dispatch(&mut self) -> SseEvent<'_> {
        self.dispatched = true;
        SseEvent {
            kind: self.kind.unwrap_or(EventKind::Data),
            data: &self.data,
        }
    }

    /// Reads one non-empty line `buf[line]`.
    fn field(&mut self, line: std::ops::Range<usize>) -> Result<(), EventTooLarge> {
        let line = &self.buf[line];
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return Ok(()),
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let kind = match name {
            b"data" => EventKind::Data,
            b"error" => EventKind::Error,
            _ => return Ok(()),
        };
        if self.data.len() + value.len() >= MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        if self.has_data {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
        self.has_data = true;
        if self.kind != Some(EventKind::Error) {
            self.kind = Some(kind);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `chunks` in order, draining after each, then ends the input.
    fn decode(chunks: &[&[u8]]) -> Vec<(EventKind, String)> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        let mut drain = |decoder: &mut SseDecoder| {
            while let Some(event) = decoder.next_event().unwrap() {
                events.push((event.kind, String::from_utf8(event.data.to_vec()).unwrap()));
            }
        };
        for chunk in chunks {
            decoder.push(chunk).unwrap();
            drain(&mut decoder);
        }
        decoder.end();
        drain(&mut decoder);
        events
    }

    fn data(texts: &[&str]) -> Vec<(EventKind, String)> {
        texts.iter().map(|t| (EventKind::Data, (*t).to_owned())).collect()
    }

    const STREAM: &[u8] =
        b"data: {\"content\":\" a\"}\n\ndata: {\"content\":\" b\"}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n";

    #[test]
    fn every_split_point_gives_the_same_events() {
        let expected = data(&[r#"{"content":" a"}"#, r#"{"content":" b"}"#, "[DONE]"]);
        assert_eq!(decode(&[STREAM]), expected);
        for at in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(at);
            assert_eq!(decode(&[a, b]), expected, "split at {at}");
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(decode(&bytes), expected, "byte by byte");
    }

    #[test]
    fn carriage_returns_end_lines_even_split_from_their_line_feed() {
        let expected = data(&["x", "y"]);
        assert_eq!(decode(&[b"data: x\r", b"\n\r", b"\ndata: y\r\r"]), expected);
        assert_eq!(decode(&[b"data: x\r\rdata: y\r\r"]), expected);
    }

    #[test]
    fn data_lines_join_and_other_fields_are_ignored() {
        let events = decode(&[b"event: message\nid: 7\nretry: 10\ndata: {\"a\":\ndata:1}\n\n"]);
        assert_eq!(events, data(&["{\"a\":\n1}"]));
        assert_eq!(decode(&[b"data:no-space\n\n"]), data(&["no-space"]));
        assert_eq!(
            decode(&[b"id: 1\n\n\n\n"]),
            Vec::new(),
            "events without data are dropped"
        );
    }

    #[test]
    fn llama_server_error_lines_are_reported_as_errors() {
        let events = decode(&[b"data: {\"content\":\"a\"}\n\nerror: {\"code\":500}\n\n"]);
        assert_eq!(
            events,
            vec![
                (EventKind::Data, r#"{"content":"a"}"#.to_owned()),
                (EventKind::Error, r#"{"code":500}"#.to_owned()),
            ]
        );
    }

    #[test]
    fn at_the_end_whole_lines_count_and_a_cut_line_does_not() {
        assert_eq!(decode(&[b"data: [DONE]\n"]), data(&["[DONE]"]));
        assert_eq!(decode(&[b"data: [DONE]"]), Vec::new());
        assert_eq!(decode(&[b"data: a\n\ndata: {\"cont"]), data(&["a"]));
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut decoder = SseDecoder::new();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..10 {
            result = decoder.push(&chunk);
            assert_eq!(decoder.next_event().map(|e| e.is_none()), Ok(true));
        }
        assert_eq!(result, Err(EventTooLarge));
    }

    #[test]
    fn buffers_are_reused_across_events() {
        let mut decoder = SseDecoder::new();
        let event = b"data: {\"content\":\" token\"}\n\n";
        decoder.push(event).unwrap();
        while decoder.next_event().unwrap().is_some() {}
        let capacities = (decoder.buf.capacity(), decoder.data.capacity());
        for _ in 0..1_000 {
            decoder.push(event).unwrap();
            while decoder.next_event().unwrap().is_some() {}
        }
        assert_eq!((decoder.buf.capacity(), decoder.data.capacity()), capacities);
    }
}
