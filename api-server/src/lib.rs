//! llama-orch's HTTP API server: liveness and readiness, control-plane reads of the snapshot the
//! controller publishes (`/v2/pools`, `/v2/replicas`, `/v2/gpus`, …), recent and live events,
//! engine log tails and Prometheus metrics, the task data plane behind the native (`/v2/tasks`)
//! and OpenAI-compatible (`/v1`) front doors, and the status page's static files (`/ui`).
//!
//! It only reads: the controller owns the [`Snapshot`] (through a `watch` channel) and the
//! event and log sources behind [`EventSource`] and [`LogSource`]; it commands the controller
//! only through [`PoolControl`]. It never touches containers or manifest files. Every error it
//! answers is one [`ApiError`].

pub mod correlation;
pub mod dataplane;
pub mod engine;
pub mod error;
pub mod extract;
pub mod front_door;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod openai;
pub mod records;
mod routes;
pub mod sources;
pub mod sse;
pub mod tasks;
pub mod trace_context;
pub mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use llorch_manifests::api::Snapshot;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::ApiError;
pub use error::OpenAi;
pub use sources::{
    BoxFuture, CatalogSource, EventSource, LogLines, LogSource, LogsError, NoCatalog, NoEvents, NoLogs, PullRefusal,
};
pub use sources::{NoPoolControl, PoolControl, PoolEditError, RestartError};

/// The largest request body accepted (task and chat requests are the only bodies): room for
/// a long conversation, and a cap on what a client can make the server buffer. Larger bodies
/// get 413 with the limit named.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler reads: the controller's latest snapshot, its events and its log tails.
#[derive(Clone)]
pub struct AppState {
    /// The controller's latest view of the world; `synced` is false until its first full scan.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Recent events, newest last.
    pub events: Arc<dyn EventSource>,
    /// Engine container logs.
    pub logs: Arc<dyn LogSource>,
    /// The task data plane; without one, the task routes answer 503.
    pub data: Option<Arc<tasks::DataPlane>>,
    /// Reload and scale commands to the controller.
    pub pools: Arc<dyn PoolControl>,
    /// The write API's manifest writer.
    pub manifests: Arc<dyn sources::ManifestWrites>,
    /// The model catalog (entries, pulls).
    pub catalog: Arc<dyn CatalogSource>,
    /// Tokens and the `Host`/`Origin` policy every request passes first.
    pub front_door: Arc<front_door::FrontDoor>,
    /// Cancelled when the server stops accepting connections: streams without an end of
    /// their own (`/v2/events/stream`) end then, so they do not hold up a graceful shutdown.
    pub closing: tokio_util::sync::CancellationToken,
    /// Job records, plans and diffs (`/v2/artifacts`); without them those routes answer 503.
    pub records: Option<Arc<records::Records>>,
}

impl AppState {
    /// Bundles the three sources.
    pub fn new(
        snapshot: watch::Receiver<Arc<Snapshot>>,
        events: Arc<dyn EventSource>,
        logs: Arc<dyn LogSource>,
    ) -> Self {
        Self {
            snapshot,
            events,
            logs,
            data: None,
            pools: Arc::new(NoPoolControl),
            manifests: Arc::new(sources::NoManifestWrites),
            catalog: Arc::new(NoCatalog),
            front_door: Arc::new(front_door::FrontDoor::loopback_only()),
            closing: tokio_util::sync::CancellationToken::new(),
            records: None,
        }
    }

    /// Puts `door` in front of every route (the default admits loopback clients only).
    pub fn with_front_door(mut self, door: front_door::FrontDoor) -> Self {
        self.front_door = Arc::new(door);
        self
    }

    /// Adds the model catalog behind `GET /v2/catalog` and `POST /v2/models/{name}/pull`.
    pub fn with_catalog(mut self, catalog: Arc<dyn CatalogSource>) -> Self {
        self.catalog = catalog;
        self
    }

    /// Lets `POST /v2/pools/{id}/reload` and `POST /v2/pools/{id}/scale` command the controller.
    pub fn with_pool_control(mut self, pools: Arc<dyn PoolControl>) -> Self {
        self.pools = pools;
        self
    }

    /// Lets `POST /v2/manifests` and `DELETE /v2/manifests/{kind}/{name}` write manifests.
    pub fn with_manifest_writes(mut self, manifests: Arc<dyn sources::ManifestWrites>) -> Self {
        self.manifests = manifests;
        self
    }

    /// Serves `records` behind `/v2/artifacts` (give the data plane the same store to record
    /// its tasks).
    pub fn with_records(mut self, records: Arc<records::Records>) -> Self {
        self.records = Some(records);
        self
    }

