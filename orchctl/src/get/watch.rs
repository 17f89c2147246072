//! `orchctl get … --watch`: the list as `get` prints it, then one row for each listed object
//! that changes, read from the daemon's live stream (`GET /v2/events/stream`, whose `snapshot`
//! events carry the whole state after each change). Rows line up under the first table. It
//! ends on Ctrl-C (exit 130) or when the daemon closes the stream (exit 0). Deleted objects
//! print nothing, as in kubectl without `--output-watch-events`.

use std::future::Future;

use jiff::Timestamp;
use llorch_manifests::Kind;
use llorch_manifests::api::{GpuView, ObjectView, Snapshot};
use llorch_manifests::status::ReplicaStatus;

use super::{gpus_table, kind_of, objects_table, replicas_table, select_objects};
use crate::Io;
use crate::cli::{GetArgs, GetOutput, Resource};
use crate::context::Context;
use crate::selector::Selector;
use crate::table::Table;

/// The exit code after Ctrl-C, as for `run`.
const EXIT_INTERRUPTED: u8 = 130;

/// What one snapshot holds of what is watched.
#[derive(Clone, Debug, PartialEq)]
enum Items {
    Objects(Kind, Vec<ObjectView>),
    Replicas(Vec<ReplicaStatus>),
    Gpus(Vec<GpuView>, bool),
}

impl Items {
    fn select(snapshot: &Snapshot, args: &GetArgs, selector: Option<&Selector>, name: Option<&str>) -> Items {
        match (args.resource(), kind_of(args.resource())) {
            (_, Some(kind)) => {
                let mut views = select_objects(snapshot, kind, selector);
                if let Some(name) = name {
                    views.retain(|v| v.object.name == name);
                }
                Items::Objects(kind, views)
            }
            (Resource::Replicas, None) => Items::Replicas(
                snapshot
                    .replicas
                    .iter()
                    .filter(|r| args.pool.as_ref().is_none_or(|p| &r.pool == p))
                    .filter(|r| name.is_none_or(|n| r.id.as_str() == n))
                    .cloned()
                    .collect(),
            ),
            (_, None) => Items::Gpus(
                snapshot
                    .gpus
                    .iter()
                    .filter(|g| name.is_none_or(|n| g.index.to_string() == n))
                    .cloned()
                    .collect(),
                snapshot.gpus_simulated,
            ),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Items::Objects(_, v) => v.is_empty(),
            Items::Replicas(r) => r.is_empty(),
            Items::Gpus(g, _) => g.is_empty(),
        }
    }

    /// What is new or different in `self` compared with `before`.
    fn changed_since(&self, before: &Items) -> Items {
        fn changed<T: Clone + PartialEq>(now: &[T], before: &[T], same: impl Fn(&T, &T) -> bool) -> Vec<T> {
            now.iter()
                .filter(|n| !before.iter().any(|b| same(n, b) && *b == **n))
                .cloned()
                .collect()
        }
        match (self, before) {
            (Items::Objects(kind, now), Items::Objects(_, before)) => {
                Items::Objects(*kind, changed(now, before, |a, b| a.object == b.object))
            }
            (Items::Replicas(now), Items::Replicas(before)) => {
                Items::Replicas(changed(now, before, |a, b| a.id == b.id))
            }
            (Items::Gpus(now, simulated), Items::Gpus(before, _)) => {
                Items::Gpus(changed(now, before, |a, b| a.index == b.index), *simulated)
            }
            _ => self.clone(),
        }
    }

    fn table(&self, wide: bool, now: Timestamp) -> Table {
        match self {
            Items::Objects(kind, views) => objects_table(*kind, views, now, wide),
            Items::Replicas(replicas) => replicas_table(replicas, wide),
            Items::Gpus(gpus, simulated) => gpus_table(gpus, *simulated, wide),
        }
    }

    fn names(&self, resource: Resource) -> String {
        let names: Vec<String> = match self {
            Items::Objects(_, views) => views.iter().map(|v| v.object.name.clone()).collect(),
            Items::Replicas(replicas) => replicas.iter().map(|r| r.id.to_string()).collect(),
            Items::Gpus(gpus, _) => gpus.iter().map(|g| g.index.to_string()).collect(),
        };
        names.iter().map(|n| format!("{}/{n}\n", resource.singular())).collect()
    }
}

/// `orchctl get … --watch`.
pub async fn run(
    ctx: &Context,
    args: &GetArgs,
    selector: Option<&Selector>,
    io: &mut Io<'_>,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    if matches!(args.output, GetOutput::Json | GetOutput::Yaml) {
        anyhow::bail!("--watch prints rows: use it with -o table, wide or name");
    }
    let name = args.name()?;
    let wide = args.output == GetOutput::Wide;
    let client = ctx.client()?;
    let mut stream = client.live_events().await?;
    let mut interrupt = std::pin::pin!(interrupt);
    let mut seen: Option<Items> = None;
    let mut widths = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            () = &mut interrupt => return Ok(EXIT_INTERRUPTED),
            next = stream.next() => next?,
        };
        let Some(event) = next else { return Ok(0) };
        if event.event != "snapshot" {
            continue;
        }
        let snapshot: Snapshot = serde_json::from_str(&event.data)
            .map_err(|e| anyhow::anyhow!("llama-orchd sent a snapshot orchctl cannot read: {e}"))?;
        let items = Items::select(&snapshot, args, selector, name);
        let now = Timestamp::now();
        match &seen {
            None if !snapshot.synced => continue,
            None => {
                if let (Some(name), true) = (name, items.is_empty()) {
                    anyhow::bail!(
                        "{} `{name}` not found; list them with `orchctl get {}s`",
                        args.resource().singular(),
                        args.resource().singular()
                    );
                }
                if args.output == GetOutput::Name {
                    write!(io.out, "{}", items.names(args.resource()))?;
                } else {
                    let table = items.table(wide, now);
                    widths = table.widths();
                    if table.is_empty() {
                        writeln!(io.err, "No {}s yet; watching.", args.resource().singular())?;
                    } else {
                        write!(io.out, "{}", table.render())?;
                    }
                }
            }
            Some(before) => {
                let changed = items.changed_since(before);
                if args.output == GetOutput::Name {
                    write!(io.out, "{}", changed.names(args.resource()))?;
                } else if !changed.is_empty() {
                    write!(io.out, "{}", changed.table(wide, now).render_rows(&widths))?;
                }
            }
        }
        io.out.flush()?;
        seen = Some(items);
    }
}
