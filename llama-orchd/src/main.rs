//! `llama-orchd`: reads the config, opens the GPU inventory and the container runtime, and
//! runs the controller and the API server until SIGINT/SIGTERM. Wiring only: the logic lives
//! in the controller and api-server crates. Engine containers keep running when the daemon
//! stops; the next start adopts them.

mod settings;
mod sources;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use llorch_controller::catalog::{hf, index, secret::Secret};
use llorch_controller::controller::{Controller, Settings};
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::models::ModelsSettings;
use llorch_controller::reloads::ReloadCounters;
use llorch_controller::runtime::ContainerRuntime;
use llorch_controller::runtime::docker::DockerRuntime;
use llorch_controller::runtime::multi::MultiRuntime;
use llorch_controller::runtime::process::ProcessRuntime;
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_controller::{gpu, labels, provision, triggers};
use tokio_util::sync::CancellationToken;

/// The llama-orch daemon.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about = "The llama-orch daemon: keeps the engine containers declared by the manifests in \
    <home>/manifests running and Ready, and serves the API. Home is $LLAMA_ORCH_HOME or ~/.llama-orch; \
    its config.yaml is optional."
)]
struct Args {
    /// Config file (default: <home>/config.yaml; missing means defaults).
    #[arg(long, env = "LLAMA_ORCH_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Log format on stderr.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("llama-orchd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "llama-orchd cannot start");
            eprintln!("llama-orchd: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let s = settings::load(args.config.as_deref())?;
    let gpus = gpu::open(&s.config.gpus).map_err(|e| anyhow::anyhow!("{e}"))?;
    if gpus.simulated() {
        tracing::warn!(
            gpus = gpus.devices().map(|d| d.len()).unwrap_or(0),
            "GPU inventory is SIMULATED (config `gpus: simulate`): for tests and demos only; no inference runs on these devices"
        );
    }
    let processes = ProcessRuntime::open(&s.state_dir.join("processes")).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the process records directory {}: {e}",
            s.state_dir.join("processes").display()
        )
    })?;
    let runtime = match DockerRuntime::connect(s.config.runtime.kind, s.config.runtime.socket.as_deref()).await {
        Ok(docker) => {
            let id = docker.identity();
            tracing::info!(runtime = %id.kind, socket = %id.socket, version = %id.version, "container runtime connected");
            Arc::new(MultiRuntime::new(Arc::new(docker), processes))
        }
        // Engines that are processes or external URLs need no Docker/Podman: start without one
        // when nothing declared needs it; container Engines declared later say what is missing.
        Err(e) if !provision::needs_container_runtime(&ManifestStore::new(&s.manifests_dir).scan()) => {
            tracing::warn!(error = %e, "no container runtime; running only binary, source, package and external engines");
            Arc::new(MultiRuntime::processes_only(e.to_string(), processes))
        }
        Err(e) => return Err(e.into()),
    };
    std::fs::create_dir_all(&s.manifests_dir)
        .map_err(|e| anyhow::anyhow!("cannot create manifests directory {}: {e}", s.manifests_dir.display()))?;
    let status_files = StatusFiles::open(&s.state_dir)?;
    let events = Arc::new(EventLog::open(&s.state_dir)?);
    let listener = tokio::net::TcpListener::bind(s.bind).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e} (set `bind:` in {})",
            s.bind,
            s.config_path.display()
        )
    })?;
    tracing::info!(bind = %s.bind, manifests = %s.manifests_dir.display(), state = %s.state_dir.display(), instance = %s.config.instance, "llama-orchd listening");

    let controller = Controller::new(
        runtime.clone(),
        Settings {
            instance: s.config.instance.clone(),
            resync: std::time::Duration::from_millis(s.config.resync_interval_ms),
        },
        ManifestStore::new(&s.manifests_dir),
        gpus,
        status_files,
        events.clone(),
    )
    .with_provisioning(s.config.provisioning.clone());
    let controller = controller
        .with_models(ModelsSettings {
            cache_dir: Some(s.models_cache.clone()),
            index_file: Some(s.state_dir.join(index::FILE_NAME)),
            config: s.config.models.clone(),
            hf_token: Secret::from_env(llorch_manifests::config::HF_TOKEN_ENV),
            hub: hf::HUB.into(),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(cache = %s.models_cache.display(), downloads = s.config.models.downloads, allow_hosts = ?s.config.models.allow_hosts, "model cache");
    let catalog = controller.models_handle();
    // Rollouts retire old replicas through the data plane's in-flight count; explicit reloads
    // come from the API. Both are wired once the API state exists (below).
    let reloads = Arc::new(ReloadCounters::open(&s.state_dir));
    let gate = sources::DataPlaneGate::default();
    let controller = controller
        .with_gate(Arc::new(gate.clone()))
        .with_reloads(reloads.clone());
    let snapshot = controller.subscribe();
    let wake = controller.waker();
    let _watcher = triggers::watch_manifests(&s.manifests_dir, wake.clone())
        .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", s.manifests_dir.display()))?;

    let cancel = CancellationToken::new();
    let state = llorch_api::AppState::new(
        snapshot.clone(),
        Arc::new(sources::Events(events)),
        Arc::new(sources::Logs {
            runtime: runtime.clone(),
            snapshot,
        }),
    )
    .with_data_plane(llorch_api::engine::EngineClients::new()?)
    .with_catalog(Arc::new(sources::Catalog(catalog)));
    let state = state.with_pool_control(Arc::new(sources::Reloads {
        counters: reloads,
        wake: wake.clone(),
    }));
    if let Some(dp) = &state.data {
        gate.connect(dp.clone());
    }
    let api = tokio::spawn(llorch_api::serve(listener, state, cancel.clone().cancelled_owned()));
    let follower = tokio::spawn(triggers::forward_runtime_events(
        runtime.clone(),
        labels::instance_selector(&s.config.instance),
        wake,
        cancel.clone(),
    ));
    let control = tokio::spawn(controller.run(cancel.clone()));

    shutdown_signal().await;
    tracing::info!("shutting down; engine containers keep running and will be adopted on the next start");
    cancel.cancel();
    let _ = control.await;
    let _ = follower.await;
    let _ = api.await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLAMA_ORCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.init();
    }
}
