//! HTTP/1.1 to engines, with the connection driven by the task that reads the reply.
//!
//! Engines stream one HTTP chunk per token. hyper's pooled client (what reqwest wraps) runs
//! each connection as a task of its own and hands the body over one chunk per hand-off, so
//! every token cost two scheduler round trips between that task and the reader. Here the
//! connection ([`hyper::client::conn::http1`], hyper's own HTTP/1.1 implementation) is polled
//! inside the reader's task: one socket read yields every chunk it holds, within one poll.
//! Both halves are polled under an [`OwnWaker`], so the wakes hyper's hand-overs give the
//! task while it polls them do not reach the scheduler.
//!
//! [`Transport`] keeps idle keep-alive connections per engine (`host:port`) and retries a
//! request once on a fresh connection when a reused one turns out closed before any answer
//! (llama-server closes a connection after a streamed reply although it announces
//! keep-alive; the engine never saw the request, so the retry is safe). It only moves bytes
//! (and the W3C `traceparent` of the span a request is made in, when traces are on): status,
//! content type and events are the adapters' business.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, Stream};
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::clients::ClientOptions;
use super::own_waker::OwnWaker;

type Conn = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// Why a request to an engine failed in transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The engine's URL is not `http://host:port[/path]`.
    #[error("`{0}` is not an http:// URL an engine can be reached at")]
    BadUrl(String),
    /// The TCP connection could not be made.
    #[error("connect failed")]
    Connect(#[source] std::io::Error),
    /// The TCP connection did not complete in time.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// HTTP failed: the connection broke, or the engine spoke something that is not HTTP/1.1.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// The connection closed before the engine answered.
    #[error("the connection closed before the engine answered")]
    ClosedEarly,
}

impl TransportError {
    /// True for failures to reach the engine at all (nothing was sent).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            TransportError::Connect(_) | TransportError::ConnectTimeout(_) | TransportError::BadUrl(_)
        )
    }
}

/// An open HTTP/1.1 connection: the handle to send on and the connection to drive.
struct Open {
    sender: http1::SendRequest<Full<Bytes>>,
    conn: Pin<Box<Conn>>,
}

/// An idle connection in the pool.
struct Idle {
    open: Open,
    since: Instant,
}

type Pool = Mutex<HashMap<String, Vec<Idle>>>;

/// Connections to engines: made on demand, pooled when a reply ends cleanly. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    pool: Arc<Pool>,
    options: ClientOptions,
}

/// The head of an engine's answer and its body.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// `Content-Type`, when sent and readable.
    pub content_type: String,
    /// The body, read as it arrives.
    pub body: DrivenBody,
}

impl Transport {
    /// An empty pool governed by `options`.
    pub fn new(options: ClientOptions) -> Self {
        Self {
            pool: Arc::default(),
            options,
        }
    }

    /// `POST`s `body` (JSON) to `url`, asking for an event stream; resolves with the answer's
    /// head once it arrives.
    pub async fn post_json(&self, url: &str, body: Bytes) -> Result<Reply, TransportError> {
        let uri: Uri = url.parse().map_err(|_| TransportError::BadUrl(url.to_string()))?;
        let authority = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(a)) => a.as_str().to_string(),
            _ => return Err(TransportError::BadUrl(url.to_string())),
        };
        // The span the request is made in (a task's engine request) names itself to the engine.
        let traceparent = crate::trace_context::current_traceparent();
        let request = || {
            let mut req = Request::new(Full::new(body.clone()));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = uri.path_and_query().map_or_else(
                || Uri::from_static("/"),
                |p| Uri::try_from(p.as_str()).unwrap_or_else(|_| Uri::from_static("/")),
            );
            let headers = req.headers_mut();
            if let Ok(host) = HeaderValue::from_str(&authority) {
                headers.insert(header::HOST, host);
            }
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
            if let Some(traceparent) = &traceparent {
                headers.insert(crate::trace_context::TRACEPARENT, traceparent.clone());
            }
            req
        };
        if let Some(open) = self.take_idle(&authority) {
            match send(open, request()).await {
                Ok((response, open)) => return Ok(self.reply(response, open, authority)),
                // A reused connection the engine had closed: it never saw the request.
                Err(TransportError::ClosedEarly | TransportError::Http(_)) => {}
                Err(other) => return Err(other),
            }
        }
        let open = self.connect(&authority).await?;
        let (response, open) = send(open, request()).await?;
        Ok(self.reply(response, open, authority))
    }

    fn reply(&self, response: http::Response<Incoming>, open: Open, authority: String) -> Reply {
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let keep_alive = !response
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let status = response.status();
        let home = keep_alive.then(|| Home {
            pool: Arc::downgrade(&self.pool),
            authority,
            max_idle: self.options.max_idle_per_host,
        });
        Reply {
            status,
            content_type,
            body: DrivenBody {
                driven: Driven {
                    incoming: response.into_body(),
                    open: Some(open),
                    home,
                },
                own: OwnWaker::default(),
            },
        }
    }

    async fn connect(&self, authority: &str) -> Result<Open, TransportError> {
        let limit = self.options.connect_timeout;
        let tcp = tokio::time::timeout(limit, TcpStream::connect(authority))
            .await
            .map_err(|_| TransportError::ConnectTimeout(limit))?
            .map_err(TransportError::Connect)?;
        // Requests are one small write; without this, Nagle could hold it for an ACK.
        tcp.set_nodelay(true).map_err(TransportError::Connect)?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        Ok(Open {
            sender,
            conn: Box::pin(conn),
        })
    }

    /// A pooled connection to `authority` that is still open, if any.
    fn take_idle(&self, authority: &str) -> Option<Open> {
        let mut pool = lock(&self.pool);
        let idle = pool.get_mut(authority)?;
        while let Some(mut candidate) = idle.pop() {
            if candidate.since.elapsed() > self.options.idle_timeout || candidate.open.sender.is_closed() {
                continue;
            }
            // A close the engine sent while the connection sat idle is seen now.
            if candidate.open.conn.as_mut().now_or_never().is_some() {
                continue;
            }
            return Some(candidate.open);
        }
        None
    }
}

