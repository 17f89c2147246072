//! The exchange every adapter shares: send a streaming request through the
//! [`Transport`](super::transport::Transport), classify what stops it before the first event
//! (connect failure, non-2xx status, wrong content type), and read an engine's error body into
//! [`EngineError::Rejected`].
//!
//! Error bodies are read on the cold path with `serde_json::Value`; the token path never comes
//! here.

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use super::stream::{ChunkParser, EngineStream};
use super::transport::{DrivenBody, Reply, Transport};
use super::{EngineError, TokenStream};

/// The most bytes of an error body kept for its message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// `base` + `path`, without doubling the slash between them.
pub(crate) fn join(base: &str, path: &str) -> String {
    let mut url = String::with_capacity(base.len() + path.len());
    url.push_str(base.trim_end_matches('/'));
    url.push_str(path);
    url
}

/// `POST`s `body` to `url`; a 2xx answer's head, or the error that stopped it (connect,
/// lost before the answer, a non-2xx status with the engine's message).
async fn post(
    transport: &Transport,
    url: String,
    body: Result<Vec<u8>, serde_json::Error>,
) -> Result<Reply, EngineError> {
    let body = body.map_err(|e| EngineError::Protocol(format!("cannot encode the request for `{url}`: {e}")))?;
    let reply = match transport.post_json(&url, Bytes::from(body)).await {
        Ok(reply) => reply,
        Err(source) if source.is_connect() => return Err(EngineError::Connect { url, source }),
        // Connected, then lost before the answer: the engine may have seen the request.
        Err(source) => return Err(EngineError::Reset { source: Some(source) }),
    };
    if !reply.status.is_success() {
        let body = read_capped(reply.body).await;
        return Err(rejection(reply.status.as_u16(), &body));
    }
    Ok(reply)
}

/// `POST`s `body` to `url` and, once the engine answers 2xx with an event stream, returns the
/// stream read by `parser`.
pub(crate) async fn open_stream<P: ChunkParser>(
    transport: Transport,
    url: String,
    body: Result<Vec<u8>, serde_json::Error>,
    parser: P,
) -> Result<TokenStream, EngineError> {
    let reply = post(&transport, url, body).await?;
    if !reply.content_type.starts_with("text/event-stream") {
        return Err(EngineError::Protocol(format!(
            "expected a text/event-stream reply to a streaming request, got `{}`",
            reply.content_type
        )));
    }
    Ok(Box::pin(EngineStream::new(Box::pin(reply.body), parser)))
}

/// The most bytes of a whole (non-streamed) JSON answer, such as a batch of embeddings.
pub(crate) const MAX_JSON_BODY: usize = 64 * 1024 * 1024;

/// `POST`s `body` to `url` and reads the whole 2xx JSON answer (at most [`MAX_JSON_BODY`]).
pub(crate) async fn post_for_json(
    transport: Transport,
    url: String,
    body: Result<Vec<u8>, serde_json::Error>,
) -> Result<Value, EngineError> {
    let reply = post(&transport, url.clone(), body).await?;
    let mut chunks = reply.body;
    let mut whole = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|source| EngineError::Reset { source: Some(source) })?;
        if whole.len() + chunk.len() > MAX_JSON_BODY {
            return Err(EngineError::Protocol(format!(
                "the answer of `{url}` is over {MAX_JSON_BODY} bytes"
            )));
        }
        whole.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&whole).map_err(|e| EngineError::Protocol(format!("the answer of `{url}` is not JSON: {e}")))
}

/// Up to [`MAX_ERROR_BODY`] bytes of an error answer; what cannot be read is left out.
async fn read_capped(mut chunks: DrivenBody) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = MAX_ERROR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ERROR_BODY {
            break;
        }
    }
    body
}

/// A non-2xx answer. The message is the engine's own when its body says one, in any of the
/// shapes engines use: `{"error":{"message":…}}` (llama-server, OpenAI, vLLM),
/// `{"error":"…"}` (TGI), `{"message":…}` or `{"detail":…}` (FastAPI servers).
pub(crate) fn rejection(status: u16, body: &[u8]) -> EngineError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| message_of(&v))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    EngineError::Rejected { status, message }
}

/// An error event inside a stream: llama-server's `error: {…}` line, or a `data:` payload
/// with an `error` object. Its `code` stands for the status; 500 when it has none.
pub(crate) fn error_event(data: &[u8]) -> EngineError {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return EngineError::Rejected {
            status: 500,
            message: String::from_utf8_lossy(data).trim().to_owned(),
        };
    };
    let error = value.get("error").unwrap_or(&value);
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(500);
    let message = message_of(&value).unwrap_or_else(|| value.to_string());
    EngineError::Rejected { status, message }
}

fn message_of(value: &Value) -> Option<String> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match value.get("error") {
        Some(Value::String(message)) => Some(message.clone()),
        Some(error) => error.get("message").and_then(text),
        None => value
            .get("message")
            .and_then(text)
            .or_else(|| value.get("detail").map(|d| text(d).unwrap_or_else(|| d.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: EngineError) -> (u16, String) {
        match err {
            EngineError::Rejected { status, message } => (status, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(join("http://h:1/", "/completion"), "http://h:1/completion");
        assert_eq!(join("http://h:1", "/completion"), "http://h:1/completion");
    }

    #[test]
    fn rejections_carry_the_engines_message_in_any_shape() {
        let llama = br#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#;
        assert_eq!(message(rejection(503, llama)), (503, "Loading model".into()));
        assert_eq!(
            message(rejection(422, br#"{"error":"Input validation error"}"#)).1,
            "Input validation error"
        );
        assert_eq!(
            message(rejection(400, br#"{"object":"error","message":"bad"}"#)).1,
            "bad"
        );
        assert_eq!(
            message(rejection(422, br#"{"detail":[{"loc":["x"]}]}"#)).1,
            r#"[{"loc":["x"]}]"#
        );
        assert_eq!(message(rejection(502, b" Bad Gateway\n")).1, "Bad Gateway");
    }

    #[test]
    fn error_events_take_their_status_from_the_code() {
        let event = br#"{"error":{"code":400,"message":"context full","type":"exceed_context_size_error"}}"#;
        assert_eq!(message(error_event(event)), (400, "context full".into()));
        assert_eq!(
            message(error_event(br#"{"code":500,"message":"boom"}"#)),
            (500, "boom".into())
        );
        assert_eq!(message(error_event(b"not json")).0, 500);
    }
}
