//! Gathering one plan's inputs: the manifests directory (plus `-f` input, which wins), the
//! daemon's snapshot when it answers (GPUs, replicas, model status), else the config's GPUs,
//! and the GGUF headers of local model files. All of the command's I/O is here; it writes
//! nothing, and what it cannot learn it leaves for [`super::render`] to list.

use std::path::PathBuf;

use llorch_controller::placement::{PoolDemand, memory};
use llorch_controller::provision::engine_cache_dir;
use llorch_controller::provision::os::OsRelease;
use llorch_manifests::api::{GpuView, Snapshot};
use llorch_manifests::parse::Located;
use llorch_manifests::{AnyObject, Kind, ObjectRef, Provisioning};

use super::replicas::blocked;
use super::{Figures, GpuSource, PlanInput, gpus, render};
use crate::Io;
use crate::cli::PlanArgs;
use crate::context::{Context, WriteTarget};
use llorch_controller::manifest_dir::ManifestDir;

/// Runs `orchctl plan`.
pub async fn run(ctx: &Context, args: &PlanArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let snapshot = match ctx.client() {
        Ok(client) => client.snapshot().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let mut objects: Vec<Located> = match ctx.writes {
        WriteTarget::Directory => ManifestDir::read(&ctx.manifests_dir)?.objects().cloned().collect(),
        // The daemon is elsewhere: what it declares is what its snapshot holds.
        WriteTarget::Api => declared(snapshot.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?),
    };
    let mut wanted: Vec<String> = Vec::new();
    if !args.files.is_empty() {
        let input = crate::input::read_objects(&args.files, io.input)?;
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
    let mut first = true;
    for name in wanted {
        let input = gather(ctx, &objects, &name, &snapshot)?;
        if !first {
            writeln!(io.out)?;
        }
        first = false;
        let text = render(&input);
        write!(io.out, "{text}")?;
        if snapshot.is_ok() {
            store_plan(ctx, &name, &text, io).await?;
        }
    }
    Ok(0)
}

/// Keeps the plan as a `plan` artifact on the daemon that answered; its id (or why it was not
/// stored) goes to stderr, so stdout stays the plan alone.
async fn store_plan(ctx: &Context, pool: &str, text: &str, io: &mut Io<'_>) -> anyhow::Result<()> {
    let content = serde_json::json!({ "pool": pool, "plan": text });
    match ctx
        .client()?
        .store_artifact(llorch_manifests::records::ArtifactKind::Plan, &content)
        .await
    {
        Ok(id) => writeln!(io.err, "plan stored as artifact {id}")?,
        Err(e) => writeln!(io.err, "note: the plan was not stored on the daemon: {e}")?,
    }
    Ok(())
}

/// The objects a daemon declares, from its snapshot (secrets there are already redacted).
pub fn declared(snapshot: &Snapshot) -> Vec<Located> {
    snapshot
        .objects
        .iter()
        .filter_map(|view| {
            let object: AnyObject = serde_json::from_value(view.manifest.clone()?).ok()?;
            let source = view.source.as_ref();
            Some(Located {
                file: source.map(|s| s.file.clone()).unwrap_or_default(),
                document: source.map_or(0, |s| s.document),
                object,
            })
        })
        .collect()
}

fn find<'a>(objects: &'a [Located], kind: Kind, name: &str) -> Option<&'a Located> {
    objects
        .iter()
        .rev()
        .find(|o| o.object.object_ref() == ObjectRef::new(kind, name))
}

