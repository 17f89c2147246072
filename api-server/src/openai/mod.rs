//! The OpenAI-compatible front door (`/v1/models`, `/v1/chat/completions`, `/v1/completions`)
//! over the same data plane as `/v2/tasks`: one task type, one token stream; only the edges
//! differ. This module owns the translation — OpenAI request bodies into a [`TaskRequest`],
//! task events into `chat.completion(.chunk)` / `text_completion` objects, refusals into
//! OpenAI's error shape — and must not queue, place or generate anything itself: admission,
//! dispatch and race-free cancel stay in [`crate::tasks`].
//!
//! - [`request`]: request bodies and their mapping onto a [`TaskRequest`].
//! - [`response`]: response objects and stream chunks (pure encoders).
//! - [`reply`]: a whole reply rebuilt from the stream (tool-call deltas joined).
//! - [`stream`]: OpenAI's frames for a task's shared stream, or one collected reply.
//! - [`models`]: the `/v1/models` list (Pools and the Models they serve).
//! - [`embeddings`]: `/v1/embeddings` bodies, for Pools with `workload: embeddings`.
//!
//! Errors are the crate's one [`ApiError`](crate::error::ApiError), rendered in OpenAI's
//! `{"error": {message, type, code, param}}` shape by [`OpenAi`](crate::error::OpenAi).
//!
//! [`TaskRequest`]: llorch_manifests::task::TaskRequest

pub mod embeddings;
pub mod models;
pub mod reply;
pub mod request;
pub mod response;
pub mod stream;

pub use request::{Endpoint, Mapped, OpenAiRequest};
