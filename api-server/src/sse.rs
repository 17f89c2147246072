//! Server-sent-events framing of what llama-orch writes to its clients: one event is
//! `event: <name>` (when named), `data: <json>` and a blank line; a keep-alive is a comment.
//! Frames are appended to a byte buffer so that everything ready at one wake-up leaves in
//! one write. Reading engines' SSE is `engine::sse`'s job, not this file's.

use serde::Serialize;

/// The keep-alive comment written while a stream waits (proxies drop idle connections).
pub const KEEP_ALIVE_COMMENT: &[u8] = b":\n\n";

/// `Content-Type` of an event stream.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// Appends one event (`event: <name>` when named, then `data: <json>`) to `out`.
pub fn frame(out: &mut Vec<u8>, event: Option<&str>, data: &impl Serialize) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Serializing our own types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// Appends one unnamed event whose data is `raw` as is (`[DONE]`).
pub fn raw(out: &mut Vec<u8>, raw: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(raw.as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_named_events_with_json_data_and_a_blank_line() {
        let mut out = Vec::new();
        frame(
            &mut out,
            Some("token"),
            &llorch_manifests::task::Token { t: "a\nb".into(), i: 0 },
        );
        frame(&mut out, None, &serde_json::json!({"x": 1}));
        raw(&mut out, "[DONE]");
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "event: token\ndata: {\"t\":\"a\\nb\",\"i\":0}\n\ndata: {\"x\":1}\n\ndata: [DONE]\n\n"
        );
    }
}
