//! `orchctl plan pool/<name>` (or `-f file.yaml`): what llama-orch will do for a Pool, before
//! anything runs (ORCH-3207) — the model (reference, resolved file, cache, digest check), its
//! VRAM figure when the daemon knows it, the Engine's provisioning steps for its mode, and per
//! replica the exact container or process the runtime would receive (image or executable,
//! arguments with placeholders filled, environment, GPU devices).
//!
//! It reads the manifests directory like `apply` does (plus `-f` input, which wins), and the
//! daemon's snapshot (GPUs, model status) when the daemon answers; it lists what it could not
//! know. Rendering ([`render`]) is pure: the same inputs give byte-identical text.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use llorch_controller::provision::engine_cache_dir;
use llorch_controller::provision::os::OsRelease;
use llorch_controller::provision::plan::{EnginePlan, RunAs, engine_plan};
use llorch_controller::runtime::{ContainerSpec, GpuAttachment, Launch};
use llorch_controller::spec::{ReplicaInputs, assign_gpus};
use llorch_manifests::api::{GpuView, Snapshot};
use llorch_manifests::config::{Config, GpuConfig};
use llorch_manifests::model::ModelRef;
use llorch_manifests::parse::Located;
use llorch_manifests::status::{ModelState, PoolVram};
use llorch_manifests::{AnyObject, Engine, Kind, Model, ObjectRef, Pool};

use crate::Io;
use crate::cli::PlanArgs;
use crate::client::Client;
use crate::context::Context;
use crate::manifest_dir::ManifestDir;

/// Replaces the unique suffix of container names, which is chosen when the replica starts.
pub const NAME_SUFFIX: &str = "<unique>";

/// Where the GPU list came from.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuSource {
    /// The daemon's inventory.
    Daemon(Vec<GpuView>, bool),
    /// The config's simulated list.
    Config(usize),
    /// Not known (NVML, daemon not reachable).
    Unknown,
}

/// Everything one Pool's plan is made from.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// The Pool and the file that declares it.
    pub pool: Located,
    /// Its Engine, if declared.
    pub engine: Option<Engine>,
    /// Its Model and the file that declares it, if declared.
    pub model: Option<(Model, PathBuf)>,
    /// The config.
    pub config: Config,
    /// GPUs.
    pub gpus: GpuSource,
    /// The daemon's view of the Model, if it answered.
    pub model_status: Option<ModelState>,
    /// The daemon's VRAM figure for the Pool, if it answered.
    pub vram: Option<PoolVram>,
    /// Engine cache.
    pub engine_cache: PathBuf,
    /// Model cache.
    pub model_cache: PathBuf,
    /// This host's OS.
    pub os: OsRelease,
    /// Whether the daemon answered (and at which URL).
    pub daemon: Result<String, String>,
}

/// Runs `orchctl plan`.
pub async fn run(ctx: &Context, args: &PlanArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let dir = ManifestDir::read(&ctx.manifests_dir)?;
    let mut objects: Vec<Located> = dir.objects().cloned().collect();
    let mut wanted: Vec<String> = Vec::new();
    if !args.files.is_empty() {
        let cwd = std::env::current_dir()?;
        let sources = crate::input::read_sources(&args.files, &cwd, io.input)?;
        let input = crate::input::parse_sources(&sources).map_err(|errors| {
            anyhow::anyhow!(
                "{}",
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
            )
        })?;
        for i in input {
            let r = i.located.object.object_ref();
            if r.kind == Kind::Pool {
                wanted.push(r.name.clone());
            }
            objects.retain(|o| o.object.object_ref() != r);
            objects.push(i.located);
        }
    }
    if let Some(target) = &args.target {
        let r = crate::delete::parse_object_ref(target, None)?;
        anyhow::ensure!(
            r.kind == Kind::Pool,
            "`orchctl plan` plans Pools: write `pool/{}`",
            r.name
        );
        wanted.push(r.name);
    }
    anyhow::ensure!(
        !wanted.is_empty(),
        "name a Pool (`orchctl plan pool/chat`) or give `-f file.yaml`"
    );
    let snapshot = match Client::new(&ctx.server) {
        Ok(client) => client.snapshot().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let mut first = true;
    for name in wanted {
        let input = gather(ctx, &objects, &name, &snapshot)?;
        if !first {
            writeln!(io.out)?;
        }
        first = false;
        write!(io.out, "{}", render(&input))?;
    }
    Ok(0)
}

fn find<'a>(objects: &'a [Located], kind: Kind, name: &str) -> Option<&'a Located> {
    objects
        .iter()
        .rev()
        .find(|o| o.object.object_ref() == ObjectRef::new(kind, name))
}