/// Everything the plan of Pool `name` is made from.
pub fn gather(
    ctx: &Context,
    objects: &[Located],
    name: &str,
    snapshot: &Result<Snapshot, String>,
) -> anyhow::Result<PlanInput> {
    let pool = find(objects, Kind::Pool, name).cloned().ok_or_else(|| {
        let place = match ctx.writes {
            WriteTarget::Directory => ctx.manifests_dir.display().to_string(),
            WriteTarget::Api => format!("what llama-orchd at {} declares", ctx.server),
        };
        anyhow::anyhow!("no Pool `{name}` in {place} or the -f input")
    })?;
    let AnyObject::Pool(p) = &pool.object else {
        anyhow::bail!("pool/{name} is not a Pool")
    };
    let engine = match find(objects, Kind::Engine, &p.spec.engine).map(|l| &l.object) {
        Some(AnyObject::Engine(e)) => Some(e.clone()),
        _ => None,
    };
    let model = model_of(objects, &p.spec.model);
    let config = ctx.config.clone();
    let daemon = snapshot.as_ref().ok();
    let status_of = |kind: Kind, n: &str| {
        daemon
            .and_then(|s| s.objects.iter().find(|o| o.object == ObjectRef::new(kind, n)))
            .map(|o| o.status.clone())
    };
    let gpus = match daemon {
        Some(s) if s.gpu_source == llorch_manifests::api::GpuSource::None => GpuSource::NoGpus,
        Some(s) => GpuSource::Daemon {
            devices: s.gpus.clone(),
            simulated: s.gpus_simulated,
        },
        None => GpuSource::from_config(&config.gpus),
    };
    let existing = daemon
        .map(|s| s.replicas.iter().filter_map(gpus::existing).collect())
        .unwrap_or_default();
    let devices = gpus.for_planner().unwrap_or_default();
    let others = objects
        .iter()
        .filter_map(|o| match &o.object {
            AnyObject::Pool(other) if other.name() != name => Some(other),
            _ => None,
        })
        .map(|other| other_demand(objects, other, &devices, daemon))
        .collect();
    let figures = match &model {
        Some((m, file)) => Figures::read(m, file, daemon),
        None => Figures::Unknown("the Model is not declared".into()),
    };
    let env = |k: &str| std::env::var(k).ok();
    Ok(PlanInput {
        model_status: status_of(Kind::Model, &p.spec.model).and_then(|s| s.model),
        engine_cache: engine_cache_dir(&config.provisioning),
        model_cache: config.models.cache_dir.clone().unwrap_or_else(|| {
            llorch_manifests::config::cache_root(env("XDG_CACHE_HOME").as_deref(), env("HOME").as_deref())
                .join("models")
        }),
        os: OsRelease::read(),
        daemon: snapshot.as_ref().map(|_| ctx.server.clone()).map_err(Clone::clone),
        existing,
        others,
        figures,
        pool,
        engine,
        model,
        config,
        gpus,
    })
}

fn model_of(objects: &[Located], name: &str) -> Option<(llorch_manifests::Model, PathBuf)> {
    match find(objects, Kind::Model, name) {
        Some(Located {
            object: AnyObject::Model(m),
            file,
            ..
        }) => Some((m.clone(), PathBuf::from(file))),
        _ => None,
    }
}

/// What another declared Pool asks of the GPUs. The daemon places it when it reconciles it:
/// here, when its Engine and Model are declared, the Engine is not external and its mask is
/// valid (the daemon also waits for its model file; a plan assumes it comes).
fn other_demand(
    objects: &[Located],
    pool: &llorch_manifests::Pool,
    devices: &[GpuView],
    daemon: Option<&Snapshot>,
) -> PoolDemand {
    let engine = match find(objects, Kind::Engine, &pool.spec.engine).map(|l| &l.object) {
        Some(AnyObject::Engine(e)) => Some(e),
        _ => None,
    };
    let model = model_of(objects, &pool.spec.model);
    let figures = model.as_ref().map(|(m, file)| Figures::read(m, file, daemon));
    let attached = engine.is_none_or(|e| e.spec.provisioning == Provisioning::External);
    let (mut demand, _) = memory::demand(
        pool,
        model.as_ref().map(|(m, _)| m),
        figures.as_ref().and_then(Figures::vram),
        devices,
        true,
    );
    demand.place = !attached && model.is_some() && blocked(devices, &demand.mask, demand.gpus_per_replica).is_ok();
    demand
}
