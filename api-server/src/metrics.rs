//! Prometheus metrics rendered from one [`Snapshot`]: GPU inventory and VRAM, pool replica
//! counts, readiness and restarts, scaling (asleep, wakes, evictions, expected wake), and
//! manifest errors. A fresh registry per scrape keeps the
//! output a pure function of the snapshot (no stale series for deleted pools).
//!
//! The data plane's series (`tasks_*`, `queue_depth`, `latency_*`, `tokens_*`, …) are not
//! derived from the snapshot: they are counted as tasks flow, in a [`Telemetry`] that
//! [`render_with`] adds to the same scrape.
//!
//! Simulated GPUs carry `simulated="true"` on every GPU series, and
//! `llorch_gpu_inventory_simulated` says so once for the whole inventory.
//!
//! Replica series (`kv_cache_usage_ratio`, `llorch_pool_replicas_not_on_gpu`) are in
//! [`replicas`]. Each replica's `kv_cache_usage_ratio` is what the controller's prober last read from its
//! engine (see `controller::kv_usage`), carried in the snapshot. The process series and
//! `llorch_build_info` come from [`process`].

use std::sync::atomic::AtomicU64;

use llorch_manifests::Kind;
use llorch_manifests::api::Snapshot;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::tasks::telemetry::Telemetry;

pub mod process;
mod replicas;
mod wake_times;

pub use process::ProcessSample;

/// The response's `Content-Type` (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;
type U64Gauge = Gauge<u64, AtomicU64>;

