//! The OpenAI-compatible front door (`/v1/models`, `/v1/chat/completions`, `/v1/completions`)
//! over the same data plane as `/v2/tasks`: one task type, one token stream; only the edges
//! differ. This module owns the translation — OpenAI request bodies into a [`TaskRequest`],
//! task events into `chat.completion(.chunk)` / `text_completion` objects, refusals into
//! OpenAI's error shape — and must not queue, place or generate anything itself: admission,
//! dispatch and race-free cancel stay in [`crate::tasks`].
//!
//! - [`request`]: request bodies and their mapping onto a [`TaskRequest`].
//! - [`response`]: response objects and stream chunks (pure encoders).
//! - [`stream`]: drives a task's event channel into SSE frames or one collected reply, and
//!   cancels the task when the client goes away.
//! - [`error`]: `{"error": {message, type, code, param}}` with our stable codes.
//! - [`models`]: the `/v1/models` list (one entry per Pool).
//!
//! [`TaskRequest`]: llorch_manifests::task::TaskRequest

pub mod error;
pub mod models;
pub mod request;
pub mod response;
pub mod stream;

pub use error::OpenAiError;
pub use request::{Endpoint, Mapped, OpenAiRequest};
