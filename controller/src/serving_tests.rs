//! Resolving Pools without a runtime: each reason a Pool is blocked, the context rule, and
//! the serving view a blocked Pool keeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use llorch_manifests::status::ReplicaStatus;
use llorch_manifests::{ApiFlavour, Endpoint, ReplicaId};

use super::*;
use crate::provision::NotReady;
use llorch_manifests::status::ReplicaPhase;

fn object(kind: &str, name: &str, spec: serde_json::Value) -> AnyObject {
    let json = serde_json::json!({
        "apiVersion": "llama-orch.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec
    });
    match kind {
        "Engine" => AnyObject::Engine(serde_json::from_value(json).unwrap()),
        "Model" => AnyObject::Model(serde_json::from_value(json).unwrap()),
        _ => AnyObject::Pool(serde_json::from_value(json).unwrap()),
    }
}

fn engine() -> AnyObject {
    object(
        "Engine",
        "mock",
        serde_json::json!({"image": "img:dev", "version": "b1", "api": "openai"}),
    )
}

fn model() -> AnyObject {
    object(
        "Model",
        "tiny",
        serde_json::json!({"ref": "file:/m/tiny.gguf", "ctxMax": 4096, "digest": format!("sha256:{}", "a".repeat(64))}),
    )
}

fn pool(extra: serde_json::Value) -> Pool {
    let mut spec = serde_json::json!({"engine": "mock", "model": "tiny", "replicas": 1});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let AnyObject::Pool(p) = object("Pool", "chat", spec) else {
        unreachable!()
    };
    p
}

fn desired(objects: Vec<AnyObject>) -> DesiredState {
    let mut d = DesiredState::default();
    for o in objects {
        d.objects.insert(o.object_ref(), entry(o));
    }
    d
}

fn entry(object: AnyObject) -> Entry {
    Entry {
        object,
        file: "m.yaml".into(),
        document: 0,
        generation: "g".into(),
        errors: Vec::new(),
        actionable: true,
    }
}

/// Models by name: their file or why not, and the phase their status shows.
#[derive(Default)]
struct Files(BTreeMap<String, (Result<PathBuf, Unusable>, Option<ModelPhase>)>);

impl Files {
    fn ready() -> Self {
        let mut f = Files::default();
        f.0.insert(
            "tiny".into(),
            (Ok(PathBuf::from("/m/tiny.gguf")), Some(ModelPhase::Ready)),
        );
        f
    }

    fn not(why: Unusable, phase: ModelPhase) -> Self {
        let mut f = Files::default();
        f.0.insert("tiny".into(), (Err(why), Some(phase)));
        f
    }
}

impl ModelFiles for Files {
    fn file(&self, name: &str) -> Result<PathBuf, Unusable> {
        self.0.get(name).map(|(f, _)| f.clone()).unwrap_or_else(|| {
            Err(Unusable::NotObserved {
                model: name.to_string(),
            })
        })
    }
    fn phase(&self, name: &str) -> Option<ModelPhase> {
        self.0.get(name).and_then(|(_, p)| *p)
    }
}

fn gpus(n: u32) -> Vec<GpuView> {
    (0..n)
        .map(|index| GpuView {
            index,
            uuid: format!("SIM-GPU-{index}"),
            name: "sim".into(),
            total_bytes: 24 << 30,
            used_bytes: 0,
            free_bytes: (u64::from(index) + 1) << 30,
            utilization_pct: None,
            simulated: true,
            processes: Vec::new(),
            process_listing: Default::default(),
            errors: Vec::new(),
        })
        .collect()
}

fn resolve_with(pool: &Pool, objects: Vec<AnyObject>, files: &Files) -> Result<Resolved, Blocked> {
    resolve_on(GpuSource::Simulated, pool, objects, files)
}

fn resolve_on(gpu_source: GpuSource, pool: &Pool, objects: Vec<AnyObject>, files: &Files) -> Result<Resolved, Blocked> {
    let desired = desired(objects);
    let checks = HashMap::new();
    let devices = if gpu_source == GpuSource::None {
        Vec::new()
    } else {
        gpus(2)
    };
    resolve(
        pool,
        &Sources {
            desired: &desired,
            engine_checks: &checks,
            models: files,
            gpus: &devices,
            gpu_source,
        },
    )
}

#[test]
fn a_pool_whose_references_resolve_gets_its_engine_model_file_and_gpus() {
    let p = pool(serde_json::json!({}));
    let r = resolve_with(&p, vec![engine(), model()], &Files::ready()).unwrap();
    assert_eq!(r.model_path, Path::new("/m/tiny.gguf"));
    assert_eq!(r.gpu_selection, [0, 1]);
    let c = r.contract(&p);
    assert_eq!(c.engine_version, "b1");
    assert_eq!(c.api, ApiFlavour::Openai);
    assert_eq!(c.model_file.as_deref(), Some("/m/tiny.gguf"));
    assert_eq!(c.model_digest, Some(format!("sha256:{}", "a".repeat(64))));
}

