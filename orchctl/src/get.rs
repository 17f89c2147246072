//! `orchctl get`: tables of pools, models, engines, replicas or GPUs from llama-orchd, or the
//! raw objects with `-o json|yaml`. Under a pool table, manifest errors that belong to no
//! object (a file with a syntax error) are printed as warnings, since they may be why a pool
//! is missing.

use jiff::Timestamp;
use llorch_manifests::api::{GpuSource, ObjectView, Snapshot};
use llorch_manifests::{Kind, ObjectRef};

use crate::Io;
use crate::cli::{GetArgs, Output, Resource};
use crate::context::Context;
use crate::output::print_raw;
use crate::views;

fn kind_of(resource: Resource) -> Option<Kind> {
    match resource {
        Resource::Pools => Some(Kind::Pool),
        Resource::Models => Some(Kind::Model),
        Resource::Engines => Some(Kind::Engine),
        Resource::Replicas | Resource::Gpus => None,
    }
}

/// The table text for `kind`'s objects, with pool-table warnings.
pub fn objects_text(kind: Kind, views: &[ObjectView], snapshot: &Snapshot, now: Timestamp) -> String {
    let table = match kind {
        Kind::Pool => views::pools(views, now),
        Kind::Model => views::models(views, now),
        Kind::Engine => views::engines(views, now),
    };
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

/// `orchctl get`.
pub async fn run(ctx: &Context, args: &GetArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let client = ctx.client()?;
    let now = Timestamp::now();
    match args.resource {
        Resource::Replicas => {
            let pool = args.pool.as_deref();
            let mut replicas = client.replicas(pool).await?;
            if let Some(id) = &args.name {
                replicas.retain(|r| r.id.as_str() == id);
                if replicas.is_empty() {
                    anyhow::bail!("replica `{id}` not found; list them with `orchctl get replicas`");
                }
            }
            match args.output {
                Output::Table if replicas.is_empty() => writeln!(io.err, "No replicas found.")?,
                Output::Table => write!(io.out, "{}", views::replicas(&replicas).render())?,
                format => print_raw(io.out, format, &replicas)?,
            }
        }
        Resource::Gpus => {
            let snapshot = client.snapshot().await?;
            let mut gpus = snapshot.gpus.clone();
            if let Some(index) = &args.name {
                gpus.retain(|g| &g.index.to_string() == index);
                if gpus.is_empty() {
                    anyhow::bail!("GPU `{index}` not found; list them with `orchctl get gpus`");
                }
            }
            match args.output {
                // No GPUs by design: say so rather than print an empty table.
                Output::Table if snapshot.gpu_source == GpuSource::None => writeln!(io.out, "{}", views::NO_GPUS_NOTE)?,
                Output::Table => {
                    write!(io.out, "{}", views::gpus(&gpus, snapshot.gpus_simulated).render())?;
                    write!(io.out, "{}", views::gpu_errors(&gpus))?;
                    if snapshot.gpus_simulated || gpus.iter().any(|g| g.simulated) {
                        write!(io.out, "{}", views::SIMULATED_GPU_NOTE)?;
                    }
                }
                format => print_raw(io.out, format, &gpus)?,
            }
        }
        resource => {
            let Some(kind) = kind_of(resource) else { return Ok(1) };
            if let Some(name) = &args.name {
                let view = client.object(&ObjectRef::new(kind, name.clone())).await?;
                match args.output {
                    Output::Table => {
                        let snapshot = Snapshot {
                            synced: true,
                            ..Snapshot::default()
                        };
                        write!(io.out, "{}", objects_text(kind, &[view], &snapshot, now))?;
                    }
                    format => print_raw(io.out, format, &view)?,
                }
                return Ok(0);
            }
            let snapshot = client.snapshot().await?;
            let views: Vec<ObjectView> = snapshot
                .objects
                .iter()
                .filter(|o| o.object.kind == kind)
                .cloned()
                .collect();
            match args.output {
                Output::Table => {
                    if views.is_empty() {
                        writeln!(
                            io.err,
                            "No {}s found. Declare some with `orchctl apply -f FILE`.",
                            kind.lower()
                        )?;
                    }
                    write!(io.out, "{}", objects_text(kind, &views, &snapshot, now))?;
                }
                format => print_raw(io.out, format, &views)?,
            }
        }
    }
    Ok(0)
}
