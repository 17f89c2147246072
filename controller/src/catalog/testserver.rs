//! A tiny HTTP/1.1 server on a loopback port for the catalog's tests: fixed routes (bodies
//! with `Range` support, redirects, statuses, JSON), a switch that cuts the next body after
//! half its bytes, and a record of every request's headers. One request per connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// The test server's self-signed certificate (for `localhost` and `127.0.0.1`).
pub const CERT_PEM: &[u8] = include_bytes!("fixtures/localhost-cert.pem");

/// What a path answers.
#[derive(Clone, Debug)]
pub enum Route {
    /// 200 with these bytes (206 for a satisfiable `Range`).
    Body(Vec<u8>),
    /// 200 with these bytes, ignoring `Range`.
    BodyNoRange(Vec<u8>),
    /// 200 with these bytes and no `Content-Length` (the body ends when the connection does).
    BodyNoLength(Vec<u8>),
    /// 302 to this location.
    Redirect(String),
    /// This status, empty body.
    Status(u16),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The path.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: HashMap<String, String>,
}

/// The server's shared state.
#[derive(Debug, Default)]
pub struct Server {
    routes: Mutex<HashMap<String, Route>>,
    cut_next: AtomicBool,
    stall_next: AtomicBool,
    closed_while_stalled: AtomicBool,
    seen: Mutex<Vec<Seen>>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Server {
    /// Starts serving on a free loopback port.
    pub async fn start() -> Arc<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = Arc::new(Server {
            base,
            ..Server::default()
        });
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(s.clone().serve(conn));
            }
        });
        server
    }

    /// Starts serving https as `localhost` on a free loopback port, with the certificate and
    /// key in `fixtures/` (self-signed, `localhost` and `127.0.0.1`).
    pub async fn start_tls() -> Arc<Server> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert = CertificateDer::from_pem_slice(CERT_PEM).expect("cert");
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/localhost-key.pem")).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = Arc::new(Server {
            base: format!("https://localhost:{port}"),
            ..Server::default()
        });
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(conn).await {
                        s.serve(tls).await;
                    }
                });
            }
        });
        server
    }

    /// Sets what `path` answers.
    pub fn route(&self, path: &str, route: Route) {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_string(), route);
    }

    /// Cuts the next body response after half its bytes.
    pub fn cut_next(&self) {
        self.cut_next.store(true, Ordering::SeqCst);
    }

    /// Sends half of the next body response, then holds the connection open for a minute.
    pub fn stall_next(&self) {
        self.stall_next.store(true, Ordering::SeqCst);
    }

    /// True once a client hung up on a stalled response.
    pub fn closed_while_stalled(&self) -> bool {
        self.closed_while_stalled.load(Ordering::SeqCst)
    }

    /// Requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self: Arc<Self>, mut conn: S) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let mut lines = text.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("/")
            .to_string();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).push(Seen {
            path: path.clone(),
            headers: headers.clone(),
        });
        let route = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&path)
            .cloned();
        let (status, extra, body) = match route {
            None => (404, String::new(), Vec::new()),
            Some(Route::Status(s)) => (s, String::new(), Vec::new()),
            Some(Route::Redirect(to)) => (302, format!("Location: {to}\r\n"), Vec::new()),
            Some(Route::BodyNoRange(b)) => (200, String::new(), b),
            Some(Route::BodyNoLength(b)) => (200, "X-No-Length: 1\r\n".to_string(), b),
            Some(Route::Body(b)) => {
                let start = headers
                    .get("range")
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<usize>().ok());
                match start {
                    Some(s) if s < b.len() => (
                        206,
                        format!("Content-Range: bytes {s}-{}/{}\r\n", b.len() - 1, b.len()),
                        b[s..].to_vec(),
                    ),
                    Some(_) => (416, format!("Content-Range: bytes */{}\r\n", b.len()), Vec::new()),
                    None => (200, String::new(), b),
                }
            }
        };
        let length = match extra.contains("X-No-Length") {
            true => String::new(),
            false => format!("Content-Length: {}\r\n", body.len()),
        };
        let head = format!("HTTP/1.1 {status} X\r\n{length}{extra}Connection: close\r\n\r\n");
        let _ = conn.write_all(head.as_bytes()).await;
        let half =
            !body.is_empty() && (self.cut_next.swap(false, Ordering::SeqCst) || self.stall_next.load(Ordering::SeqCst));
        let send = if half { &body[..body.len() / 2] } else { &body[..] };
        let _ = conn.write_all(send).await;
        if !body.is_empty() && self.stall_next.swap(false, Ordering::SeqCst) {
            let _ = conn.flush().await;
            // Until the client hangs up (or a minute passes).
            let mut probe = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(std::time::Duration::from_secs(60), conn.read(&mut probe)).await
            {
                self.closed_while_stalled.store(true, Ordering::SeqCst);
            }
        }
        let _ = conn.shutdown().await;
    }
}
