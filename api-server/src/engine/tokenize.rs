//! Counting a prompt's tokens with the engine's own tokenizer: llama-server's
//! `POST /tokenize {"content", "add_special": true}` → `{"tokens":[…]}`, and for chat
//! `POST /apply-template {"messages"}` → `{"prompt"}` first, so the count includes the model's
//! chat template. Only engines whose API is `llamacpp` have these routes.
//!
//! This module sends the requests and reads the answers through the shared
//! [`Transport`](super::transport::Transport); it does not cache, time out or decide what a
//! failure means for admission (the caller falls back to an estimate).

use bytes::Bytes;
use futures_util::StreamExt;
use llorch_manifests::task::ChatMessage;
use serde::{Deserialize, Serialize};

use super::Prompt;
use super::http::{join, rejection};
use super::transport::{Transport, TransportError};

/// The largest answer read: `/tokenize` of a 128k-token prompt is under 1 MiB of ids.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why the engine could not count a prompt.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// The request body could not be encoded.
    #[error("cannot encode the request for `{url}`")]
    Encode {
        /// Where it was going.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The engine could not be reached, or the connection broke.
    #[error("`{url}` could not be reached")]
    Send {
        /// Where.
        url: String,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// The engine answered with a non-2xx status.
    #[error("`{url}` answered {status}: {message}")]
    Rejected {
        /// Where.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// The answer broke off, was too long, or is not the JSON expected.
    #[error("`{url}` answered something unreadable: {why}")]
    Unreadable {
        /// Where.
        url: String,
        /// What was wrong.
        why: String,
    },
}

/// Asks llama-server engines how many tokens a prompt is. Cheap to clone.
#[derive(Clone)]
pub struct Tokenizer {
    transport: Transport,
}

#[derive(Serialize)]
struct TokenizeBody<'a> {
    content: &'a str,
    add_special: bool,
}

#[derive(Deserialize)]
struct Tokens {
    tokens: Vec<serde::de::IgnoredAny>,
}

#[derive(Serialize)]
struct ApplyTemplateBody<'a> {
    messages: &'a [ChatMessage],
}

#[derive(Deserialize)]
struct Templated {
    prompt: String,
}

impl Tokenizer {
    /// A tokenizer client on `transport` (share the adapters' one: it holds the pool).
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    /// The tokens of `prompt` as the engine at `base_url` reads it: with its special tokens
    /// (BOS) and, for chat, its chat template.
    pub async fn count(&self, base_url: &str, prompt: &Prompt) -> Result<u32, TokenizeError> {
        let templated;
        let content = match prompt {
            Prompt::Text(text) => text.as_str(),
            Prompt::Chat(messages) => {
                let t: Templated = self
                    .call(base_url, "/apply-template", &ApplyTemplateBody { messages })
                    .await?;
                templated = t.prompt;
                templated.as_str()
            }
        };
        let tokens: Tokens = self
            .call(
                base_url,
                "/tokenize",
                &TokenizeBody {
                    content,
                    add_special: true,
                },
            )
            .await?;
        Ok(u32::try_from(tokens.tokens.len()).unwrap_or(u32::MAX))
    }

    async fn call<B: Serialize, A: serde::de::DeserializeOwned>(
        &self,
        base_url: &str,
        path: &str,
        body: &B,
    ) -> Result<A, TokenizeError> {
        let url = join(base_url, path);
        let body = match serde_json::to_vec(body) {
            Ok(body) => Bytes::from(body),
            Err(source) => return Err(TokenizeError::Encode { url, source }),
        };
        let reply = match self.transport.post_json(&url, body).await {
            Ok(reply) => reply,
            Err(source) => return Err(TokenizeError::Send { url, source }),
        };
        let status = reply.status;
        let answer = read_all(reply.body, &url).await?;
        if !status.is_success() {
            let (status, message) = match rejection(status.as_u16(), &answer) {
                super::EngineError::Rejected { status, message } => (status, message),
                other => (status.as_u16(), other.to_string()),
            };
            return Err(TokenizeError::Rejected { url, status, message });
        }
        serde_json::from_slice(&answer).map_err(|e| TokenizeError::Unreadable {
            url,
            why: e.to_string(),
        })
    }
}

/// The whole answer (read to its end, so a keep-alive connection goes back to the pool).
async fn read_all(mut chunks: super::transport::DrivenBody, url: &str) -> Result<Vec<u8>, TokenizeError> {
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| TokenizeError::Unreadable {
            url: url.to_string(),
            why: format!("the answer broke off: {e}"),
        })?;
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(TokenizeError::Unreadable {
                url: url.to_string(),
                why: format!("the answer is over {MAX_ANSWER_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