#[test]
fn the_context_is_the_pools_ctx_size_else_the_models_ctx_max() {
    let unset = pool(serde_json::json!({}));
    let r = resolve_with(&unset, vec![engine(), model()], &Files::ready()).unwrap();
    assert_eq!(r.contract(&unset).ctx_size, 4096, "the Model's ctxMax");
    let set = pool(serde_json::json!({"ctxSize": 1024}));
    let r = resolve_with(&set, vec![engine(), model()], &Files::ready()).unwrap();
    assert_eq!(r.contract(&set).ctx_size, 1024, "the Pool's ctxSize");
}

#[test]
fn a_missing_engine_blocks_the_pool_and_says_which() {
    let why = resolve_with(&pool(serde_json::json!({})), vec![model()], &Files::ready()).unwrap_err();
    assert_eq!(why, Blocked::EngineMissing { engine: "mock".into() });
    assert_eq!(why.to_string(), "Engine `mock` does not exist");
}

#[test]
fn under_gpus_none_a_pool_on_a_container_or_binary_engine_is_blocked_before_anything_else() {
    let p = pool(serde_json::json!({}));
    // The Model is not even looked at: nothing of this Pool runs here.
    let why = resolve_on(GpuSource::None, &p, vec![engine(), model()], &Files::default()).unwrap_err();
    assert_eq!(
        why,
        Blocked::NoGpus {
            engine: "mock".into(),
            provisioning: Provisioning::Container
        }
    );
    assert!(!why.is_waiting());
    let binary = object(
        "Engine",
        "mock",
        serde_json::json!({"provisioning": "binary", "executable": "/usr/bin/llama-server", "version": "b1"}),
    );
    let why = resolve_on(GpuSource::None, &p, vec![binary, model()], &Files::ready()).unwrap_err();
    assert!(
        why.to_string()
            .contains("no GPUs (config `gpus: none`), so only Pools on `external` Engines run here, and Engine `mock` is `provisioning: binary`"),
        "{why}"
    );
    // With GPUs the same Pool resolves.
    assert!(resolve_on(GpuSource::Nvml, &p, vec![engine(), model()], &Files::ready()).is_ok());
}

#[test]
fn only_external_engines_are_served_under_gpus_none_and_no_external_engine_runs_locally() {
    for provisioning in [
        Provisioning::Container,
        Provisioning::Binary,
        Provisioning::Source,
        Provisioning::Package,
    ] {
        assert!(!servable_here(GpuSource::None, provisioning), "{provisioning:?}");
        assert!(!runs_locally(GpuSource::None, provisioning), "{provisioning:?}");
        for gpus in [GpuSource::Nvml, GpuSource::Simulated] {
            assert!(servable_here(gpus, provisioning), "{provisioning:?}");
            assert!(runs_locally(gpus, provisioning), "{provisioning:?}");
        }
    }
    for gpus in [GpuSource::None, GpuSource::Nvml, GpuSource::Simulated] {
        assert!(servable_here(gpus, Provisioning::External), "{gpus}");
        assert!(!runs_locally(gpus, Provisioning::External), "{gpus}");
    }
}

#[test]
fn a_missing_model_blocks_the_pool_and_says_which() {
    let why = resolve_with(&pool(serde_json::json!({})), vec![engine()], &Files::ready()).unwrap_err();
    assert_eq!(why, Blocked::ModelMissing { model: "tiny".into() });
    assert_eq!(why.to_string(), "Model `tiny` does not exist");
}

#[test]
fn an_engine_that_is_not_provisioned_blocks_the_pool_with_its_checks_words() {
    let source = object(
        "Engine",
        "mock",
        serde_json::json!({"provisioning": "source", "version": "b1",
            "source": {"repo": "https://github.com/ggml-org/llama.cpp", "ref": "b1"}}),
    );
    let p = pool(serde_json::json!({}));
    let why = resolve_with(&p, vec![source.clone(), model()], &Files::ready()).unwrap_err();
    assert_eq!(
        why,
        Blocked::EngineUnusable {
            engine: "mock".into(),
            message: "Engine `mock` is not provisioned yet".into()
        }
    );
    let desired = desired(vec![source, model()]);
    let checks = HashMap::from([(
        "mock".to_string(),
        EngineCheck {
            verdict: Err(NotReady {
                reason: llorch_manifests::Reason::ProvisioningNotAllowed,
                message: "config `provisioning.allowSourceBuilds` is false".into(),
            }),
            launch_as: None,
        },
    )]);
    let files = Files::ready();
    let devices = gpus(1);
    let sources = Sources {
        desired: &desired,
        engine_checks: &checks,
        models: &files,
        gpus: &devices,
        gpu_source: GpuSource::Simulated,
    };
    assert_eq!(
        resolve(&p, &sources).unwrap_err().to_string(),
        "Engine `mock` is not provisioned: config `provisioning.allowSourceBuilds` is false"
    );
}

