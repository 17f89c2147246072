//! mock-engine: a stand-in for llama.cpp's `llama-server` in tests.
//!
//! It speaks llama-server's native API (with `/tokenize`, `/detokenize`, `/apply-template`), the
//! OpenAI API with llama-server's JSON shapes (chat with tool calls, reasoning and logprobs;
//! embeddings behind `--embeddings`), and TGI's `/generate`, `/generate_stream` and `/info`. It
//! generates deterministic text (see [`tokens`]), limits concurrency to `--parallel` slots,
//! keeps the last request bodies for `GET /debug/requests` ([`request_log`]), and injects faults
//! on demand (slow loading, failed loading, crash or hang after N tokens, bad health). The binary (`main.rs`) only parses flags, binds, handles signals and maps errors to
//! exit codes; everything else lives here so tests can run it in-process.

pub mod access_log;
pub mod api_error;
pub mod chat;
pub mod chat_template;
pub mod cli;
pub mod embeddings;
pub mod emitter;
pub mod envelope;
pub mod faults;
pub mod generation;
pub mod llamacpp;
pub mod logprobs;
pub mod metrics;
pub mod model_file;
pub mod openai;
pub mod reasoning;
pub mod request;
pub mod request_log;
pub mod server;
pub mod slots;
pub mod sse;
pub mod state;
pub mod stop;
pub mod tgi;
pub mod tokenizer;
pub mod tokens;
pub mod tools;
pub mod utility_routes;

pub use cli::Config;
pub use server::{RunError, run};
