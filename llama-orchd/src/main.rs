//! `llama-orchd`: reads the config, opens the GPU inventory and the container runtime, builds
//! the snapshot channel and the data plane, then the controller that publishes into them, and
//! serves until SIGINT/SIGTERM (see `shutdown`). Wiring only: the logic lives in the controller
//! and api-server crates. Engine containers keep running when the daemon stops; the next start
//! adopts them.

mod log_writer;
mod otel;
mod settings;
mod shutdown;
mod sources;

/// mimalloc, not glibc's malloc: the relay path allocates a buffer per engine read on one worker
/// thread and frees it on another, where glibc's arenas spent ~16 % of the daemon's CPU
/// (docs/benchmarks.md, "Results — 2026-12-04").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use llorch_api::tasks::{DataPlane, prompt_count};
use llorch_controller::catalog::{hf, index, secret::Secret};
use llorch_controller::controller::{Controller, Settings as ControllerSettings};
use llorch_controller::drains::DrainRecords;
use llorch_controller::manifest_dir::admit::TrustRoot;
use llorch_controller::manifest_dir::writes::ManifestWriter;
use llorch_controller::manifest_store::ManifestStore;
use llorch_controller::models::{FileRoots, ModelsSettings};
use llorch_controller::reloads::ReloadCounters;
use llorch_controller::runtime::ContainerRuntime;
use llorch_controller::runtime::docker::DockerRuntime;
use llorch_controller::runtime::multi::MultiRuntime;
use llorch_controller::runtime::process::ProcessRuntime;
use llorch_controller::state_dir::{EventLog, StatusFiles};
use llorch_controller::{gpu, provision, triggers};
use llorch_manifests::api::{GpuSource, Snapshot};
use llorch_manifests::config::GpuConfig;
use llorch_manifests::identity::instance_selector;
use tokio::sync::watch;
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("llama-orchd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // The config first: whether traces are exported decides how logging is set up.
    let settings = settings::load(args.config.as_deref());
    let exporter = match &settings {
        Ok(settings::Resolved {
            traces_url: Some(url),
            config,
            ..
        }) => {
            let _in_runtime = runtime.enter();
            Some(otel::Exporter::start(url, &config.instance))
        }
        _ => None,
    }
    .transpose();
    let _log_writer = init_logging(&args.log_format, exporter.as_ref().ok().and_then(Option::as_ref));
    let (result, exporter) = match (settings, exporter) {
        (Ok(s), Ok(exporter)) => (runtime.block_on(run(s)), exporter),
        (Err(e), _) | (_, Err(e)) => (Err(e), None),
    };
    // Spans batched so far go out while the runtime still runs their task.
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    // Streams still open after the grace period are dropped, not waited for.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "llama-orchd cannot start");
            eprintln!("llama-orchd: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(s: settings::Resolved) -> anyhow::Result<()> {
    s.log();
    let mut signals = shutdown::Signals::listen();
    let gpus = gpu::open(&s.config.gpus).map_err(|e| anyhow::anyhow!("{e}"))?;
    log_gpu_source(gpus.as_ref());
    let runtime = connect_runtime(&s).await?;
    std::fs::create_dir_all(&s.manifests_dir)
        .map_err(|e| anyhow::anyhow!("cannot create manifests directory {}: {e}", s.manifests_dir.display()))?;
    let events = Arc::new(EventLog::open(&s.state_dir)?);
    let listener = tokio::net::TcpListener::bind(s.bind).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e} (set `bind:` in {})",
            s.bind,
            s.config_path.display()
        )
    })?;
    tracing::info!(bind = %s.bind, manifests = %s.manifests_dir.display(), state = %s.state_dir.display(), instance = %s.config.instance, "llama-orchd listening");

    // The one snapshot channel and the data plane come first: the controller publishes into
    // the one and retires replicas through the other.
    let (publish, snapshot) = watch::channel(Arc::new(Snapshot {
        instance: s.config.instance.clone(),
        ..Snapshot::default()
    }));
    let data = data_plane(&s, snapshot.clone()).await?;
    let records = open_records(&s).await?;
    data.set_records(records.clone());
    let reloads = Arc::new(ReloadCounters::open(&s.state_dir));
    let controller = controller(&s, runtime.clone(), gpus, events.clone(), publish, &data, &reloads)?;
    tracing::info!(cache = %s.models_cache.display(), downloads = s.config.models.downloads, allow_hosts = ?s.config.models.allow_hosts, file_roots = ?s.model_file_roots, "model cache");
    let wake = controller.waker();
    data.set_controller_waker(wake.clone());
    let _watcher = triggers::watch_manifests(&s.manifests_dir, wake.clone())
        .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", s.manifests_dir.display()))?;
    let state = llorch_api::AppState::new(
        snapshot.clone(),
        Arc::new(sources::Events(events)),
        Arc::new(sources::Logs {
            runtime: runtime.clone(),
            snapshot,
        }),
    )
    .with_data(data.clone())
    .with_catalog(Arc::new(sources::Catalog(controller.models_handle())))
    .with_pool_control(Arc::new(sources::Reloads {
        counters: reloads,
        wake: wake.clone(),
    }))
    .with_manifest_writes(Arc::new(sources::ManifestWrites {
        writer: ManifestWriter::new(
            &s.manifests_dir,
            TrustRoot {
                provisioning: s.config.provisioning.clone(),
                file_roots: FileRoots::under(s.model_file_roots.iter().cloned()),
            },
        ),
        wake: wake.clone(),
    }))
    .with_records(records)
    .with_front_door(s.front_door);

    let stop = CancellationToken::new();
    let stop_api = CancellationToken::new();
    let api = tokio::spawn(llorch_api::serve(listener, state, stop_api.clone().cancelled_owned()));
    let follower = tokio::spawn(triggers::forward_runtime_events(
        runtime.clone(),
        instance_selector(&s.config.instance),
        wake,
        stop.clone(),
    ));
    let control = tokio::spawn(controller.run(stop.clone()));

    signals.next().await;
    data.stop_admitting();
    stop.cancel();
    stop_api.cancel();
    let grace = Duration::from_millis(s.config.shutdown_grace_ms);
    let served = async {
        let _ = api.await;
    };
    shutdown::drain(Some(&data), served, grace, &mut signals).await;
    // A pass in progress finishes first; it is not waited for long.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = control.await;
        let _ = follower.await;
    })
    .await;
    Ok(())
}

