//! `orchctl get`: tables of pools, models, engines, replicas or GPUs from llama-orchd (`-o
//! wide` with more columns), `kind/name` lines (`-o name`), the raw objects (`-o json`), or
//! for pools, models and engines their manifests as declared (`-o yaml`, which `apply -f -`
//! takes back). `-l` keeps the objects whose labels match; `--watch` goes on printing
//! changes ([`watch`]). Under a pool table, manifest errors that belong to no object (a file
//! with a syntax error) are printed as warnings, since they may be why a pool is missing.

pub mod watch;

use jiff::Timestamp;
use llorch_manifests::api::{GpuSource, GpuView, ObjectView, Snapshot};
use llorch_manifests::status::ReplicaStatus;
use llorch_manifests::{Kind, ObjectRef};

use crate::Io;
use crate::cli::{GetArgs, GetOutput, Output, Resource};
use crate::context::Context;
use crate::output::{manifest_documents, print_raw};
use crate::selector::Selector;
use crate::table::Table;
use crate::views;

/// The kind of a resource that has manifests.
pub fn kind_of(resource: Resource) -> Option<Kind> {
    match resource {
        Resource::Pools => Some(Kind::Pool),
        Resource::Models => Some(Kind::Model),
        Resource::Engines => Some(Kind::Engine),
        Resource::Replicas | Resource::Gpus => None,
    }
}

/// The table of `kind`'s objects, with the wide columns when asked.
pub fn objects_table(kind: Kind, views: &[ObjectView], now: Timestamp, wide: bool) -> Table {
    let mut table = match kind {
        Kind::Pool => views::pools(views, now),
        Kind::Model => views::models(views, now),
        Kind::Engine => views::engines(views, now),
    };
    if wide {
        views::wide::objects(&mut table, kind, views);
    }
    table
}

/// The replica table, wide when asked.
pub fn replicas_table(replicas: &[ReplicaStatus], wide: bool) -> Table {
    let mut table = views::replicas(replicas);
    if wide {
        views::wide::replicas(&mut table, replicas);
    }
    table
}

/// The GPU table, wide when asked.
pub fn gpus_table(gpus: &[GpuView], simulated: bool, wide: bool) -> Table {
    let mut table = views::gpus(gpus, simulated);
    if wide {
        views::wide::gpus(&mut table, gpus);
    }
    table
}

/// The table text for `kind`'s objects, with pool-table warnings.
pub fn objects_text(kind: Kind, views: &[ObjectView], snapshot: &Snapshot, now: Timestamp) -> String {
    objects_text_with(kind, views, snapshot, now, false)
}

fn objects_text_with(kind: Kind, views: &[ObjectView], snapshot: &Snapshot, now: Timestamp, wide: bool) -> String {
    let table = objects_table(kind, views, now, wide);
    let mut text = if table.is_empty() {
        String::new()
    } else {
        table.render()
    };
    if kind == Kind::Pool {
        text.push_str(&views::file_error_warnings(&snapshot.file_errors));
    }
    if !snapshot.synced {
        text.push_str("note: llama-orchd is still scanning manifests and containers; this list may be incomplete\n");
    }
    text
}

/// `-l`, parsed, and refused where there are no labels or a name is given too.
pub fn selector(args: &GetArgs) -> anyhow::Result<Option<Selector>> {
    let Some(text) = &args.selector else { return Ok(None) };
    if kind_of(args.resource()).is_none() {
        anyhow::bail!(
            "-l selects pools, models and engines by their metadata.labels; replicas and GPUs have no labels"
        );
    }
    if args.name()?.is_some() {
        anyhow::bail!("-l cannot be combined with a name: name one object or select several");
    }
    Ok(Some(Selector::parse(text)?))
}

/// The objects of `kind` in `snapshot` that `selector` keeps, in the daemon's order.
pub fn select_objects(snapshot: &Snapshot, kind: Kind, selector: Option<&Selector>) -> Vec<ObjectView> {
    snapshot
        .objects
        .iter()
        .filter(|o| o.object.kind == kind)
        .filter(|o| selector.is_none_or(|s| s.matches(&views::wide::labels(o))))
        .cloned()
        .collect()
}

