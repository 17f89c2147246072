//! The shared driver of a streamed reply: an engine's response body goes through the
//! [`SseDecoder`], each event through a flavour's [`ChunkParser`], and out come
//! [`EngineEvent`]s.
//!
//! It owns the transport rules that every flavour shares: a broken body is
//! [`EngineError::Reset`], a clean end without a final event is the parser's call, nothing
//! follows `Done` or an error. After `Done` it reads the rest of the body (the chunked-encoding
//! terminator) in the background so that the connection goes back to the pool instead of being
//! closed. It knows no JSON field of any engine.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::sse::{EventKind, SseDecoder, SseEvent};
use super::transport::TransportError;
use super::{Delta, EngineError, EngineEvent, Finish};

/// How long the background read after `Done` may take before the connection is dropped.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// An engine's response body.
pub(crate) type Body = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// How a reply ended, as a flavour read it from its events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ending {
    /// Tokens generated (the engine's count, else the text chunks seen).
    pub tokens_out: u32,
    /// Why.
    pub finish: Finish,
    /// Prompt tokens, when the engine said.
    pub tokens_in: Option<u32>,
}

impl Ending {
    /// `tokens_out` tokens that ended for `finish`, prompt count unknown.
    #[cfg(test)]
    pub fn new(tokens_out: u32, finish: Finish) -> Self {
        Self {
            tokens_out,
            finish,
            tokens_in: None,
        }
    }
}

/// What one event meant. A final event may carry text too; the text is yielded first.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Text or a richer chunk to yield ([`EngineEvent::Token`] or [`EngineEvent::Delta`]).
    pub event: Option<EngineEvent>,
    /// The reply is complete.
    pub done: Option<Ending>,
}

impl Parsed {
    /// Yields `text` unless it is empty.
    pub fn token(text: String) -> Self {
        Self {
            event: (!text.is_empty()).then_some(EngineEvent::Token(text)),
            done: None,
        }
    }

    /// Yields `delta`: as plain text when that is all it holds, nothing when it is empty.
    pub fn delta(mut delta: Delta) -> Self {
        if delta.content.as_deref() == Some("") {
            delta.content = None;
        }
        let event = if delta.is_rich() {
            Some(EngineEvent::Delta(Box::new(delta)))
        } else {
            delta.content.map(EngineEvent::Token)
        };
        Self { event, done: None }
    }

    /// True when it yields text (a token to count).
    pub fn has_text(&self) -> bool {
        match &self.event {
            Some(EngineEvent::Token(_)) => true,
            Some(EngineEvent::Delta(d)) => d.content.is_some(),
            _ => false,
        }
    }
}

/// A flavour's reading of its events.
pub(crate) trait ChunkParser: Send + Unpin + 'static {
    /// One `data` payload.
    fn data(&mut self, data: &[u8]) -> Result<Parsed, EngineError>;

    /// The body ended cleanly before any `done`: a complete reply for lenient protocols, or
    /// (by default) a lost connection.
    fn end(&mut self) -> Result<Ending, EngineError> {
        Err(EngineError::Reset { source: None })
    }
}

/// The [`TokenStream`](super::TokenStream) behind every adapter.
pub(crate) struct EngineStream<P> {
    /// `None` once the stream has ended.
    body: Option<Body>,
    decoder: SseDecoder,
    parser: P,
    /// `Done` that arrived with a final piece of text; yielded next.
    pending_done: Option<Ending>,
    /// The body has ended; only the decoder's leftovers remain.
    body_ended: bool,
}

impl<P: ChunkParser> EngineStream<P> {
    pub fn new(body: Body, parser: P) -> Self {
        Self {
            body: Some(body),
            decoder: SseDecoder::new(),
            parser,
            pending_done: None,
            body_ended: false,
        }
    }

    /// Turns one event into the next item, if it makes one.
    fn on_event(&mut self, parsed: Result<Parsed, EngineError>) -> Option<Result<EngineEvent, EngineError>> {
        match parsed {
            Err(err) => Some(Err(self.fail(err))),
            Ok(Parsed { event, done }) => match (event, done) {
                (Some(event), done) => {
                    self.pending_done = done;
                    Some(Ok(event))
                }
                (None, Some(done)) => Some(Ok(self.finish(done))),
                (None, None) => None,
            },
        }
    }

    /// Ends the stream with `err`, dropping the connection.
    fn fail(&mut self, err: EngineError) -> EngineError {
        self.body = None;
        err
    }

    /// Ends the stream with `Done`; the body is read to its end in the background.
    fn finish(&mut self, ending: Ending) -> EngineEvent {
        if let Some(body) = self.body.take()
            && !self.body_ended
        {
            drain_in_background(body);
        }
        let Ending {
            tokens_out,
            finish,
            tokens_in,
        } = ending;
        EngineEvent::Done {
            tokens_out,
            finish,
            tokens_in,
        }
    }
}