fn gather(
    ctx: &Context,
    objects: &[Located],
    name: &str,
    snapshot: &Result<Snapshot, String>,
) -> anyhow::Result<PlanInput> {
    let pool = find(objects, Kind::Pool, name)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no Pool `{name}` in {} or the -f input", ctx.manifests_dir.display()))?;
    let AnyObject::Pool(p) = &pool.object else {
        anyhow::bail!("pool/{name} is not a Pool")
    };
    let engine = match find(objects, Kind::Engine, &p.spec.engine).map(|l| &l.object) {
        Some(AnyObject::Engine(e)) => Some(e.clone()),
        _ => None,
    };
    let model = match find(objects, Kind::Model, &p.spec.model) {
        Some(Located {
            object: AnyObject::Model(m),
            file,
            ..
        }) => Some((m.clone(), PathBuf::from(file))),
        _ => None,
    };
    let config = ctx.config.clone();
    let status_of = |kind: Kind, n: &str| {
        snapshot
            .as_ref()
            .ok()
            .and_then(|s| s.objects.iter().find(|o| o.object == ObjectRef::new(kind, n)))
            .map(|o| o.status.clone())
    };
    let gpus = match (snapshot, &config.gpus) {
        (Ok(s), _) => GpuSource::Daemon(s.gpus.clone(), s.gpus_simulated),
        (Err(_), GpuConfig::Simulate(list)) => GpuSource::Config(list.len()),
        (Err(_), GpuConfig::Nvml) => GpuSource::Unknown,
    };
    let env = |k: &str| std::env::var(k).ok();
    Ok(PlanInput {
        model_status: status_of(Kind::Model, &p.spec.model).and_then(|s| s.model),
        vram: status_of(Kind::Pool, name).and_then(|s| s.vram),
        engine_cache: engine_cache_dir(&config.provisioning),
        model_cache: config.models.cache_dir.clone().unwrap_or_else(|| {
            llorch_manifests::config::cache_root(env("XDG_CACHE_HOME").as_deref(), env("HOME").as_deref())
                .join("models")
        }),
        os: OsRelease::read(),
        daemon: snapshot.as_ref().map(|_| ctx.server.clone()).map_err(Clone::clone),
        pool,
        engine,
        model,
        config,
        gpus,
    })
}

