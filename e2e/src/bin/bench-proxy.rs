//! `bench-proxy`: the reference `bench-dataplane` measures llama-orch against — the smallest
//! reverse proxy one would write in Rust on the same stack (tokio, hyper 1, hyper-util's
//! pooled client), doing nothing but the hop: every request goes to the next upstream in turn
//! (method, path, headers and body as received), and the reply is streamed back as its body
//! frames arrive. No parsing of bodies, no queue, no records, no log line per request.
//!
//! Where a benchmark's aim is below what this proxy adds on the same machine, it is below the
//! cost of one HTTP hop there, whatever the orchestrator does; what llama-orch adds beyond this
//! proxy is its own work.
//!
//! `bench-proxy --upstream http://127.0.0.1:A[,http://127.0.0.1:B…] [--fresh | --tcp]` listens
//! on an ephemeral loopback port and prints it on the first line of stdout. `--fresh` opens a
//! new upstream connection per request (llama-server closes its connection after a streamed
//! reply), else idle upstream connections are kept and reused.
//!
//! `--tcp` makes it a byte pump instead: no HTTP at all, each accepted connection is joined to
//! a new connection to the next upstream in turn and bytes are copied both ways as they come
//! (`tokio::io::copy_bidirectional`). That is the floor under any proxy that reads and writes in
//! user space: what it costs is the machine's, not a protocol's.
//!
//! A test helper, not part of the product.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Reply = Response<Either<Incoming, Full<Bytes>>>;

/// The upstreams and the client that reaches them.
struct Upstreams {
    bases: Vec<String>,
    next: AtomicUsize,
    client: Client<HttpConnector, Incoming>,
}

impl Upstreams {
    /// Sends `req` to the next upstream; its reply as it streams, or a 502 naming the error.
    async fn forward(&self, req: Request<Incoming>) -> Result<Reply, Infallible> {
        let base = &self.bases[self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len()];
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match format!("{base}{path}").parse::<Uri>() {
            Ok(uri) => uri,
            Err(e) => return Ok(bad_gateway(format!("bad upstream URI: {e}"))),
        };
        // The client writes the upstream's own `Host`.
        parts.headers.remove(hyper::header::HOST);
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(reply) => Ok(reply.map(Either::Left)),
            Err(e) => Ok(bad_gateway(format!("upstream {base}: {e:?}"))),
        }
    }
}

fn bad_gateway(why: String) -> Reply {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(why))));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

fn usage() -> ! {
    eprintln!("usage: bench-proxy --upstream http://HOST:PORT[,http://HOST:PORT…] [--fresh | --tcp]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut bases = Vec::new();
    let mut fresh = false;
    let mut tcp = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--upstream" => {
                let list = it.next().unwrap_or_else(|| usage());
                bases.extend(list.split(',').map(|b| b.trim_end_matches('/').to_string()));
            }
            "--fresh" => fresh = true,
            "--tcp" => tcp = true,
            _ => usage(),
        }
    }
    if bases.is_empty() || (fresh && tcp) {
        usage();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let port = listener.local_addr().expect("the bound address").port();
    let mut out = std::io::stdout();
    writeln!(out, "{port}").and_then(|()| out.flush()).expect("stdout");
    if tcp {
        pump(listener, bases).await
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(if fresh { 0 } else { 1024 })
        .build(connector);
    let upstreams = Arc::new(Upstreams {
        bases,
        next: AtomicUsize::new(0),
        client,
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let upstreams = upstreams.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let upstreams = upstreams.clone();
                async move { upstreams.forward(req).await }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `--tcp`: joins each accepted connection to a new one to the next upstream, bytes both ways.
async fn pump(listener: TcpListener, bases: Vec<String>) -> ! {
    let addrs: Vec<String> = bases
        .iter()
        .map(|b| b.strip_prefix("http://").unwrap_or(b).to_string())
        .collect();
    let mut next = 0usize;
    loop {
        let Ok((mut down, _)) = listener.accept().await else {
            continue;
        };
        let addr = addrs[next % addrs.len()].clone();
        next += 1;
        tokio::spawn(async move {
            let Ok(mut up) = tokio::net::TcpStream::connect(&addr).await else {
                return;
            };
            let _ = down.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
        });
    }
}