impl<P: ChunkParser> Stream for EngineStream<P> {
    type Item = Result<EngineEvent, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(done) = this.pending_done.take() {
            return Poll::Ready(Some(Ok(this.finish(done))));
        }
        loop {
            if this.body.is_none() {
                return Poll::Ready(None);
            }
            let parsed = match this.decoder.next_event() {
                Err(too_large) => {
                    return Poll::Ready(Some(Err(this.fail(EngineError::Protocol(too_large.to_string())))));
                }
                Ok(Some(SseEvent { kind, data })) => Some(parse(&mut this.parser, kind, data)),
                Ok(None) => None,
            };
            if let Some(parsed) = parsed {
                match this.on_event(parsed) {
                    Some(item) => return Poll::Ready(Some(item)),
                    None => continue,
                }
            }
            if this.body_ended {
                let item = match this.parser.end() {
                    Ok(done) => Ok(this.finish(done)),
                    Err(err) => Err(this.fail(err)),
                };
                return Poll::Ready(Some(item));
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            match body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Err(too_large) = this.decoder.push(&chunk) {
                        return Poll::Ready(Some(Err(this.fail(EngineError::Protocol(too_large.to_string())))));
                    }
                }
                Poll::Ready(Some(Err(source))) => {
                    return Poll::Ready(Some(Err(this.fail(EngineError::Reset { source: Some(source) }))));
                }
                Poll::Ready(None) => {
                    this.body_ended = true;
                    this.decoder.end();
                }
            }
        }
    }
}

fn parse<P: ChunkParser>(parser: &mut P, kind: EventKind, data: &[u8]) -> Result<Parsed, EngineError> {
    match kind {
        EventKind::Data => parser.data(data),
        EventKind::Error => Err(super::http::error_event(data)),
    }
}

/// Reads what is left of a finished reply so hyper can pool the connection. Without a tokio
/// runtime (never the case under reqwest) the body is simply dropped.
fn drain_in_background(mut body: Body) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(DRAIN_LIMIT, async { while let Some(Ok(_)) = body.next().await {} }).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;

    /// A parser for tests: `t:<text>` is a token, `d:<n>` is done, `x` is a protocol error.
    struct Lines;

    impl ChunkParser for Lines {
        fn data(&mut self, data: &[u8]) -> Result<Parsed, EngineError> {
            match data.split_first() {
                Some((b't', rest)) => Ok(Parsed::token(String::from_utf8_lossy(&rest[1..]).into_owned())),
                Some((b'd', rest)) => {
                    let n = std::str::from_utf8(&rest[1..]).unwrap().parse().unwrap();
                    Ok(Parsed {
                        event: None,
                        done: Some(Ending::new(n, Finish::Stop)),
                    })
                }
                _ => Err(EngineError::Protocol("x".into())),
            }
        }
    }

    fn body(chunks: Vec<Result<Bytes, TransportError>>) -> Body {
        Box::pin(stream::iter(chunks))
    }

    async fn collect(chunks: Vec<&'static [u8]>) -> Vec<Result<EngineEvent, EngineError>> {
        let chunks = chunks.into_iter().map(|c| Ok(Bytes::from_static(c))).collect();
        EngineStream::new(body(chunks), Lines).collect().await
    }

    fn token(text: &str) -> EngineEvent {
        EngineEvent::Token(text.to_owned())
    }

    #[tokio::test]
    async fn tokens_then_done_then_nothing() {
        let items = collect(vec![
            b"data: t:a\n\ndata: t:",
            b"\n\ndata: t:b\n",
            b"\ndata: d:2\n\ndata: t:late\n\n",
        ])
        .await;
        let items: Vec<EngineEvent> = items.into_iter().map(Result::unwrap).collect();
        let done = EngineEvent::Done {
            tokens_out: 2,
            finish: Finish::Stop,
            tokens_in: None,
        };
        assert_eq!(items, vec![token("a"), token("b"), done]);
    }

    #[tokio::test]
    async fn a_clean_end_without_done_is_a_reset() {
        let items = collect(vec![b"data: t:a\n\n"]).await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(EngineError::Reset { source: None })));
    }

    #[tokio::test]
    async fn an_unreadable_event_ends_the_stream_with_a_protocol_error() {
        let items = collect(vec![b"data: x\n\ndata: t:a\n\n"]).await;
        assert_eq!(items.len(), 1);
        assert!(matches!(items[0], Err(EngineError::Protocol(_))));
    }

    #[tokio::test]
    async fn an_error_line_becomes_a_rejection() {
        let line: &'static [u8] = b"data: t:a\n\nerror: {\"code\":400,\"message\":\"too long\",\"type\":\"x\"}\n\n";
        let items = collect(vec![line]).await;
        assert_eq!(items.len(), 2);
        match &items[1] {
            Err(EngineError::Rejected { status, message }) => {
                assert_eq!((*status, message.as_str()), (400, "too long"))
            }
            other => panic!("{other:?}"),
        }
    }
}
