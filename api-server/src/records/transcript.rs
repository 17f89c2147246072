//! What a replay compares of a [`Transcript`] (the native SSE text a task's events render to,
//! captured as they are sent, see [`TaskState::send`](crate::tasks::task::TaskState::send)):
//! its deterministic part — token texts in order and how the stream ended, not timings, queue
//! positions or ids — and where two of them first differ.

use llorch_manifests::records::{FirstDifference, Transcript};
use llorch_manifests::task::{End, TaskError, Token};

/// What a replay must reproduce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deterministic {
    /// Token texts in order.
    pub tokens: Vec<String>,
    /// `<end: stop>`, `<error: CODE>` or `<no end>`.
    pub end: String,
}

/// The deterministic part of `transcript`.
pub fn deterministic(transcript: &Transcript) -> Deterministic {
    let mut d = Deterministic {
        tokens: Vec::new(),
        end: "<no end>".into(),
    };
    for e in transcript.events() {
        match e.event {
            "token" => {
                if let Ok(t) = serde_json::from_str::<Token>(e.data) {
                    d.tokens.push(t.t);
                }
            }
            "end" => {
                if let Ok(end) = serde_json::from_str::<End>(e.data) {
                    d.end = format!("<end: {}>", end.finish_reason.as_str());
                }
            }
            "error" => {
                if let Ok(err) = serde_json::from_str::<TaskError>(e.data) {
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
    use llorch_manifests::records::TranscriptEvent;

    use super::*;

    fn ev(event: &str, data: &str) -> TranscriptEvent {
        TranscriptEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    fn tokens(ts: &[&str], end: &str) -> Transcript {
        let mut v: Vec<_> = ts
            .iter()
            .enumerate()
            .map(|(i, t)| ev("token", &format!(r#"{{"t":"{t}","i":{i}}}"#)))
            .collect();
        v.push(ev(
            "end",
            &format!(r#"{{"tokens_out":1,"decode_time_ms":1,"finish_reason":"{end}","tokens_in":1}}"#),
        ));
        Transcript::from(v.as_slice())
    }

    #[test]
    fn the_first_difference_is_a_token_or_the_end() {
        let a = deterministic(&tokens(&["x", "y", "z"], "length"));
        assert_eq!(a.tokens, vec!["x", "y", "z"]);
        assert_eq!(a.end, "<end: length>");
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
}