fn flag(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// Renders the snapshot as Prometheus text.
pub fn render(snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
    render_with(snapshot, None)
}

/// Renders the snapshot and, when there is one, the data plane's series.
pub fn render_with(snapshot: &Snapshot, telemetry: Option<&Telemetry>) -> Result<String, std::fmt::Error> {
    render_full(snapshot, telemetry, &[], None)
}

/// [`render_with`] plus the catalog's `catalog_verifications_total{result}` counts and, when
/// given, the process series.
pub fn render_full(
    snapshot: &Snapshot,
    telemetry: Option<&Telemetry>,
    verifications: &[(&'static str, u64)],
    process: Option<&ProcessSample>,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    register_daemon(&mut registry, snapshot);
    register_gpus(&mut registry, snapshot);
    register_pools(&mut registry, snapshot);
    replicas::register_replicas(&mut registry, snapshot);
    register_models(&mut registry, snapshot, verifications);
    if let Some(telemetry) = telemetry {
        telemetry.register(&mut registry);
    }
    if let Some(process) = process {
        process::register_process(&mut registry, process);
    }
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// `llorch_build_info`, `llorch_snapshot_synced`, `llorch_gpu_inventory_simulated`,
/// `llorch_gpu_inventory_info`,
/// `llorch_manifest_errors`.
fn register_daemon(registry: &mut Registry, snapshot: &Snapshot) {
    process::register_build_info(registry);
    let synced = U64Gauge::default();
    synced.set(u64::from(snapshot.synced));
    registry.register(
        "llorch_snapshot_synced",
        "1 once the controller has finished its first full scan",
        synced,
    );

    let inventory_simulated = U64Gauge::default();
    inventory_simulated.set(u64::from(snapshot.gpus_simulated));
    registry.register(
        "llorch_gpu_inventory_simulated",
        "1 when the GPU inventory is simulated (no real devices)",
        inventory_simulated,
    );
    let source = Family::<Labels, U64Gauge>::default();
    source
        .get_or_create(&vec![("source", snapshot.gpu_source.as_str().to_string())])
        .set(1);
    registry.register(
        "llorch_gpu_inventory_info",
        "1 for where the GPU inventory comes from: source nvml, simulated, or none (config `gpus: none`: no GPUs, only external Engines run)",
        source,
    );
    let errors = U64Gauge::default();
    let object_errors: usize = snapshot.objects.iter().map(|o| o.status.manifest_errors.len()).sum();
    errors.set(u64::try_from(object_errors + snapshot.file_errors.len()).unwrap_or(u64::MAX));
    registry.register(
        "llorch_manifest_errors",
        "Problems found in the manifests directory (see `orchctl get pools`)",
        errors,
    );
}

/// One `llorch_gpu_info` per GPU, its VRAM, utilisation and reported problems.
fn register_gpus(registry: &mut Registry, snapshot: &Snapshot) {
    let info = Family::<Labels, U64Gauge>::default();
    let total = Family::<Labels, U64Gauge>::default();
    let used = Family::<Labels, U64Gauge>::default();
    let problems = Family::<Labels, U64Gauge>::default();
    let utilization = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for gpu in &snapshot.gpus {
        let simulated = flag(gpu.simulated || snapshot.gpus_simulated);
        info.get_or_create(&vec![
            ("index", gpu.index.to_string()),
            ("uuid", gpu.uuid.clone()),
            ("name", gpu.name.clone()),
            ("simulated", simulated.clone()),
        ])
        .set(1);
        let labels: Labels = vec![("gpu", gpu.index.to_string()), ("simulated", simulated)];
        total.get_or_create(&labels).set(gpu.total_bytes);
        used.get_or_create(&labels).set(gpu.used_bytes);
        problems
            .get_or_create(&labels)
            .set(u64::try_from(gpu.errors.len()).unwrap_or(u64::MAX));
        if let Some(pct) = gpu.utilization_pct {
            utilization.get_or_create(&labels).set(f64::from(pct) / 100.0);
        }
    }
    registry.register("llorch_gpu_info", "One series per GPU in the inventory", info);
    registry.register("vram_total_bytes", "Total VRAM per GPU, bytes", total);
    registry.register("vram_used_bytes", "Used VRAM per GPU, bytes", used);
    registry.register(
        "gpu_utilization",
        "GPU utilisation per GPU, 0 to 1, when known (always 0 on a simulated GPU)",
        utilization,
    );
    registry.register(
        "llorch_gpu_problems",
        "Problems NVML reports for the GPU (uncorrected ECC errors, pages pending retirement, GPU lost, failed reads); any makes it unhealthy",
        problems,
    );
}

/// Replica counts, readiness, restarts and GPU placements per Pool.
fn register_pools(registry: &mut Registry, snapshot: &Snapshot) {
    let replicas = Family::<Labels, U64Gauge>::default();
    let ready = Family::<Labels, U64Gauge>::default();
    let restarts = Family::<Labels, Counter>::default();
    let decisions = Family::<Labels, Counter>::default();
    let asleep = Family::<Labels, U64Gauge>::default();
    let activations = Family::<Labels, Counter>::default();
    let evictions = Family::<Labels, Counter>::default();
    let cold_start = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let wakes = Family::<Labels, wake_times::WakeHistogram>::default();
    for view in snapshot.objects.iter().filter(|o| o.object.kind == Kind::Pool) {
        let pool = view.object.name.clone();
        if let Some(s) = &view.status.scaling {
            let labels: Labels = vec![("pool", pool.clone())];
            asleep.get_or_create(&labels).set(u64::from(s.asleep));
            activations.get_or_create(&labels).inc_by(s.activations);
            evictions.get_or_create(&labels).inc_by(s.evictions);
            if let Some(ms) = s.cold_start_ms {
                cold_start.get_or_create(&labels).set(ms as f64 / 1000.0);
            }
            wakes.get_or_create(&labels).set(&s.wake_times);
        }
        let counts = view.status.replicas.unwrap_or_default();
        replicas
            .get_or_create(&vec![("pool", pool.clone()), ("state", "desired".into())])
            .set(u64::from(counts.desired));
        replicas
            .get_or_create(&vec![("pool", pool.clone()), ("state", "ready".into())])
            .set(u64::from(counts.ready));
        ready
            .get_or_create(&vec![("pool", pool.clone())])
            .set(u64::from(view.status.is_ready()));
        for (outcome, n) in view.status.vram.iter().flat_map(|v| &v.decisions) {
            decisions
                .get_or_create(&vec![("pool", pool.clone()), ("outcome", outcome.clone())])
                .inc_by(*n);
        }
        restarts
            .get_or_create(&vec![("pool", pool)])
            .inc_by(view.status.restarts);
    }
    registry.register("llorch_pool_replicas", "Replicas per pool, desired and ready", replicas);
    registry.register("llorch_pool_ready", "1 when the pool's Ready condition holds", ready);
    registry.register(
        "replica_placements",
        "Replica placements on GPUs per pool since the daemon started, by outcome (placed, refused); counted when a replica's decision changes",
        decisions,
    );
    registry.register(
        "llorch_pool_restarts",
        "Engine restarts after crashes, per pool, over the pool's life",
        restarts,
    );
    registry.register(
        "llorch_pool_asleep",
        "1 while a pool sized by scaling sleeps (no replica, no VRAM)",
        asleep,
    );
    registry.register(
        "llorch_pool_activations",
        "Wakes of a pool sized by scaling since the daemon started",
        activations,
    );
    registry.register(
        "llorch_pool_evictions",
        "Times a pool was put to sleep early to free VRAM for another, since the daemon started",
        evictions,
    );
    registry.register(
        "llorch_pool_cold_start_expected_seconds",
        "How long a wake of the pool is expected to take: the average of its measured wakes, else a prior from its VRAM need",
        cold_start,
    );
    registry.register(
        "llorch_pool_cold_start_seconds",
        "Measured wakes of a pool sized by scaling since the daemon started: from placing its first replica to that replica Ready",
        wakes,
    );
}

/// `model_state{model,phase}` (1 for the Model's current phase, 0 for the others) and
/// `catalog_verifications_total{result}`.
fn register_models(registry: &mut Registry, snapshot: &Snapshot, verifications: &[(&'static str, u64)]) {
    use llorch_manifests::status::ModelPhase;
    const PHASES: [(ModelPhase, &str); 6] = [
        (ModelPhase::Pending, "pending"),
        (ModelPhase::Fetching, "fetching"),
        (ModelPhase::Verifying, "verifying"),
        (ModelPhase::Ready, "ready"),
        (ModelPhase::Failed, "failed"),
        (ModelPhase::NotFetched, "not-fetched"),
    ];
    let states = Family::<Labels, U64Gauge>::default();
    for view in snapshot.objects.iter().filter(|o| o.object.kind == Kind::Model) {
        let current = view.status.model.as_ref().map(|m| m.phase).unwrap_or_default();
        for (phase, label) in PHASES {
            states
                .get_or_create(&vec![("model", view.object.name.clone()), ("phase", label.to_string())])
                .set(u64::from(phase == current));
        }
    }
    registry.register(
        "model_state",
        "1 for each Model's current phase (pending, fetching, verifying, ready, failed, not-fetched)",
        states,
    );
    let verified = Family::<Labels, Counter>::default();
    for (result, count) in verifications {
        verified
            .get_or_create(&vec![("result", result.to_string())])
            .inc_by(*count);
    }
    registry.register(
        "catalog_verifications",
        "Model digest verifications by result (ok, mismatch)",
        verified,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::api::GpuView;

    #[test]
    fn an_empty_snapshot_renders_the_scalar_metrics_and_no_empty_families() {
        let text = render(&Snapshot::default()).unwrap();
        for line in [
            "# TYPE llorch_snapshot_synced gauge",
            "llorch_snapshot_synced 0",
            "llorch_gpu_inventory_simulated 0",
            "llorch_manifest_errors 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(!text.contains("llorch_pool_"), "no pools, no pool series:\n{text}");
    }

    #[test]
    fn the_data_planes_series_render_next_to_the_snapshots() {
        let telemetry = Telemetry::new();
        telemetry.enqueued("chat", llorch_manifests::task::Priority::Batch);
        telemetry.queue_depth("chat", 0, 1);
        let text = render_with(&Snapshot::default(), Some(&telemetry)).unwrap();
        for line in [
            "llorch_snapshot_synced 0",
            r#"tasks_enqueued_total{pool="chat",priority="batch"} 1"#,
            r#"queue_depth{pool="chat",priority="batch"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(!render(&Snapshot::default()).unwrap().contains("tasks_"));
    }

    #[test]
    fn models_render_their_phase_and_the_catalog_its_verifications() {
        use llorch_manifests::api::ObjectView;
        use llorch_manifests::status::{ModelPhase, ModelState, ObjectStatus};
        use llorch_manifests::{Kind, ObjectRef};
        let mut status = ObjectStatus::new(ObjectRef::new(Kind::Model, "tiny"));
        status.model = Some(ModelState {
            phase: ModelPhase::Fetching,
            ..ModelState::default()
        });
        let snapshot = Snapshot {
            objects: vec![ObjectView {
                object: status.object.clone(),
                source: None,
                manifest: None,
                status,
            }],
            ..Snapshot::default()
        };
        let text = render_full(&snapshot, None, &[("ok", 2), ("mismatch", 1)], None).unwrap();
        for line in [
            r#"model_state{model="tiny",phase="fetching"} 1"#,
            r#"model_state{model="tiny",phase="ready"} 0"#,
            r#"catalog_verifications_total{result="ok"} 2"#,
            r#"catalog_verifications_total{result="mismatch"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn replica_placements_on_gpus_are_counted_per_pool_and_outcome() {
        use llorch_manifests::status::{ObjectStatus, PoolVram};
        use llorch_manifests::{Kind, ObjectRef};
        let mut status = ObjectStatus::new(ObjectRef::new(Kind::Pool, "chat"));
        status.vram = Some(PoolVram {
            decisions: [("placed".to_string(), 2), ("refused".to_string(), 1)].into(),
            ..PoolVram::default()
        });
        let snapshot = Snapshot {
            objects: vec![llorch_manifests::api::ObjectView {
                object: status.object.clone(),
                source: None,
                manifest: None,
                status,
            }],
            ..Snapshot::default()
        };
        let text = render(&snapshot).unwrap();
        for line in [
            "# TYPE replica_placements_total counter",
            r#"replica_placements_total{pool="chat",outcome="placed"} 2"#,
            r#"replica_placements_total{pool="chat",outcome="refused"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn pools_sized_by_scaling_report_sleep_wakes_evictions_and_the_expected_wake() {
        use llorch_manifests::status::{ObjectStatus, ScalingStatus};
        use llorch_manifests::{Kind, ObjectRef};
        let mut status = ObjectStatus::new(ObjectRef::new(Kind::Pool, "coder"));
        status.scaling = Some(ScalingStatus {
            min_replicas: 0,
            max_replicas: 1,
            replicas: 0,
            asleep: true,
            last_active: None,
            evicted_for: Some("chat".into()),
            activations: 4,
            evictions: 3,
            cold_start_ms: Some(1_250),
            wake_times: {
                let mut t = llorch_manifests::status::WakeTimes::default();
                t.observe(1_500);
                t.observe(400_000);
                t
            },
        });
        let snapshot = Snapshot {
            objects: vec![llorch_manifests::api::ObjectView {
                object: status.object.clone(),
                source: None,
                manifest: None,
                status,
            }],
            ..Snapshot::default()
        };
        let text = render(&snapshot).unwrap();
        for line in [
            r#"llorch_pool_asleep{pool="coder"} 1"#,
            r#"llorch_pool_activations_total{pool="coder"} 4"#,
            r#"llorch_pool_evictions_total{pool="coder"} 3"#,
            r#"llorch_pool_cold_start_expected_seconds{pool="coder"} 1.25"#,
            "# TYPE llorch_pool_cold_start_seconds histogram",
            r#"llorch_pool_cold_start_seconds_count{pool="coder"} 2"#,
            r#"llorch_pool_cold_start_seconds_sum{pool="coder"} 401.5"#,
            r#"llorch_pool_cold_start_seconds_bucket{pool="coder",le="1"} 0"#,
            r#"llorch_pool_cold_start_seconds_bucket{pool="coder",le="2"} 1"#,
            r#"llorch_pool_cold_start_seconds_bucket{pool="coder",le="300"} 1"#,
            r#"llorch_pool_cold_start_seconds_bucket{pool="coder",le="+Inf"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn a_full_scrape_names_each_family_once() {
        // Prometheus rejects a scrape that declares a family twice ("second HELP line"): the
        // snapshot's GPU placements and the data plane's task placements once shared a name.
        use llorch_manifests::status::{ObjectStatus, PoolVram};
        use llorch_manifests::{Kind, ObjectRef};
        let mut status = ObjectStatus::new(ObjectRef::new(Kind::Pool, "chat"));
        status.vram = Some(PoolVram {
            decisions: [("placed".to_string(), 1)].into(),
            ..PoolVram::default()
        });
        let snapshot = Snapshot {
            objects: vec![llorch_manifests::api::ObjectView {
                object: status.object.clone(),
                source: None,
                manifest: None,
                status,
            }],
            ..Snapshot::default()
        };
        let telemetry = Telemetry::new();
        telemetry.placed("chat", "chat-0");
        telemetry.enqueued("chat", llorch_manifests::task::Priority::Interactive);
        let text = render_full(
            &snapshot,
            Some(&telemetry),
            &[("ok", 1)],
            Some(&ProcessSample::collect()),
        )
        .unwrap();
        let mut names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a family is declared twice in:\n{text}");
        assert!(names.contains(&"placement_decisions_total"), "{names:?}");
        assert!(names.contains(&"replica_placements_total"), "{names:?}");
    }

    #[test]
    fn the_inventory_source_is_one_series_and_gpus_none_has_no_gpu_series() {
        let snapshot = Snapshot {
            gpu_source: llorch_manifests::api::GpuSource::None,
            ..Snapshot::default()
        };
        let text = render(&snapshot).unwrap();
        assert!(
            text.lines()
                .any(|l| l == r#"llorch_gpu_inventory_info{source="none"} 1"#),
            "{text}"
        );
        assert!(text.lines().any(|l| l == "llorch_gpu_inventory_simulated 0"), "{text}");
        assert!(!text.contains("llorch_gpu_info{"), "{text}");
        let default = render(&Snapshot::default()).unwrap();
        assert!(
            default
                .lines()
                .any(|l| l == r#"llorch_gpu_inventory_info{source="nvml"} 1"#),
            "{default}"
        );
    }

    #[test]
    fn replicas_report_the_kv_cache_usage_their_engines_gave_and_gpus_their_problems() {
        use llorch_manifests::ReplicaId;
        use llorch_manifests::status::{ReplicaPhase, ReplicaStatus};
        let replica = |index: u32, ratio: Option<f64>| ReplicaStatus {
            id: ReplicaId::new("chat", index),
            pool: "chat".into(),
            index,
            phase: ReplicaPhase::Ready,
            container_id: None,
            container_name: None,
            endpoint: None,
            gpus: vec![0],
            gpus_simulated: false,
            engine_version: "dev".into(),
            spec_hash: "h".into(),
            restarts: 0,
            ready_since: None,
            kv_cache_usage_ratio: ratio,
        };
        let snapshot = Snapshot {
            replicas: vec![replica(0, Some(0.375)), replica(1, None)],
            gpus: vec![GpuView {
                index: 0,
                uuid: "GPU-0".into(),
                name: "RTX 3090".into(),
                total_bytes: 1,
                used_bytes: 0,
                free_bytes: 1,
                utilization_pct: Some(40),
                simulated: false,
                processes: Vec::new(),
                process_listing: Default::default(),
                errors: vec!["GPU lost".into(), "3 uncorrected ECC error(s)".into()],
            }],
            ..Snapshot::default()
        };
        let text = render(&snapshot).unwrap();
        for line in [
            "# TYPE kv_cache_usage_ratio gauge",
            r#"kv_cache_usage_ratio{pool="chat",replica="chat-0"} 0.375"#,
            r#"gpu_utilization{gpu="0",simulated="false"} 0.4"#,
            r#"llorch_gpu_problems{gpu="0",simulated="false"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(!text.contains("chat-1"), "no reading, no series:\n{text}");
        assert!(
            text.lines()
                .any(|l| l == format!(r#"llorch_build_info{{version="{}"}} 1"#, process::VERSION)),
            "{text}"
        );
    }

    #[test]
    fn a_simulated_gpu_is_labelled_simulated_even_when_only_the_inventory_says_so() {
        let snapshot = Snapshot {
            gpus_simulated: true,
            gpus: vec![GpuView {
                index: 0,
                uuid: "SIM-GPU-0".into(),
                name: "Simulated".into(),
                total_bytes: 1,
                used_bytes: 0,
                free_bytes: 1,
                utilization_pct: None,
                simulated: false,
                processes: Vec::new(),
                process_listing: Default::default(),
                errors: Vec::new(),
            }],
            ..Snapshot::default()
        };
        let text = render(&snapshot).unwrap();
        assert!(
            text.contains(r#"vram_total_bytes{gpu="0",simulated="true"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains("gpu_utilization{"),
            "no utilisation series when unknown:\n{text}"
        );
    }
}
