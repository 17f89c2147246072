//! The extra columns of `get -o wide`, appended to the plain tables of [`super`]: for Pools
//! their GPU use, slots, context, queue and labels; for Models their VRAM and labels; for
//! Engines how they are provisioned, their port and labels; for replicas the container's name,
//! the engine version and the spec hash; for GPUs their UUID. Read from the manifests and
//! statuses the daemon serves; no I/O.

use std::collections::BTreeMap;

use llorch_manifests::api::{GpuView, ObjectView};
use llorch_manifests::pool::GpuSelector;
use llorch_manifests::status::ReplicaStatus;
use llorch_manifests::{AnyObject, Kind};

use crate::table::Table;

/// The object's `metadata.labels` as the daemon serves its manifest (none without one).
pub fn labels(view: &ObjectView) -> BTreeMap<String, String> {
    view.manifest
        .as_ref()
        .and_then(|m| m.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// `team=demo,tier=gold`, or `<none>` like kubectl.
pub fn label_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

fn typed(view: &ObjectView) -> Option<AnyObject> {
    serde_json::from_value(view.manifest.clone()?).ok()
}

/// Appends the wide columns of `kind` to `table`, built by [`super::pools`] (or models,
/// engines) from the same `views`.
pub fn objects(table: &mut Table, kind: Kind, views: &[ObjectView]) {
    let views = views.iter().filter(|v| v.object.kind == kind);
    let dash = || "-".to_string();
    match kind {
        Kind::Pool => {
            let cells = views
                .map(|v| {
                    let (gpus, slots, ctx, queue) = match typed(v) {
                        Some(AnyObject::Pool(p)) => {
                            let set = match &p.spec.gpus {
                                GpuSelector::Devices(d) => d.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                                GpuSelector::Keyword(_) => "all".into(),
                            };
                            (
                                format!("{} of {set}", p.spec.gpus_per_replica),
                                p.spec.slots_per_replica.to_string(),
                                p.spec.ctx_size.map_or_else(|| "model".into(), |c| c.to_string()),
                                p.spec.queue.capacity.to_string(),
                            )
                        }
                        _ => (dash(), dash(), dash(), dash()),
                    };
                    vec![gpus, slots, ctx, queue, label_text(&labels(v))]
                })
                .collect();
            table.widen(&["GPUS", "SLOTS", "CTX", "QUEUE", "LABELS"], cells);
        }
        Kind::Model => {
            let cells = views
                .map(|v| {
                    let vram = match typed(v) {
                        Some(AnyObject::Model(m)) => m.spec.vram_bytes.map_or_else(dash, super::gib),
                        _ => dash(),
                    };
                    vec![vram, label_text(&labels(v))]
                })
                .collect();
            table.widen(&["VRAM", "LABELS"], cells);
        }
        Kind::Engine => {
            let cells = views
                .map(|v| {
                    let (provisioning, port) = match typed(v) {
                        Some(AnyObject::Engine(e)) => {
                            (e.spec.provisioning.as_str().to_string(), e.spec.port.to_string())
                        }
                        _ => (dash(), dash()),
                    };
                    vec![provisioning, port, label_text(&labels(v))]
                })
                .collect();
            table.widen(&["PROVISIONING", "PORT", "LABELS"], cells);
        }
    }
}

/// Appends `NAME VERSION SPEC-HASH` to [`super::replicas`]' table of `replicas`.
pub fn replicas(table: &mut Table, replicas: &[ReplicaStatus]) {
    let cells = replicas
        .iter()
        .map(|r| {
            vec![
                r.container_name.clone().unwrap_or_else(|| "-".into()),
                r.engine_version.clone(),
                r.spec_hash.clone(),
            ]
        })
        .collect();
    table.widen(&["NAME", "VERSION", "SPEC-HASH"], cells);
}

/// Appends `UUID` to [`super::gpus`]' table of `gpus`.
pub fn gpus(table: &mut Table, gpus: &[GpuView]) {
    table.widen(&["UUID"], gpus.iter().map(|g| vec![g.uuid.clone()]).collect());
}