/// Waits until `open` can take a request, driving its connection meanwhile (a connection
/// says it is ready only once it has been polled).
async fn ready(open: &mut Open, own: &OwnWaker) -> Result<(), TransportError> {
    std::future::poll_fn(|cx| {
        own.poll(cx, |cx| {
            if let Poll::Ready(r) = open.sender.poll_ready(cx) {
                return Poll::Ready(r.or(Err(TransportError::ClosedEarly)));
            }
            if open.conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(TransportError::ClosedEarly));
            }
            open.sender
                .poll_ready(cx)
                .map(|r| r.or(Err(TransportError::ClosedEarly)))
        })
    })
    .await
}

/// Sends `request` on `open`, driving the connection until the answer's head arrives.
async fn send(
    mut open: Open,
    request: Request<Full<Bytes>>,
) -> Result<(http::Response<Incoming>, Open), TransportError> {
    let own = OwnWaker::default();
    ready(&mut open, &own).await?;
    let answer = open.sender.send_request(request);
    tokio::pin!(answer);
    let response = std::future::poll_fn(|cx| {
        own.poll(cx, |cx| {
            if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(TransportError::Http));
            }
            match open.conn.as_mut().poll(cx) {
                Poll::Pending => answer.as_mut().poll(cx).map_err(TransportError::Http),
                Poll::Ready(Err(e)) => Poll::Ready(Err(TransportError::Http(e))),
                // The connection ended before the head: the answer future can only fail now.
                Poll::Ready(Ok(())) => Poll::Ready(Err(TransportError::ClosedEarly)),
            }
        })
    })
    .await?;
    Ok((response, open))
}

/// Where a connection goes back when its reply ended cleanly.
struct Home {
    pool: Weak<Pool>,
    authority: String,
    max_idle: usize,
}

/// An answer's body whose connection is polled by whoever reads it. Dropped before its end,
/// it closes the connection (which makes llama-server stop generating); read to its end on a
/// keep-alive connection, the connection goes back to the pool.
pub struct DrivenBody {
    driven: Driven,
    own: OwnWaker,
}

/// The body and the connection that fills it.
struct Driven {
    incoming: Incoming,
    open: Option<Open>,
    home: Option<Home>,
}

impl Driven {
    /// The body ended: the connection is pooled when it can serve another request.
    fn finished(&mut self) {
        let (Some(open), Some(home)) = (self.open.take(), self.home.take()) else {
            return;
        };
        if open.sender.is_closed() || home.max_idle == 0 {
            return;
        }
        let Some(pool) = home.pool.upgrade() else { return };
        let mut pool = lock(&pool);
        let idle = pool.entry(home.authority).or_default();
        if idle.len() < home.max_idle {
            idle.push(Idle {
                open,
                since: Instant::now(),
            });
        }
    }
}

/// One look at the body.
enum Frame {
    Data(Bytes),
    /// A frame without data (trailers): look again.
    Skip,
    End,
    Failed(TransportError),
    Empty,
}

impl Driven {
    fn frame(&mut self, cx: &mut Context<'_>) -> Frame {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => Frame::Data(data),
                _ => Frame::Skip,
            },
            Poll::Ready(Some(Err(e))) => Frame::Failed(TransportError::Http(e)),
            Poll::Ready(None) => Frame::End,
            Poll::Pending => Frame::Empty,
        }
    }

    /// What a look at the body means for the stream; `None` when it was empty.
    fn deliver(&mut self, frame: Frame) -> Option<Option<Result<Bytes, TransportError>>> {
        match frame {
            Frame::Data(data) => Some(Some(Ok(data))),
            Frame::End => {
                self.finished();
                Some(None)
            }
            Frame::Failed(e) => {
                self.open = None;
                Some(Some(Err(e)))
            }
            Frame::Skip | Frame::Empty => None,
        }
    }
}

impl Stream for DrivenBody {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let DrivenBody { driven, own } = &mut *self;
        own.poll(cx, |cx| driven.look(cx))
    }
}

impl Driven {
    /// One look at the body, driving the connection when nothing is buffered. A chunk the
    /// connection hands over while it is polled wakes the [`OwnWaker`], which looks again.
    fn look(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        loop {
            let frame = self.frame(cx);
            let empty = matches!(frame, Frame::Empty);
            if let Some(item) = self.deliver(frame) {
                return Poll::Ready(item);
            }
            if !empty {
                continue;
            }
            // Nothing buffered: let the connection read and decode what the socket holds.
            let Some(open) = self.open.as_mut() else {
                return Poll::Ready(Some(Err(TransportError::ClosedEarly)));
            };
            match open.conn.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => {
                    // Done; whatever it decoded is in the body already, which ends next.
                    self.open = None;
                    self.home = None;
                }
                Poll::Ready(Err(e)) => {
                    self.open = None;
                    return Poll::Ready(Some(Err(TransportError::Http(e))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
