//! The native SSE rendering of a task's events — `started`, `metrics`, one `token` per token,
//! `end` or `error` — in one place, shared by `GET /v2/tasks/{id}/events` and a job record's
//! transcript, so the record holds exactly what a native client reads.

use llorch_manifests::task::Token;

use super::task::TaskEvent;
use crate::error::ApiError;
use crate::sse;

/// Appends `ev`'s native frames to `out` (nothing for an embeddings answer).
pub fn render(ev: &TaskEvent, out: &mut Vec<u8>) {
    match ev {
        TaskEvent::Started(p) => sse::frame(out, Some("started"), p),
        TaskEvent::Metrics(p) => sse::frame(out, Some("metrics"), p),
        TaskEvent::Tokens(tokens) => {
            for t in tokens {
                sse::frame(out, Some("token"), t);
            }
        }
        // A native client asked for no tools or log probabilities: only the text goes.
        TaskEvent::Delta { index, delta } => {
            if let Some(t) = &delta.content {
                sse::frame(
                    out,
                    Some("token"),
                    &Token {
                        t: t.clone(),
                        i: *index,
                    },
                );
            }
        }
        // Only `/v1/embeddings` submits embeddings tasks, and it reads the answer itself.
        TaskEvent::Embeddings(_) => {}
        TaskEvent::End(p) => sse::frame(out, Some("end"), p),
        TaskEvent::Error(p) => ApiError::from_task_error(p.clone()).sse_native(out),
    }
}