/// The plan as text. Pure and deterministic.
pub fn render(input: &PlanInput) -> String {
    let mut out = String::new();
    let mut unknown: Vec<String> = Vec::new();
    let AnyObject::Pool(pool) = &input.pool.object else {
        return out;
    };
    let _ = writeln!(
        out,
        "Plan for pool/{} (declared in {}, document {})",
        pool.name(),
        input.pool.file,
        input.pool.document + 1
    );
    match &input.daemon {
        Ok(url) => {
            let _ = writeln!(out, "daemon: {url} answered; GPUs and model status are its own");
        }
        Err(e) => {
            let _ = writeln!(out, "daemon: not reachable ({e})");
            unknown.push("the daemon's GPU inventory and model status (it did not answer)".into());
        }
    }

    // Model.
    let _ = writeln!(out, "\nmodel {}", pool.spec.model);
    let model_path = match &input.model {
        None => {
            let _ = writeln!(out, "  MISSING: Model `{}` is not declared", pool.spec.model);
            None
        }
        Some((m, file)) => model_lines(&mut out, &mut unknown, input, m, file),
    };
    match &input.vram {
        Some(v) => {
            let _ = writeln!(
                out,
                "  VRAM per replica: {} bytes ({}: weights {}, KV cache {}, overhead {})",
                v.per_replica_bytes, v.source, v.weights_bytes, v.kv_cache_bytes, v.overhead_bytes
            );
        }
        None => {
            let _ = writeln!(out, "  VRAM per replica: unknown");
            unknown.push("the VRAM estimate (the daemon computes it from the GGUF header)".into());
        }
    }

    // Engine.
    let _ = writeln!(out);
    let Some(engine) = &input.engine else {
        let _ = writeln!(
            out,
            "engine {}\n  MISSING: Engine `{}` is not declared",
            pool.spec.engine, pool.spec.engine
        );
        return finish(out, unknown);
    };
    let plan = engine_plan(
        engine.name(),
        &engine.spec,
        &input.config.provisioning,
        &input.engine_cache,
        &input.os,
    );
    for line in plan.lines() {
        let _ = writeln!(out, "{line}");
    }

    // Replicas.
    replica_lines(
        &mut out,
        &mut unknown,
        input,
        pool,
        engine,
        &plan,
        model_path.as_deref(),
    );
    finish(out, unknown)
}

fn model_lines(
    out: &mut String,
    unknown: &mut Vec<String>,
    input: &PlanInput,
    m: &Model,
    file: &Path,
) -> Option<PathBuf> {
    let _ = writeln!(out, "  ref: {}", m.spec.reference);
    let path = match m.spec.parse_ref() {
        Ok(ModelRef::File(p)) => {
            let base = file.parent().unwrap_or(Path::new("/"));
            let path = base.join(p);
            let state = match std::fs::metadata(&path) {
                Ok(meta) => format!("present, {} bytes", meta.len()),
                Err(_) => "MISSING".to_string(),
            };
            let _ = writeln!(out, "  file: {} ({state}; a local file, not cached)", path.display());
            Some(path)
        }
        Ok(ModelRef::Url { url, host, .. }) => {
            let _ = writeln!(out, "  source: {url} (host {host})");
            remote_lines(out, unknown, input, host)
        }
        Ok(ModelRef::Hf { repo, file }) => {
            let _ = writeln!(
                out,
                "  source: Hugging Face repo {repo}, file {}",
                file.unwrap_or("(the repo's only .gguf)")
            );
            remote_lines(out, unknown, input, "huggingface.co")
        }
        Err(e) => {
            let _ = writeln!(out, "  INVALID: {e}");
            None
        }
    };
    let _ = writeln!(
        out,
        "  digest: {}",
        match &m.spec.digest {
            Some(d) => format!("{d}: verified before any replica starts; a mismatch fails the Model"),
            None => "none given: the file is not verified".to_string(),
        }
    );
    path
}

fn remote_lines(out: &mut String, unknown: &mut Vec<String>, input: &PlanInput, host: &str) -> Option<PathBuf> {
    let models = &input.config.models;
    let allowed = models
        .allow_hosts
        .iter()
        .any(|h| host == h || host.ends_with(&format!(".{h}")));
    let _ = writeln!(
        out,
        "  download: {}",
        match (models.downloads, allowed) {
            (false, _) => "refused (config `models.downloads: false`)".to_string(),
            (true, false) => format!("refused: `{host}` is not in config `models.allowHosts`"),
            (true, true) => format!("allowed, into the model cache {}", input.model_cache.display()),
        }
    );
    match input.model_status.as_ref().and_then(|s| s.path.clone()) {
        Some(p) => {
            let _ = writeln!(out, "  file: {p} (resolved by the daemon)");
            Some(PathBuf::from(p))
        }
        None => {
            let _ = writeln!(out, "  file: not fetched yet");
            unknown.push("the model file's final path (known once fetched)".into());
            None
        }
    }
}