/// Says at startup when the GPU inventory is simulated or absent: both change what can run.
fn log_gpu_source(gpus: &dyn gpu::GpuInventory) {
    if gpus.simulated() {
        tracing::warn!(
            gpus = gpus.devices().map(|d| d.len()).unwrap_or(0),
            "GPU inventory is SIMULATED (config `gpus: simulate`): for tests and demos only; no inference runs on these devices"
        );
    }
    if gpus.source() == GpuSource::None {
        tracing::info!(
            "no GPUs (config `gpus: none`): only Pools on external Engines run; any other Pool is blocked, and no Model only they use is fetched"
        );
    }
}

/// The data plane reading `snapshot`: drains recorded under `<state>` restored, and prompt
/// token counting set from the environment when it says so.
async fn data_plane(
    s: &settings::Resolved,
    snapshot: watch::Receiver<Arc<Snapshot>>,
) -> anyhow::Result<Arc<DataPlane>> {
    let drains = Arc::new(sources::Drains(DrainRecords::open(&s.state_dir)));
    let data = DataPlane::with_drain_store(snapshot, llorch_api::engine::EngineClients::new(), drains);
    if let Ok(mode) = std::env::var(prompt_count::TOKEN_COUNT_ENV) {
        let mode: prompt_count::CountMode = mode
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", prompt_count::TOKEN_COUNT_ENV))?;
        tracing::info!(mode = ?mode, "prompt token counting for admission");
        data.set_token_counting(mode);
    }
    data.restore_drains().await;
    Ok(data)
}

/// The artifact store under `<state>/artifacts` (job records, plans, diffs), opened on a
/// blocking thread (it reads its index).
async fn open_records(s: &settings::Resolved) -> anyhow::Result<Arc<llorch_api::records::Records>> {
    let dir = s.state_dir.join("artifacts");
    let cfg = &s.config.records;
    let settings = llorch_api::records::RecordsSettings {
        enabled: cfg.enabled,
        max_bytes: cfg.max_bytes,
        max_age: cfg.max_age.get(),
    };
    let shown = dir.clone();
    let records = tokio::task::spawn_blocking(move || llorch_api::records::Records::open(&dir, settings))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot open the artifact store {}: {e}", shown.display()))?;
    tracing::info!(dir = %shown.display(), enabled = cfg.enabled, max_bytes = cfg.max_bytes, max_age = %cfg.max_age, "job records");
    Ok(records)
}

