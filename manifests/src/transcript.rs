//! A job record's transcript: a task stream's native SSE text (`event: <name>\ndata: <json>\n\n`
//! …), held as that text and written on the wire as an array of `{event, data}` objects.
//!
//! Held as text because that is how it is captured (the frames a native client reads, appended
//! as they are sent) and how it is compared: a record is written without splitting the text
//! into owned events first, and read back into the same text. The wire form is the array
//! (`TranscriptEvent`s), so a reader of a stored record sees the same JSON either way.

use std::fmt;

use schemars::JsonSchema;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One SSE event of a task stream: its name and its `data` line, byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptEvent {
    /// `started`, `metrics`, `token`, `end` or `error`.
    pub event: String,
    /// The `data:` payload as written.
    pub data: String,
}

/// One event of a [`Transcript`], borrowed from its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EventRef<'a> {
    /// The event's name (empty when the block named none).
    pub event: &'a str,
    /// Its `data:` payload.
    pub data: &'a str,
}

impl From<EventRef<'_>> for TranscriptEvent {
    fn from(e: EventRef<'_>) -> Self {
        TranscriptEvent {
            event: e.event.to_string(),
            data: e.data.to_string(),
        }
    }
}

/// A task stream's native SSE text; see the module docs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    sse: String,
}

impl Transcript {
    /// The transcript of native SSE `bytes` as a stream wrote them (bytes that are not UTF-8,
    /// which the daemon never writes, are replaced).
    pub fn from_sse(bytes: Vec<u8>) -> Self {
        let sse = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Transcript { sse }
    }

    /// The SSE text.
    pub fn as_sse(&self) -> &str {
        &self.sse
    }

    /// Its events in order; blocks without a `data:` line (comments, keep-alives) are left out.
    pub fn events(&self) -> impl Iterator<Item = EventRef<'_>> {
        blocks(&self.sse).filter_map(event_of)
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events().count()
    }

    /// True when it holds no event.
    pub fn is_empty(&self) -> bool {
        self.events().next().is_none()
    }

    /// Keeps the first `n` token events (what a canceled task's client was let read) and every
    /// other event before the cut.
    pub fn keep_tokens(&mut self, n: u32) {
        let mut seen = 0u32;
        let mut at = 0;
        let mut cut = None;
        for block in blocks(&self.sse) {
            if event_of(block).is_some_and(|e| e.event == "token") {
                seen += 1;
                if seen > n {
                    cut = Some(at);
                    break;
                }
            }
            at += block.len() + SEPARATOR.len();
        }
        if let Some(cut) = cut {
            // Blocks before the cut each ended with a separator: `cut` is within the text.
            self.sse.truncate(cut);
        }
    }
}

impl From<&[TranscriptEvent]> for Transcript {
    fn from(events: &[TranscriptEvent]) -> Self {
        let mut sse = String::new();
        for e in events {
            if !e.event.is_empty() {
                sse.push_str("event: ");
                sse.push_str(&e.event);
                sse.push('\n');
            }
            sse.push_str("data: ");
            sse.push_str(&e.data);
            sse.push_str("\n\n");
        }
        Transcript { sse }
    }
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.events()).finish()
    }
}

impl Serialize for Transcript {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for e in self.events() {
            seq.serialize_element(&e)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Transcript {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let events = Vec::<TranscriptEvent>::deserialize(d)?;
        Ok(Transcript::from(events.as_slice()))
    }
}

impl JsonSchema for Transcript {
    fn inline_schema() -> bool {
        <Vec<TranscriptEvent>>::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        <Vec<TranscriptEvent>>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <Vec<TranscriptEvent>>::json_schema(generator)
    }
}

/// What ends an SSE event.
const SEPARATOR: &str = "\n\n";

/// The blocks of `sse`, each without its separator.
fn blocks(sse: &str) -> impl Iterator<Item = &str> {
    sse.split(SEPARATOR)
}

/// The event a block holds: its last `event:` and `data:` lines; none without a `data:` line.
fn event_of(block: &str) -> Option<EventRef<'_>> {
    let mut event = "";
    let mut data = None;
    for line in block.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event = name;
        } else if let Some(d) = line.strip_prefix("data: ") {
            data = Some(d);
        }
    }
    data.map(|data| EventRef { event, data })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SSE: &str = "event: started\ndata: {\"queue_position\":0}\n\n\
                       event: token\ndata: {\"t\":\"a\\n\",\"i\":0}\n\n\
                       : keep-alive\n\n\
                       event: token\ndata: {\"t\":\"b\",\"i\":1}\n\n\
                       event: end\ndata: {\"tokens_out\":2}\n\n";

    fn ev(event: &str, data: &str) -> TranscriptEvent {
        TranscriptEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn the_wire_form_is_the_array_of_events_and_reads_back_to_the_same_text() {
        let t = Transcript::from_sse(SSE.as_bytes().to_vec());
        let json = serde_json::to_value(&t).unwrap();
        let events: Vec<TranscriptEvent> = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(events.len(), 4, "the comment is left out: {json}");
        assert_eq!(events[1], ev("token", r#"{"t":"a\n","i":0}"#));
        assert_eq!(t.len(), 4);
        // Serialized the same as the events it holds, and read back into the text without
        // the comment.
        assert_eq!(json, serde_json::to_value(&events).unwrap());
        let back: Transcript = serde_json::from_value(json).unwrap();
        assert_eq!(back.as_sse(), SSE.replace(": keep-alive\n\n", ""));
        assert_eq!(back.events().map(TranscriptEvent::from).collect::<Vec<_>>(), events);
    }

    #[test]
    fn an_event_without_a_name_round_trips() {
        let t = Transcript::from([ev("", "{}")].as_slice());
        assert_eq!(t.as_sse(), "data: {}\n\n");
        assert_eq!(t.events().collect::<Vec<_>>(), vec![EventRef { event: "", data: "{}" }]);
        assert!(Transcript::default().is_empty());
    }

    #[test]
    fn keeping_tokens_cuts_after_the_last_kept_one() {
        let mut t = Transcript::from_sse(SSE.as_bytes().to_vec());
        t.keep_tokens(1);
        let names: Vec<_> = t.events().map(|e| e.event).collect();
        assert_eq!(names, vec!["started", "token"]);
        assert!(t.as_sse().ends_with("\n\n"), "{:?}", t.as_sse());
        let mut all = Transcript::from_sse(SSE.as_bytes().to_vec());
        all.keep_tokens(5);
        assert_eq!(all.as_sse(), SSE, "nothing past the tokens read is cut");
        let mut none = Transcript::from_sse(SSE.as_bytes().to_vec());
        none.keep_tokens(0);
        assert_eq!(none.events().count(), 1);
    }
}