#[test]
fn a_model_on_its_way_makes_the_pool_wait_and_a_failed_one_blocks_it() {
    let p = pool(serde_json::json!({}));
    let fetching = Unusable::NotReady {
        model: "tiny".into(),
        progress: "fetching http://x/tiny.gguf: 1.0 MiB".into(),
    };
    let why = resolve_with(&p, vec![engine(), model()], &Files::not(fetching, ModelPhase::Fetching)).unwrap_err();
    assert!(why.is_waiting(), "{why:?}");
    assert_eq!(
        why.to_string(),
        "Model `tiny` is not ready yet: fetching http://x/tiny.gguf: 1.0 MiB"
    );
    let failed = Unusable::Failed {
        model: "tiny".into(),
        message: "digest mismatch".into(),
    };
    let why = resolve_with(&p, vec![engine(), model()], &Files::not(failed, ModelPhase::Failed)).unwrap_err();
    assert_eq!(
        why,
        Blocked::ModelUnusable {
            model: "tiny".into(),
            message: "Model `tiny` is not usable: digest mismatch".into()
        }
    );
    let unseen = resolve_with(&p, vec![engine(), model()], &Files::default()).unwrap_err();
    assert!(
        !unseen.is_waiting(),
        "a Model not looked at yet is not on its way: {unseen:?}"
    );
}

#[test]
fn a_gpu_that_does_not_exist_or_too_few_gpus_block_the_pool() {
    let why = resolve_with(
        &pool(serde_json::json!({"gpus": [5]})),
        vec![engine(), model()],
        &Files::ready(),
    )
    .unwrap_err();
    assert_eq!(
        why,
        Blocked::GpuSelection {
            message: "GPU 5 does not exist; this host has [0, 1] (see `orchctl get gpus`)".into()
        }
    );
    let why = resolve_with(
        &pool(serde_json::json!({"gpus": [1], "gpusPerReplica": 2})),
        vec![engine(), model()],
        &Files::ready(),
    )
    .unwrap_err();
    assert!(why.to_string().contains("gpusPerReplica is 2"), "{why}");
}

#[test]
fn manifest_errors_that_make_a_pool_not_actionable_block_it_with_the_first_error() {
    let p = pool(serde_json::json!({}));
    let resolve_it = || resolve_with(&p, vec![engine(), model()], &Files::ready());
    let mut e = entry(AnyObject::Pool(p.clone()));
    assert!(actionable(&e, resolve_it()).is_ok(), "actionable and resolved");
    e.actionable = false;
    e.errors = vec![llorch_manifests::ManifestError::file(
        "m.yaml",
        "9000 exceeds Model `tiny`'s ctxMax of 4096",
        "lower ctxSize",
    )];
    let Err(Blocked::ManifestInvalid { message }) = actionable(&e, resolve_it()) else {
        panic!("expected ManifestInvalid")
    };
    assert!(
        message.contains("9000 exceeds Model `tiny`'s ctxMax of 4096"),
        "{message}"
    );
    let missing = Err(Blocked::ModelMissing { model: "tiny".into() });
    assert_eq!(
        actionable(&e, missing).unwrap_err(),
        Blocked::ModelMissing { model: "tiny".into() },
        "what failed to resolve comes first"
    );
}

#[test]
fn an_external_pool_serves_its_engines_version_and_api_at_the_pools_context() {
    let ext = object(
        "Engine",
        "mock",
        serde_json::json!({"provisioning": "external", "url": "http://gpu-box:8000/", "version": "v9", "api": "openai"}),
    );
    let AnyObject::Engine(ext_engine) = ext.clone() else {
        unreachable!()
    };
    let p = pool(serde_json::json!({"ctxSize": 2048}));
    let c = external_contract(&p, &ext_engine, &desired(vec![ext.clone(), model()])).unwrap();
    assert_eq!(
        (c.engine_version.as_str(), c.api, c.ctx_size),
        ("v9", ApiFlavour::Openai, 2048)
    );
    assert_eq!(c.model_file, None, "someone else's engine loads its own model");
    assert_eq!(external_contract(&p, &ext_engine, &desired(vec![ext])), None);
}