fn replica_lines(
    out: &mut String,
    unknown: &mut Vec<String>,
    input: &PlanInput,
    pool: &Pool,
    engine: &Engine,
    plan: &EnginePlan,
    model_path: Option<&Path>,
) {
    let _ = writeln!(out, "\nreplicas: {}", pool.spec.replicas);
    if let RunAs::Attach(url) = &plan.run {
        let _ = writeln!(out, "  replica 0: the external engine at {url} (nothing is created)");
        return;
    }
    let (available, simulated): (Vec<u32>, bool) = match &input.gpus {
        GpuSource::Daemon(g, sim) => (g.iter().map(|g| g.index).collect(), *sim),
        GpuSource::Config(n) => ((0..*n as u32).collect(), true),
        GpuSource::Unknown => {
            unknown.push("which GPUs exist (NVML is read by the daemon; start it, or run `orchctl doctor`)".into());
            (Vec::new(), false)
        }
    };
    let selection = pool.spec.gpus.select(&available);
    // Source and package Engines run as binaries once provisioned.
    let mut launched = engine.clone();
    if let (RunAs::Executable(exe), false) = (&plan.run, plan.mode == llorch_manifests::Provisioning::Binary) {
        // As the daemon launches it (provision::launchable): a binary Engine, path resolved.
        launched.spec.provisioning = llorch_manifests::Provisioning::Binary;
        launched.spec.executable = Some(
            llorch_controller::runtime::process::resolve::which(exe)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| exe.clone()),
        );
        launched.spec.source = None;
        launched.spec.package = None;
    }
    let model_path = model_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("<model file>"));
    let Some((model, _)) = &input.model else { return };
    for index in 0..pool.spec.replicas {
        let gpus = match assign_gpus(&selection, pool.spec.gpus_per_replica, index) {
            Ok(g) => g,
            Err(e) => {
                let _ = writeln!(out, "  replica {index}: cannot be placed: {e}");
                continue;
            }
        };
        let spec = ReplicaInputs {
            instance: &input.config.instance,
            pool_name: pool.name(),
            pool: &pool.spec,
            engine: &launched.spec,
            model: &model.spec,
            model_path: &model_path,
            index,
            gpus: &gpus,
            gpus_simulated: simulated,
        }
        .container_spec(NAME_SUFFIX);
        spec_lines(out, index, &spec);
    }
}

