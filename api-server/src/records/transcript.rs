//! A task stream's transcript: the native SSE bytes a task's events render to (captured as
//! they are sent, see [`TaskState::send`](crate::tasks::task::TaskState::send)), split into
//! [`TranscriptEvent`]s, and the deterministic part a replay compares — token texts in order
//! and how the stream ended, not timings, queue positions or ids.

use llorch_manifests::records::{FirstDifference, TranscriptEvent};
use llorch_manifests::task::{End, TaskError, Token};

/// Splits native SSE bytes (`event: <name>\ndata: <json>\n\n` …) into events; comments are
/// left out.
pub fn parse(bytes: &[u8]) -> Vec<TranscriptEvent> {
    let text = String::from_utf8_lossy(bytes);
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut event = String::new();
        let mut data = None;
        for line in block.lines() {
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = Some(d.to_string());
            }
        }
        if let Some(data) = data {
            events.push(TranscriptEvent { event, data });
        }
    }
    events
}

/// The events as SSE bytes again (what a client read, keep-alives aside).
pub fn to_sse(events: &[TranscriptEvent]) -> String {
    let mut out = String::new();
    for e in events {
        if !e.event.is_empty() {
            out.push_str("event: ");
            out.push_str(&e.event);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&e.data);
        out.push_str("\n\n");
    }
    out
}

/// Keeps the first `n` token events (what a canceled task's client was let read) and every
/// other event before the cut.
pub fn keep_tokens(events: &mut Vec<TranscriptEvent>, n: u32) {
    let mut seen = 0u32;
    let cut = events.iter().position(|e| {
        if e.event == "token" {
            seen += 1;
            seen > n
        } else {
            false
        }
    });
    if let Some(cut) = cut {
        events.truncate(cut);
    }
}

/// What a replay must reproduce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deterministic {
    /// Token texts in order.
    pub tokens: Vec<String>,
    /// `<end: stop>`, `<error: CODE>` or `<no end>`.
    pub end: String,
}

/// The deterministic part of `events`.
pub fn deterministic(events: &[TranscriptEvent]) -> Deterministic {
    let mut d = Deterministic {
        tokens: Vec::new(),
        end: "<no end>".into(),
    };
    for e in events {
        match e.event.as_str() {
            "token" => {
                if let Ok(t) = serde_json::from_str::<Token>(&e.data) {
                    d.tokens.push(t.t);
                }
            }
            "end" => {
                if let Ok(end) = serde_json::from_str::<End>(&e.data) {
                    d.end = format!("<end: {}>", end.finish_reason.as_str());
                }
            }
            "error" => {
                if let Ok(err) = serde_json::from_str::<TaskError>(&e.data) {
                    d.end = format!("<error: {}>", err.code.as_str());
                }
            }
            _ => {}
        }
    }
    d
}

/// Where `replayed` first departs from `recorded`: a token, or (all tokens equal) the end.
pub fn first_difference(recorded: &Deterministic, replayed: &Deterministic) -> Option<FirstDifference> {
    let longest = recorded.tokens.len().max(replayed.tokens.len());
    let at = |d: &Deterministic, i: usize| d.tokens.get(i).cloned().unwrap_or_else(|| d.end.clone());
    for i in 0..longest {
        let (a, b) = (at(recorded, i), at(replayed, i));
        if a != b || recorded.tokens.get(i).is_none() != replayed.tokens.get(i).is_none() {
            return Some(FirstDifference {
                index: i as u32,
                recorded: a,
                replayed: b,
            });
        }
    }
    (recorded.end != replayed.end).then(|| FirstDifference {
        index: longest as u32,
        recorded: recorded.end.clone(),
        replayed: replayed.end.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> TranscriptEvent {
        TranscriptEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    fn tokens(ts: &[&str], end: &str) -> Vec<TranscriptEvent> {
        let mut v: Vec<_> = ts
            .iter()
            .enumerate()
            .map(|(i, t)| ev("token", &format!(r#"{{"t":"{t}","i":{i}}}"#)))
            .collect();
        v.push(ev(
            "end",
            &format!(r#"{{"tokens_out":1,"decode_time_ms":1,"finish_reason":"{end}","tokens_in":1}}"#),
        ));
        v
    }

    #[test]
    fn sse_bytes_round_trip_through_events() {
        let sse = "event: started\ndata: {\"queue_position\":0}\n\nevent: token\ndata: {\"t\":\"a\\n\",\"i\":0}\n\n";
        let events = parse(sse.as_bytes());
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], ev("token", r#"{"t":"a\n","i":0}"#));
        assert_eq!(to_sse(&events), sse);
    }

    #[test]
    fn the_first_difference_is_a_token_or_the_end() {
        let a = deterministic(&tokens(&["x", "y", "z"], "length"));
        assert_eq!(a.tokens, vec!["x", "y", "z"]);
        assert_eq!(first_difference(&a, &a), None);
        let b = deterministic(&tokens(&["x", "q", "z"], "length"));
        let d = first_difference(&a, &b).unwrap_or_else(|| FirstDifference {
            index: 99,
            recorded: String::new(),
            replayed: String::new(),
        });
        assert_eq!((d.index, d.recorded.as_str(), d.replayed.as_str()), (1, "y", "q"));
        let shorter = deterministic(&tokens(&["x", "y"], "stop"));
        let d = first_difference(&a, &shorter).map(|d| (d.index, d.replayed));
        assert_eq!(d, Some((2, "<end: stop>".to_string())));
        let other_end = deterministic(&tokens(&["x", "y", "z"], "stop"));
        assert_eq!(first_difference(&a, &other_end).map(|d| d.index), Some(3));
    }

    #[test]
    fn a_canceled_transcript_keeps_only_the_tokens_its_client_read() {
        let mut events = tokens(&["a", "b", "c"], "stop");
        events.insert(0, ev("started", "{}"));
        keep_tokens(&mut events, 2);
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].event, "token");
    }
}