    /// Adds a task data plane (admission, dispatch, streaming) over the same snapshot.
    pub fn with_data_plane(self, engines: engine::EngineClients) -> Self {
        let data = tasks::DataPlane::new(self.snapshot.clone(), engines);
        self.with_data(data)
    }

    /// Serves `data`, a data plane built over the same snapshot channel.
    pub fn with_data(mut self, data: Arc<tasks::DataPlane>) -> Self {
        self.data = Some(data);
        self
    }

    /// The current snapshot. Cheap (an `Arc` clone); never held across an await.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.borrow())
    }
}

/// Every route of the API, behind the [`front_door`], with JSON errors, a request body limit
/// and `X-Correlation-Id`.
pub fn router(state: AppState) -> Router {
    let door = Arc::clone(&state.front_door);
    let routes = Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::metrics::metrics))
        .route("/v2/snapshot", get(routes::objects::snapshot))
        .route("/v2/manifests", post(routes::manifests::apply))
        .route("/v2/manifests/{kind}/{name}", delete(routes::manifests::delete))
        .route("/v2/pools", get(routes::objects::list_pools))
        .route("/v2/pools/{name}", get(routes::objects::get_pool))
        .route("/v2/pools/{name}/health", get(routes::pools::health))
        .route(
            "/v2/pools/{name}/drain",
            post(routes::pools::drain).delete(routes::pools::resume),
        )
        .route("/v2/pools/{name}/reload", post(routes::pools::reload))
        .route("/v2/pools/{name}/wake", post(routes::pools::wake))
        .route("/v2/pools/{name}/scale", post(routes::pools::scale))
        .route("/v2/models", get(routes::objects::list_models))
        .route("/v2/models/{name}", get(routes::objects::get_model))
        .route("/v2/models/{name}/pull", post(routes::catalog::pull))
        .route("/v2/catalog", get(routes::catalog::list))
        .route("/v2/engines", get(routes::objects::list_engines))
        .route("/v2/engines/{name}", get(routes::objects::get_engine))
        .route("/v2/replicas", get(routes::objects::list_replicas))
        .route("/v2/replicas/{id}/logs", get(routes::logs::replica_logs))
        .route("/v2/gpus", get(routes::objects::list_gpus))
        .route("/v2/events", get(routes::events::list_events))
        .route("/v2/events/stream", get(routes::event_stream::stream))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .route("/v2/tasks", post(routes::tasks::submit).get(routes::tasks::list))
        .route("/v2/tasks/{id}", get(routes::tasks::status))
        .route("/v2/tasks/{id}/events", get(routes::task_stream::events))
        .route("/v2/tasks/{id}/cancel", post(routes::tasks::cancel))
        .route(
            "/v2/artifacts",
            get(routes::artifacts::list).post(routes::artifacts::create),
        )
        .route("/v2/artifacts/{id}", get(routes::artifacts::get))
        .route("/v2/artifacts/{id}/replay", post(routes::artifacts::replay))
        .route("/v2/meta/capabilities", get(routes::tasks::capabilities))
        .route("/v1/models", get(routes::openai::list_models))
        .route("/v1/models/{id}", get(routes::openai::get_model))
        .route("/v1/chat/completions", post(routes::openai::chat_completions))
        .route("/v1/completions", post(routes::openai::completions))
        .route("/v1/embeddings", post(routes::openai::embeddings))
        .route("/v1/{*rest}", axum::routing::any(routes::openai::not_found))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&door),
            front_door::authenticate,
        ));
    // Layers run outermost last-added: correlation id, screen, CORS (if any origin is
    // allowed), authenticate, the route.
    let routes = match door.cors() {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes
        .layer(axum::middleware::from_fn_with_state(door, front_door::screen))
        .layer(axum::middleware::from_fn(correlation::correlation_id))
        .with_state(state)
}

/// How long a connection may take to send a request's headers, and stay idle between
/// requests: a client that trickles a header (slow loris) or holds a connection open without
/// asking anything is cut off then. Streams are not affected: the timer runs only while a
/// request's head is awaited.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves [`router`] on `listener` until `shutdown` completes, then lets in-flight requests
/// finish. Each connection is HTTP/1.1 with `TCP_NODELAY` and [`HEADER_READ_TIMEOUT`]; the
/// peer's address is the request's `ConnectInfo` (the front door tells loopback clients by it).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, shutdown, HEADER_READ_TIMEOUT).await
}

/// [`serve`] with another header-read timeout (tests use a short one).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let closing = state.closing.clone();
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Token frames are small writes: without TCP_NODELAY, Nagle's algorithm holds each one
        // back until the client's delayed ACK, adding ~40 ms to the first token (measured).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on a client connection");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            tower::ServiceExt::oneshot(app.clone(), request)
        });
        let connection = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    closing.cancel();
    graceful.shutdown().await;
    Ok(())
}