fn spec_lines(out: &mut String, index: u32, spec: &ContainerSpec) {
    match &spec.launch {
        Launch::Image => {
            let _ = writeln!(out, "  replica {index}: container {}", spec.name);
            let _ = writeln!(out, "    image: {}", spec.image);
            let _ = writeln!(
                out,
                "    port: {} published on 127.0.0.1 at a free port",
                spec.container_port
            );
        }
        Launch::Executable(exe) => {
            let _ = writeln!(out, "  replica {index}: process {}", spec.name);
            let _ = writeln!(out, "    executable: {exe}");
            let _ = writeln!(out, "    port: {{port}} = a free 127.0.0.1 port picked at start");
        }
    }
    let args: Vec<String> = spec
        .args
        .iter()
        .map(|a| llorch_controller::provision::plan::quote(a))
        .collect();
    let _ = writeln!(out, "    args: {}", args.join(" "));
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(out, "    env: {}", env.join(" "));
    for m in &spec.mounts {
        let _ = writeln!(
            out,
            "    mount: {} -> {}{}",
            m.host_path,
            m.container_path,
            if m.read_only { " (read-only)" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "    gpus: {}",
        match &spec.gpus {
            GpuAttachment::None => "none".to_string(),
            GpuAttachment::Simulated(g) => format!("SIMULATED {g:?}: environment only, no device"),
            GpuAttachment::Nvidia(g) if matches!(spec.launch, Launch::Executable(_)) => {
                format!("NVIDIA {g:?}: a process sees the host's devices; CUDA_VISIBLE_DEVICES selects them")
            }
            GpuAttachment::Nvidia(g) => format!(
                "NVIDIA {g:?}: Docker device request (driver nvidia, ids {}), Podman CDI {}",
                g.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                g.iter()
                    .map(|i| format!("nvidia.com/gpu={i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    );
}

fn finish(mut out: String, unknown: Vec<String>) -> String {
    if !unknown.is_empty() {
        let _ = writeln!(out, "\nnot known here:");
        for u in unknown {
            let _ = writeln!(out, "  - {u}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn located(yaml: &str) -> Vec<Located> {
        llorch_manifests::parse_file("/m/stack.yaml", yaml.as_bytes()).unwrap()
    }

    fn input(engine_spec: &str, gpus: GpuSource) -> PlanInput {
        let objects = located(&format!(
            "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: e}}\nspec: {engine_spec}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: m}}\nspec: {{ref: 'file:/models/tiny.gguf', ctxMax: 4096}}\n---\n\
             apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: e, model: m, replicas: 2}}\n"
        ));
        let AnyObject::Engine(engine) = objects[0].object.clone() else {
            panic!()
        };
        let AnyObject::Model(model) = objects[1].object.clone() else {
            panic!()
        };
        PlanInput {
            pool: objects[2].clone(),
            engine: Some(engine),
            model: Some((model, PathBuf::from("/m/stack.yaml"))),
            config: Config::default(),
            gpus,
            model_status: None,
            vram: None,
            engine_cache: PathBuf::from("/cache/engines"),
            model_cache: PathBuf::from("/cache/models"),
            os: OsRelease::parse("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"),
            daemon: Err("connection refused".into()),
        }
    }

    #[test]
    fn the_same_input_renders_byte_identical_text() {
        let a = input("{image: 'img:dev', version: '1'}", GpuSource::Config(2));
        assert_eq!(render(&a), render(&a.clone()));
        let text = render(&a);
        assert!(text.contains("replica 0: container llorch-default-chat-0-"), "{text}");
        assert!(text.contains("-<unique>"), "{text}");
        assert!(
            text.contains("args: --model /models/tiny.gguf --host 0.0.0.0 --port 8080"),
            "{text}"
        );
        assert!(text.contains("gpus: SIMULATED [1]"), "round robin: {text}");
        assert!(
            text.contains("mount: /models/tiny.gguf -> /models/tiny.gguf (read-only)"),
            "{text}"
        );
        assert!(text.contains("not known here:"), "{text}");
        assert!(text.contains("daemon: not reachable (connection refused)"), "{text}");
    }

    #[test]
    fn a_source_engine_shows_its_steps_its_gate_and_the_built_binary_per_replica() {
        let a = input(
            "{provisioning: source, version: b1, source: {repo: 'https://github.com/ggml-org/llama.cpp', ref: b1}}",
            GpuSource::Config(1),
        );
        let text = render(&a);
        assert!(
            text.contains("steps (run only when config `provisioning.allowSourceBuilds` is true; it is false):"),
            "{text}"
        );
        assert!(
            text.contains(
                "1. git clone --depth 1 --branch b1 https://github.com/ggml-org/llama.cpp /cache/engines/src/e-b1"
            ),
            "{text}"
        );
        assert!(
            text.contains("executable: /cache/engines/src/e-b1/build/bin/llama-server"),
            "{text}"
        );
        assert!(
            text.contains("args: --model /models/tiny.gguf --host 127.0.0.1 --port '{port}'"),
            "{text}"
        );
    }

    #[test]
    fn an_external_engine_creates_nothing() {
        let a = input(
            "{provisioning: external, url: 'http://127.0.0.1:9', version: '1'}",
            GpuSource::Unknown,
        );
        let text = render(&a);
        assert!(
            text.contains("replica 0: the external engine at http://127.0.0.1:9 (nothing is created)"),
            "{text}"
        );
    }
}