/// `orchctl get`.
pub async fn run(
    ctx: &Context,
    args: &GetArgs,
    io: &mut Io<'_>,
    interrupt: impl std::future::Future<Output = ()>,
) -> anyhow::Result<u8> {
    let selector = selector(args)?;
    if args.watch {
        return watch::run(ctx, args, selector.as_ref(), io, interrupt).await;
    }
    let client = ctx.client()?;
    let now = Timestamp::now();
    let wide = args.output == GetOutput::Wide;
    let name = args.name()?;
    match args.resource() {
        Resource::Replicas => {
            let mut replicas = client.replicas(args.pool.as_deref()).await?;
            if let Some(id) = name {
                replicas.retain(|r| r.id.as_str() == id);
                if replicas.is_empty() {
                    anyhow::bail!("replica `{id}` not found; list them with `orchctl get replicas`");
                }
            }
            match args.output {
                GetOutput::Table | GetOutput::Wide if replicas.is_empty() => writeln!(io.err, "No replicas found.")?,
                GetOutput::Table | GetOutput::Wide => write!(io.out, "{}", replicas_table(&replicas, wide).render())?,
                GetOutput::Name => names(io, Resource::Replicas, replicas.iter().map(|r| r.id.to_string()))?,
                format => print_raw(io.out, format.raw().unwrap_or(Output::Yaml), &replicas)?,
            }
        }
        Resource::Gpus => {
            let snapshot = client.snapshot().await?;
            let mut gpus = snapshot.gpus.clone();
            if let Some(index) = name {
                gpus.retain(|g| g.index.to_string() == index);
                if gpus.is_empty() {
                    anyhow::bail!("GPU `{index}` not found; list them with `orchctl get gpus`");
                }
            }
            match args.output {
                // No GPUs by design: say so rather than print an empty table.
                GetOutput::Table | GetOutput::Wide if snapshot.gpu_source == GpuSource::None => {
                    writeln!(io.out, "{}", views::NO_GPUS_NOTE)?;
                }
                GetOutput::Table | GetOutput::Wide => {
                    write!(io.out, "{}", gpus_table(&gpus, snapshot.gpus_simulated, wide).render())?;
                    write!(io.out, "{}", views::gpu_errors(&gpus))?;
                    if snapshot.gpus_simulated || gpus.iter().any(|g| g.simulated) {
                        write!(io.out, "{}", views::SIMULATED_GPU_NOTE)?;
                    }
                }
                GetOutput::Name => names(io, Resource::Gpus, gpus.iter().map(|g| g.index.to_string()))?,
                format => print_raw(io.out, format.raw().unwrap_or(Output::Yaml), &gpus)?,
            }
        }
        resource => {
            let Some(kind) = kind_of(resource) else { return Ok(1) };
            if let Some(name) = name {
                let view = client.object(&ObjectRef::new(kind, name.to_string())).await?;
                let synced = Snapshot {
                    synced: true,
                    ..Snapshot::default()
                };
                print_objects(io, args.output, kind, &[view], &synced, now, true)?;
                return Ok(0);
            }
            let snapshot = client.snapshot().await?;
            let views = select_objects(&snapshot, kind, selector.as_ref());
            if views.is_empty() && matches!(args.output, GetOutput::Table | GetOutput::Wide) {
                match &args.selector {
                    Some(s) => writeln!(io.err, "No {}s match `{s}`.", kind.lower())?,
                    None => writeln!(
                        io.err,
                        "No {}s found. Declare some with `orchctl apply -f FILE`.",
                        kind.lower()
                    )?,
                }
            }
            print_objects(io, args.output, kind, &views, &snapshot, now, false)?;
        }
    }
    Ok(0)
}

/// Prints objects in `format`; `one`: a single object was asked for by name (JSON prints it
/// alone, not as a list).
fn print_objects(
    io: &mut Io<'_>,
    format: GetOutput,
    kind: Kind,
    views: &[ObjectView],
    snapshot: &Snapshot,
    now: Timestamp,
    one: bool,
) -> anyhow::Result<()> {
    match format {
        GetOutput::Table | GetOutput::Wide => write!(
            io.out,
            "{}",
            objects_text_with(kind, views, snapshot, now, format == GetOutput::Wide)
        )?,
        GetOutput::Name => {
            let resource = match kind {
                Kind::Pool => Resource::Pools,
                Kind::Model => Resource::Models,
                Kind::Engine => Resource::Engines,
            };
            names(io, resource, views.iter().map(|v| v.object.name.clone()))?;
        }
        GetOutput::Json => match (one, views) {
            (true, [view]) => print_raw(io.out, Output::Json, view)?,
            _ => print_raw(io.out, Output::Json, &views)?,
        },
        GetOutput::Yaml => {
            let (text, missing) = manifest_documents(views);
            write!(io.out, "{text}")?;
            if !missing.is_empty() {
                let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
                anyhow::bail!(
                    "the daemon serves no readable manifest for {} (see `orchctl describe`)",
                    list.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// `-o name`: `pool/chat` lines.
fn names(io: &mut Io<'_>, resource: Resource, names: impl Iterator<Item = String>) -> anyhow::Result<()> {
    for name in names {
        writeln!(io.out, "{}/{name}", resource.singular())?;
    }
    Ok(())
}