/// The controller, publishing into `publish` and retiring replicas through `data`.
fn controller(
    s: &settings::Resolved,
    runtime: Arc<MultiRuntime<DockerRuntime>>,
    gpus: Box<dyn gpu::GpuInventory>,
    events: Arc<EventLog>,
    publish: watch::Sender<Arc<Snapshot>>,
    data: &Arc<DataPlane>,
    reloads: &Arc<ReloadCounters>,
) -> anyhow::Result<Controller<MultiRuntime<DockerRuntime>>> {
    let settings = ControllerSettings {
        instance: s.config.instance.clone(),
        resync: Duration::from_millis(s.config.resync_interval_ms),
    };
    let store = ManifestStore::new(&s.manifests_dir);
    Ok(
        Controller::new(runtime, settings, store, gpus, StatusFiles::open(&s.state_dir)?, events)
            .publishing_to(publish)
            .with_provisioning(s.config.provisioning.clone())
            .with_models(models_settings(s))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_gate(Arc::new(sources::DataPlaneGate(data.clone())))
            .with_demand(Arc::new(sources::DataPlaneGate(data.clone())))
            .with_reloads(reloads.clone())
            .with_on_gpu_grace(s.config.on_gpu_grace.get()),
    )
}

/// Docker or Podman (with the process runtime beside it), or the process runtime alone when
/// nothing declared needs containers.
async fn connect_runtime(s: &settings::Resolved) -> anyhow::Result<Arc<MultiRuntime<DockerRuntime>>> {
    let records = s.state_dir.join("processes");
    let processes = ProcessRuntime::open(&records)
        .map_err(|e| anyhow::anyhow!("cannot create the process records directory {}: {e}", records.display()))?;
    match DockerRuntime::connect(s.config.runtime.kind, s.config.runtime.socket.as_deref()).await {
        Ok(docker) => {
            let id = docker.identity();
            tracing::info!(runtime = %id.kind, socket = %id.socket, version = %id.version, "container runtime connected");
            Ok(Arc::new(MultiRuntime::new(Arc::new(docker), processes)))
        }
        // Without GPUs nothing but external Engines runs, so no runtime is needed whatever is
        // declared: container Pools are blocked with the reason.
        Err(e) if s.config.gpus == GpuConfig::None => {
            tracing::info!(error = %e, "no container runtime; none is needed under `gpus: none`");
            Ok(Arc::new(MultiRuntime::processes_only(e.to_string(), processes)))
        }
        // Engines that are processes or external URLs need no Docker/Podman: start without one
        // when nothing declared needs it; container Engines declared later say what is missing.
        Err(e) if !provision::needs_container_runtime(&ManifestStore::new(&s.manifests_dir).scan()) => {
            tracing::warn!(error = %e, "no container runtime; running only binary, source, package and external engines");
            Ok(Arc::new(MultiRuntime::processes_only(e.to_string(), processes)))
        }
        Err(e) => Err(e.into()),
    }
}

fn models_settings(s: &settings::Resolved) -> ModelsSettings {
    ModelsSettings {
        cache_dir: Some(s.models_cache.clone()),
        index_file: Some(s.state_dir.join(index::FILE_NAME)),
        config: s.config.models.clone(),
        hf_token: Secret::from_env(llorch_manifests::config::HF_TOKEN_ENV),
        hub: hf::HUB.into(),
        file_roots: FileRoots::under(s.model_file_roots.iter().cloned()),
    }
}

/// JSON (or text) lines on stderr, through [`log_writer`]: buffered in memory and written by
/// a background thread, so that no request waits for a write. The guard flushes what is left
/// when it drops at exit. With an `exporter`, its layer sits beside the log's, each with its
/// own filter (`LLAMA_ORCH_LOG` does not turn spans off); without one, no such layer exists.
///
/// JSON lines print no span (no current span, no span list), so the JSON log layer takes
/// events only: without an exporter no layer wants a span, and a task's spans cost nothing
/// (each task opens six, and a refusal at admission two; the log layer formatted their fields
/// for nobody). Text lines keep their span context.
fn init_logging(format: &str, exporter: Option<&otel::Exporter>) -> log_writer::FlushGuard {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, fmt};

    let filter = tracing_subscriber::EnvFilter::try_from_env("LLAMA_ORCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = log_writer::buffered_stderr();
    // Colour only for a person at a terminal: a file, a pipe or journald gets plain text.
    let ansi = log_writer::colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let log = fmt::layer().with_writer(writer).with_ansi(ansi);
    let log = if format == "json" {
        log.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter.and(filter_fn(|meta| meta.is_event())))
            .boxed()
    } else {
        log.with_filter(filter).boxed()
    };
    let registry = tracing_subscriber::registry().with(log);
    match exporter {
        Some(exporter) => registry.with(exporter.layer()).init(),
        None => registry.init(),
    }
    guard
}
