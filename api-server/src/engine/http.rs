//! The HTTP exchange both adapters share: send a streaming request, classify what stops it
//! before the first event (connect failure, non-2xx status, wrong content type), and read an
//! engine's error body into [`EngineError::Rejected`].
//!
//! Error bodies are read on the cold path with `serde_json::Value`; the token path never comes
//! here.

use futures_util::StreamExt;
use reqwest::RequestBuilder;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;

use super::stream::{ChunkParser, EngineStream};
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

/// Sends `request` and, once the engine answers 2xx with an event stream, returns the stream
/// read by `parser`.
pub(crate) async fn open_stream<P: ChunkParser>(
    request: RequestBuilder,
    url: String,
    parser: P,
) -> Result<TokenStream, EngineError> {
    let retry = request.try_clone();
    let response = match (request.header(ACCEPT, "text/event-stream").send().await, retry) {
        (Ok(response), _) => response,
        // llama-server closes a connection after a streamed reply although it announced
        // keep-alive; a request sent on such a pooled connection dies before any answer. The
        // engine never saw it, so one retry on a fresh connection is safe.
        (Err(err), Some(retry)) if is_stale_connection(&err) => retry
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|err| send_error(url, err))?,
        (Err(err), _) => return Err(send_error(url, err)),
    };
    let status = response.status();
    if !status.is_success() {
        let body = read_capped(response).await;
        return Err(rejection(status.as_u16(), &body));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/event-stream") {
        return Err(EngineError::Protocol(format!(
            "expected a text/event-stream reply to a streaming request, got `{content_type}`"
        )));
    }
    Ok(Box::pin(EngineStream::new(Box::pin(response.bytes_stream()), parser)))
}

/// A send that failed after a (pooled) connection was made but before any answer arrived.
fn is_stale_connection(err: &reqwest::Error) -> bool {
    err.is_request() && !err.is_connect() && !err.is_timeout() && !err.is_builder()
}

/// Classifies a failure to get a response head.
fn send_error(url: String, err: reqwest::Error) -> EngineError {
    if err.is_builder() {
        EngineError::Protocol(format!("cannot build a request for `{url}`: {err}"))
    } else if err.is_connect() || err.is_timeout() {
        EngineError::Connect { url, source: err }
    } else {
        // Connected, then lost before the answer: the engine may have seen the request.
        EngineError::Reset { source: Some(err) }
    }
}

/// Up to [`MAX_ERROR_BODY`] bytes of an error response; what cannot be read is left out.
async fn read_capped(response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
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
