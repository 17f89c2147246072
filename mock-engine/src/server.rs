//! The server's life: listen, "load" the model (delay, GGUF header check, injected failure), serve, and
//! shut down on request or crash on an injected fault. Returns errors instead of exiting, so that
//! tests can run it in-process; `main` maps them to exit codes.

use std::future::IntoFuture;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access_log::log_requests;
use crate::api_error::ApiError;
use crate::cli::Config;
use crate::model_file::{self, LoadFailure};
use crate::request_log::record_bodies;
use crate::state::{AppState, BUILD_INFO};
use crate::{chat, embeddings, llamacpp, openai, request_log, tgi, utility_routes};

/// How long open requests get to finish after SIGTERM before connections are dropped.
/// `docker stop` waits 10 s before SIGKILL; this stays well under it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to load model '{}': {source}", path.display())]
    LoadModel {
        path: PathBuf,
        #[source]
        source: LoadFailure,
    },
    #[error("failed to load model '{}' (injected by --fail-at-start)", path.display())]
    InjectedLoadFailure { path: PathBuf },
    #[error("exiting with code 1 after {tokens} tokens (injected by --exit-after-tokens)")]
    InjectedCrash { tokens: u64 },
    #[error("HTTP server failed")]
    Serve(#[source] io::Error),
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(llamacpp::health))
        .route("/props", get(llamacpp::props))
        .route("/slots", get(llamacpp::slots))
        .route("/metrics", get(llamacpp::metrics))
        .route("/completion", post(llamacpp::completion))
        .route("/completions", post(llamacpp::completion))
        .route("/v1/models", get(openai::models))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/embeddings", post(embeddings::embeddings))
        .route("/generate", post(tgi::generate))
        .route("/generate_stream", post(tgi::generate_stream))
        .route("/info", get(tgi::info))
        .route("/tokenize", post(utility_routes::tokenize))
        .route("/detokenize", post(utility_routes::detokenize))
        .route("/apply-template", post(utility_routes::apply_template))
        .route("/debug/requests", get(request_log::debug_requests))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record_bodies))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), gate_loading))
        .layer(middleware::from_fn(log_requests))
        .with_state(state)
}

/// Like llama-server, every route answers 503 "Loading model" until the model is loaded.
async fn gate_loading(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if state.is_loaded() {
        next.run(request).await
    } else {
        ApiError::loading().into_response()
    }
}

async fn not_found(request: Request) -> Response {
    ApiError::not_found(request.uri().path()).into_response()
}

/// Serves on `listener` until `shutdown` is cancelled (then drains for at most
/// [`SHUTDOWN_GRACE`]) or an injected fault ends the engine.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    let state = AppState::new(config);
    let address = listener.local_addr().map_err(RunError::Serve)?;
    print_banner(&state.config, address);

    let stop_serving = CancellationToken::new();
    let mut server = tokio::spawn(
        axum::serve(listener, router(Arc::clone(&state)))
            .with_graceful_shutdown(stop_serving.clone().cancelled_owned())
            .into_future(),
    );

    let loaded = tokio::select! {
        loaded = load_model(&state) => loaded,
        () = shutdown.cancelled() => Ok(()),
    };
    if let Err(err) = loaded {
        server.abort();
        return Err(err);
    }
    if !shutdown.is_cancelled() {
        eprintln!("main: model loaded");
        eprintln!("main: server is listening on http://{address} - starting the main loop");
        eprintln!("srv  update_slots: all slots are idle");
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = state.faults.crashed().cancelled() => {
                server.abort();
                let tokens = state.faults.exit_after_tokens().unwrap_or_default();
                return Err(RunError::InjectedCrash { tokens });
            }
            served = &mut server => {
                return match served {
                    Ok(result) => result.map_err(RunError::Serve),
                    Err(join) => Err(RunError::Serve(io::Error::other(join))),
                };
            }
        }
    }

    eprintln!("srv    operator(): operator(): cleaning up before exit...");
    stop_serving.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
        eprintln!("main: open requests did not finish within {SHUTDOWN_GRACE:?}; closing them");
        server.abort();
    }
    Ok(())
}

fn print_banner(config: &Config, address: std::net::SocketAddr) {
    let rate = config.token_interval.map_or_else(
        || "unlimited".to_owned(),
        |interval| format!("{:.1} tokens/s", 1.0 / interval.as_secs_f64()),
    );
    let faults = [
        config.fail_at_start.then(|| "fail-at-start".to_owned()),
        config.exit_after_tokens.map(|n| format!("exit-after-tokens={n}")),
        config.hang_after_tokens.map(|n| format!("hang-after-tokens={n}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    eprintln!(
        "{BUILD_INFO}: model '{}' (alias '{}'), listening on http://{address}, slots {}, ctx {} ({} per slot), \
         load delay {} ms, token rate {rate}, health {}, faults: {}",
        config.model_path.display(),
        config.alias,
        config.parallel,
        config.ctx_size,
        config.n_ctx_slot(),
        config.load_delay.as_millis(),
        config.health,
        if faults.is_empty() {
            "none".to_owned()
        } else {
            faults.join(", ")
        },
    );
    eprintln!("build: {BUILD_INFO}");
    eprintln!(
        "main: HTTP server is listening, hostname: {}, port: {}",
        address.ip(),
        address.port()
    );
    eprintln!("main: loading model");
}

/// "Loads" the model: waits `--load-delay-ms`, checks the file as llama.cpp would (see
/// [`model_file`]), applies `--fail-at-start`.
async fn load_model(state: &AppState) -> Result<(), RunError> {
    let config = &state.config;
    let path = config.model_path.as_path();
    eprintln!("srv    load_model: loading model '{}'", path.display());
    tokio::time::sleep(config.load_delay).await;
    let checked = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || model_file::check(&path)).await
    };
    let summary = match checked {
        Ok(Ok(summary)) => summary,
        Ok(Err(failure)) => {
            print_load_failure(path, &failure.lines(path));
            return Err(RunError::LoadModel {
                path: path.to_owned(),
                source: failure,
            });
        }
        Err(join) => return Err(RunError::Serve(io::Error::other(join))),
    };
    eprintln!(
        "print_info: arch = {}, n_layer = {}, n_head = {}, n_head_kv = {}, n_embd = {}, n_ctx_train = {}",
        summary.architecture,
        summary.layers,
        summary.heads,
        summary.kv_heads,
        summary.embedding_length,
        summary.context_length
    );
    if config.fail_at_start {
        let line = "llama_model_load: error loading model: injected by mock-engine --fail-at-start".to_owned();
        print_load_failure(path, &[line]);
        return Err(RunError::InjectedLoadFailure { path: path.to_owned() });
    }
    eprintln!("srv    load_model: initializing slots, n_slots = {}", config.parallel);
    for id in 0..config.parallel {
        eprintln!(
            "slot         init: id {id:>2} | task -1 | new slot, n_ctx = {}",
            config.n_ctx_slot()
        );
    }
    // llama-server reports the tensor bytes (`llama_model_size`) as the model's size.
    state.set_loaded(summary.tensor_bytes);
    Ok(())
}

fn print_load_failure(path: &Path, cause: &[String]) {
    let path = path.display();
    for line in cause {
        eprintln!("{line}");
    }
    eprintln!("llama_model_load_from_file_impl: failed to load model");
    eprintln!("common_init_from_params: failed to load model '{path}'");
    eprintln!("srv    load_model: failed to load model, '{path}'");
    eprintln!("error: failed to load model '{path}'");
    eprintln!("main: exiting due to model loading error");
}