fn replica(index: u32, phase: ReplicaPhase, port: Option<u16>, gpus: Vec<u32>) -> ReplicaStatus {
    ReplicaStatus {
        id: ReplicaId::new("chat", index),
        pool: "chat".into(),
        index,
        phase,
        container_id: Some(format!("c{index}")),
        container_name: None,
        endpoint: port.map(Endpoint::loopback),
        gpus,
        gpus_simulated: true,
        engine_version: "b1".into(),
        spec_hash: "h".into(),
        restarts: 0,
        ready_since: None,
        kv_cache_usage_ratio: None,
    }
}

#[test]
fn the_view_lists_ready_replicas_with_an_endpoint_and_the_free_vram_of_their_gpus() {
    let p = pool(serde_json::json!({"slotsPerReplica": 3}));
    let contract = resolve_with(&p, vec![engine(), model()], &Files::ready())
        .unwrap()
        .contract(&p);
    let mut book = ServingBook::default();
    book.start_pass();
    book.reconciled("chat", Some(contract.clone()));
    let replicas = [
        replica(1, ReplicaPhase::Ready, Some(40_001), vec![0, 1]),
        replica(0, ReplicaPhase::Ready, Some(40_000), vec![1]),
        replica(2, ReplicaPhase::Starting, Some(40_002), vec![0]),
        replica(3, ReplicaPhase::Ready, None, vec![0]),
    ];
    let view = book.view([&p], &replicas, &gpus(2));
    assert_eq!(view.len(), 1);
    let chat = &view[0];
    assert_eq!(
        (chat.pool.as_str(), chat.model.as_str(), chat.engine.as_str()),
        ("chat", "tiny", "mock")
    );
    assert_eq!(chat.slots_per_replica, 3);
    assert_eq!(chat.contract.as_ref(), Some(&contract));
    assert_eq!(chat.blocked, None);
    let ids: Vec<&str> = chat.replicas.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["chat-0", "chat-1"], "Ready with an endpoint, by index");
    assert_eq!(chat.replicas[0].free_vram_bytes, 2 << 30);
    assert_eq!(chat.replicas[1].free_vram_bytes, 3 << 30, "both GPUs");
    assert_eq!(chat.replicas[0].endpoint.as_str(), "http://127.0.0.1:40000");
    assert_eq!(chat.replicas[0].container_id.as_deref(), Some("c0"));
}

#[test]
fn a_pool_blocked_after_it_served_keeps_its_contract_and_its_ready_replicas() {
    let p = pool(serde_json::json!({}));
    let mut book = ServingBook::default();
    let served = resolve_with(&p, vec![engine(), model()], &Files::ready())
        .unwrap()
        .contract(&p);
    book.start_pass();
    book.reconciled("chat", Some(served.clone()));
    // The Engine is deleted: the Pool is blocked, its containers left as they are.
    let why = resolve_with(&p, vec![model()], &Files::ready()).unwrap_err();
    book.start_pass();
    book.blocked("chat", why);
    let replicas = [replica(0, ReplicaPhase::Ready, Some(40_000), vec![0])];
    let view = book.view([&p], &replicas, &gpus(1));
    assert_eq!(
        view[0].contract.as_ref(),
        Some(&served),
        "the last contract it ran with"
    );
    assert_eq!(view[0].blocked, Some(Blocked::EngineMissing { engine: "mock".into() }));
    assert_eq!(view[0].replicas.len(), 1, "its Ready replica still serves");
    assert!(view[0].usable().is_ok());
    // Fixed: reconciled again, no longer blocked.
    book.start_pass();
    book.reconciled("chat", Some(served));
    assert_eq!(book.view([&p], &replicas, &gpus(1))[0].blocked, None);
}

#[test]
fn a_pool_that_never_resolved_has_no_contract_and_a_deleted_one_is_forgotten() {
    let p = pool(serde_json::json!({}));
    let mut book = ServingBook::default();
    book.start_pass();
    book.blocked("chat", Blocked::ModelMissing { model: "tiny".into() });
    let view = book.view([&p], &[], &[]);
    assert_eq!(view[0].contract, None);
    assert_eq!(
        view[0].usable().unwrap_err().to_string(),
        "pool `chat` cannot serve: Model `tiny` does not exist"
    );
    book.reconciled(
        "chat",
        resolve_with(&p, vec![engine(), model()], &Files::ready())
            .ok()
            .map(|r| r.contract(&p)),
    );
    book.forget("chat");
    book.start_pass();
    assert_eq!(
        book.view([&p], &[], &[])[0].contract,
        None,
        "a deleted Pool's contract is dropped"
    );
}

#[test]
fn pools_are_published_sorted_by_name() {
    let mut b = pool(serde_json::json!({}));
    b.metadata.name = "b".into();
    let mut a = pool(serde_json::json!({}));
    a.metadata.name = "a".into();
    let view = ServingBook::default().view([&b, &a], &[], &[]);
    let names: Vec<&str> = view.iter().map(|p| p.pool.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}
