#![allow(clippy::unwrap_used, clippy::panic)]
use std::path::{Path, PathBuf};

use llorch_controller::gpu::{GpuInventory, SimulatedGpus};
use llorch_controller::placement::{self, Accounting, Existing, PoolDemand};
use llorch_controller::provision::os::OsRelease;
use llorch_manifests::AnyObject;
use llorch_manifests::api::GpuView;
use llorch_manifests::config::{Config, SimulatedGpu};
use llorch_manifests::parse::Located;

use super::*;

const GIB: u64 = 1 << 30;

fn located(yaml: &str) -> Vec<Located> {
    llorch_manifests::parse_file("/m/stack.yaml", yaml.as_bytes()).unwrap()
}

/// Simulated devices of these sizes (GiB), named like the demo's.
fn simulated(sizes: &[u64]) -> Vec<GpuView> {
    let list: Vec<SimulatedGpu> = sizes
        .iter()
        .map(|g| SimulatedGpu {
            name: if *g >= 24 {
                "Simulated RTX 3090"
            } else {
                "Simulated RTX 3060"
            }
            .into(),
            vram_bytes: g * GIB,
        })
        .collect();
    SimulatedGpus::new(&list).unwrap().devices().unwrap()
}

fn input_with(engine_spec: &str, model_spec: &str, pool_spec: &str, gpus: GpuSource) -> PlanInput {
    let objects = located(&format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: e}}\nspec: {engine_spec}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: m}}\nspec: {model_spec}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {pool_spec}\n"
    ));
    let AnyObject::Engine(engine) = objects[0].object.clone() else {
        panic!()
    };
    let AnyObject::Model(model) = objects[1].object.clone() else {
        panic!()
    };
    let figures = Figures::read(&model, Path::new("/m/stack.yaml"), None);
    PlanInput {
        pool: objects[2].clone(),
        engine: Some(engine),
        model: Some((model, PathBuf::from("/m/stack.yaml"))),
        config: Config::default(),
        gpus,
        existing: Vec::new(),
        others: Vec::new(),
        model_status: None,
        figures,
        engine_cache: PathBuf::from("/cache/engines"),
        model_cache: PathBuf::from("/cache/models"),
        os: OsRelease::parse("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"),
        daemon: Err("connection refused".into()),
    }
}

fn input(engine_spec: &str, gpus: GpuSource) -> PlanInput {
    input_with(
        engine_spec,
        "{ref: 'file:/models/tiny.gguf', ctxMax: 4096}",
        "{engine: e, model: m, replicas: 2}",
        gpus,
    )
}

/// Two replicas of 20 GiB each, on the demo's 24 + 12 GiB simulated GPUs.
fn twenty_gib_each(gpus: GpuSource) -> PlanInput {
    input_with(
        "{image: 'img:dev', version: '1'}",
        &format!(
            "{{ref: 'file:/models/tiny.gguf', ctxMax: 4096, vramBytes: {}}}",
            20 * GIB
        ),
        "{engine: e, model: m, replicas: 2}",
        gpus,
    )
}

/// The section of `text` about replica `index`, up to the next replica.
fn replica(text: &str, index: u32) -> String {
    let start = text.find(&format!("  replica {index}:")).unwrap();
    let rest = &text[start..];
    let end = rest[1..].find("  replica ").map_or(rest.len(), |e| e + 1);
    rest[..end].to_string()
}

#[test]
fn the_same_input_renders_byte_identical_text() {
    let a = input(
        "{image: 'img:dev', version: '1'}",
        GpuSource::Config(simulated(&[24, 24])),
    );
    assert_eq!(render(&a), render(&a.clone()));
    let text = render(&a);
    assert!(text.contains("replica 0: container llorch-default-chat-0-"), "{text}");
    assert!(text.contains("-<unique>"), "{text}");
    assert!(
        text.contains("args: --model /models/tiny.gguf --host 0.0.0.0 --port 8080"),
        "{text}"
    );
    assert!(
        replica(&text, 1).contains("gpus: SIMULATED [1]"),
        "a need of 0 still spreads: {text}"
    );
    assert!(
        text.contains("mount: /models/tiny.gguf -> /models/tiny.gguf (read-only)"),
        "{text}"
    );
    assert!(text.contains("not known here:"), "{text}");
    assert!(text.contains("daemon: not reachable (connection refused)"), "{text}");
    assert!(
        text.contains("VRAM per replica: unknown (its GGUF header could not be read here: "),
        "{text}"
    );
}

#[test]
fn on_24_and_12_gib_the_first_replica_goes_to_gpu_0_and_the_second_is_refused_in_the_daemons_words() {
    let devices = simulated(&[24, 12]);
    let a = twenty_gib_each(GpuSource::Config(devices.clone()));
    let text = render(&a);
    assert_eq!(text, render(&a.clone()), "deterministic");
    assert!(
        text.contains("  GPUs: the config's simulated list (the daemon did not answer)\n    GPU 0 (Simulated RTX 3090, 24.0 GiB): 24.0 GiB free\n    GPU 1 (Simulated RTX 3060, 12.0 GiB): 12.0 GiB free\n"),
        "{text}"
    );
    let zero = replica(&text, 0);
    assert!(zero.contains("gpus: SIMULATED [0]: environment only"), "{zero}");
    assert!(zero.contains("vram: 20.0 GiB on GPU 0\n"), "{zero}");
    assert!(
        text.contains("VRAM per replica: 21474836480 bytes (override: weights 21474836480, KV cache 0, overhead 0) — spec.vramBytes"),
        "{text}"
    );

    // The sentence the daemon would emit (PlacementRefused), from the same planner.
    let daemon = placement::plan(
        &devices,
        Accounting::Simulated,
        &[],
        &[PoolDemand {
            name: "chat".into(),
            mask: vec![0, 1],
            gpus_per_replica: 1,
            tensor_split: None,
            replicas: 2,
            need: 20 * GIB,
            place: true,
        }],
    );
    let refusal = daemon.pools["chat"][&1].clone().unwrap_err();
    assert_eq!(
        refusal,
        "replica chat-1 needs 20.0 GiB on 1 GPU; GPU 1 (Simulated RTX 3060, 12.0 GiB) has 12.0 GiB free — short by \
         8.0 GiB; GPU 0 (Simulated RTX 3090, 24.0 GiB) has 4.0 GiB free — short by 16.0 GiB. Not started: free VRAM \
         on these GPUs, lower ctxSize or slotsPerReplica, or allow more GPUs in spec.gpus"
    );
    assert!(
        text.contains(&format!("\n  replica 1: cannot be placed: {refusal}\n")),
        "{text}"
    );
    assert!(
        text.contains("reserved by llama-orch's replicas once placed: GPU 0 20.0 GiB, GPU 1 0.0 GiB"),
        "{text}"
    );
}

#[test]
fn the_daemons_published_inventory_is_not_charged_twice_and_a_running_replica_keeps_its_gpu() {
    // What /v2/gpus shows once chat-0 runs on GPU 0: 20 GiB used there.
    let mut published = simulated(&[24, 12]);
    published[0].used_bytes = 20 * GIB;
    published[0].free_bytes = 4 * GIB;
    let mut a = twenty_gib_each(GpuSource::Daemon {
        devices: published,
        simulated: true,
    });
    a.existing = vec![Existing {
        pool: "chat".into(),
        index: 0,
        gpus: vec![0],
        running: true,
        allocated: true,
    }];
    a.daemon = Ok("http://127.0.0.1:18080".into());
    let text = render(&a);
    assert!(
        text.contains("    GPU 0 (Simulated RTX 3090, 24.0 GiB): 4.0 GiB free\n"),
        "as `orchctl get gpus` shows it: {text}"
    );
    assert!(
        replica(&text, 0).contains("vram: 20.0 GiB on GPU 0 (kept: its container already runs there)"),
        "{text}"
    );
    let one = replica(&text, 1);
    assert!(
        one.contains("GPU 0 (Simulated RTX 3090, 24.0 GiB) has 4.0 GiB free — short by 16.0 GiB"),
        "{one}"
    );
}

#[test]
fn sticky_gpus_win_over_most_free_first() {
    let mut a = twenty_gib_each(GpuSource::Config(simulated(&[24, 24])));
    a.existing = vec![Existing {
        pool: "chat".into(),
        index: 0,
        gpus: vec![1],
        running: true,
        allocated: false,
    }];
    let text = render(&a);
    assert!(replica(&text, 0).contains("gpus: SIMULATED [1]"), "{text}");
    assert!(replica(&text, 1).contains("gpus: SIMULATED [0]"), "{text}");
}

#[test]
fn another_pools_replicas_share_the_ledger() {
    let mut a = twenty_gib_each(GpuSource::Config(simulated(&[24, 12])));
    // `asr` sorts before `chat`: the daemon places it first.
    a.others = vec![PoolDemand {
        name: "asr".into(),
        mask: vec![0],
        gpus_per_replica: 1,
        tensor_split: None,
        replicas: 1,
        need: 10 * GIB,
        place: true,
    }];
    let text = render(&a);
    assert!(
        replica(&text, 0).contains("cannot be placed: replica chat-0 needs 20.0 GiB"),
        "{text}"
    );
    assert!(
        text.contains("reserved by llama-orch's replicas once placed: GPU 0 10.0 GiB, GPU 1 0.0 GiB"),
        "{text}"
    );
}

#[test]
fn a_mask_naming_a_missing_gpu_is_blocked_as_the_daemon_blocks_it() {
    let a = input_with(
        "{image: 'img:dev', version: '1'}",
        "{ref: 'file:/models/tiny.gguf', ctxMax: 4096}",
        "{engine: e, model: m, replicas: 1, gpus: [3]}",
        GpuSource::Config(simulated(&[24, 12])),
    );
    let text = render(&a);
    assert!(
        text.contains(
            "  not placed: the daemon blocks this Pool: GPU 3 does not exist; this host has [0, 1] (see `orchctl get gpus`)"
        ),
        "{text}"
    );
    assert!(!text.contains("replica 0"), "{text}");
}

#[test]
fn unknown_gpus_show_the_mask_only() {
    let a = input(
        "{image: 'img:dev', version: '1'}",
        GpuSource::Unknown("no NVIDIA driver".into()),
    );
    let text = render(&a);
    assert!(
        text.contains("  GPUs: unknown — the daemon did not answer and NVML could not be read here (no NVIDIA driver)\n  spec.gpus: all, gpusPerReplica 1: no replica is placed without an inventory\n"),
        "{text}"
    );
    assert!(!text.contains("replica 0"), "{text}");
    assert!(text.contains("  - which GPUs exist and what they have free"), "{text}");
}

#[test]
fn a_local_gguf_header_sizes_the_replica_as_the_daemon_would() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.gguf");
    std::fs::write(&file, llorch_gguf::fixture::tiny_model("llama")).unwrap();
    let a = input_with(
        "{image: 'img:dev', version: '1'}",
        &format!("{{ref: 'file:{}', ctxMax: 4096}}", file.display()),
        "{engine: e, model: m, replicas: 1, ctxSize: 2048, slotsPerReplica: 2}",
        GpuSource::Config(simulated(&[24])),
    );
    let Figures::Header(figures, path) = &a.figures else {
        panic!("{:?}", a.figures)
    };
    assert_eq!(path, &file);
    let summary = llorch_gguf::read_summary(&file).unwrap();
    let expected = llorch_gguf::estimate(summary.tensor_bytes, summary.kv_bytes_per_token(), 2048, 2);
    assert_eq!(figures.weights_bytes, summary.tensor_bytes);
    let text = render(&a);
    assert!(
        text.contains(&format!(
            "VRAM per replica: {} bytes (gguf: weights {}, KV cache {}, overhead {}) — at ctxSize 2048, 2 slot(s); figures from the GGUF header of {}",
            expected.total_bytes,
            expected.weights_bytes,
            expected.kv_cache_bytes,
            expected.overhead_bytes,
            file.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "vram: {} on GPU 0",
            llorch_manifests::units::gib(expected.total_bytes)
        )),
        "{text}"
    );
}

#[test]
fn a_source_engine_shows_its_steps_its_gate_and_the_built_binary_per_replica() {
    let a = input(
        "{provisioning: source, version: b1, source: {repo: 'https://github.com/ggml-org/llama.cpp', ref: b1}}",
        GpuSource::Config(simulated(&[24])),
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
        GpuSource::Unknown("no NVIDIA driver".into()),
    );
    let text = render(&a);
    assert!(
        text.contains("replica 0: the external engine at http://127.0.0.1:9 (nothing is created)"),
        "{text}"
    );
}

#[test]
fn under_gpus_none_a_container_pool_is_not_placed_and_says_why_while_an_external_one_attaches() {
    assert_eq!(
        GpuSource::from_config(&llorch_manifests::config::GpuConfig::None),
        GpuSource::NoGpus
    );
    let text = render(&input("{image: 'img:dev', version: '1'}", GpuSource::NoGpus));
    assert!(
        text.contains("  GPUs: none (config `gpus: none`: only Pools on external Engines run)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  not placed: the daemon blocks this Pool: this daemon has no GPUs (config `gpus: none`), so only Pools \
             on `external` Engines run here, and Engine `e` is `provisioning: container`"
        ),
        "{text}"
    );
    assert!(!text.contains("  replica 0:"), "nothing is placed: {text}");
    let external = render(&input(
        "{provisioning: external, url: 'http://127.0.0.1:9', version: '1'}",
        GpuSource::NoGpus,
    ));
    assert!(
        external.contains("replica 0: the external engine at http://127.0.0.1:9 (nothing is created)"),
        "{external}"
    );
    assert!(
        external.contains("\n  not fetched here: the external engine loads its own weights"),
        "{external}"
    );
    assert!(!external.contains("VRAM per replica"), "{external}");
}

#[test]
fn a_llamacpp_engine_that_offloads_nothing_is_warned_about_with_the_fix() {
    let bare = render(&input(
        "{image: 'img:dev', version: '1'}",
        GpuSource::Config(simulated(&[24])),
    ));
    assert!(
        bare.contains(
            "\nwarnings:\n  - engine `e` (pool `chat`) offloads no layers to the GPU: llama-server computes on the CPU \
             unless told; add `--n-gpu-layers 999` to its args\n    fix: in engine/e: `extraArgs: [--n-gpu-layers, \"999\"]`\n"
        ),
        "{bare}"
    );
    let offloading = render(&input(
        "{image: 'img:dev', version: '1', extraArgs: [--n-gpu-layers, '999']}",
        GpuSource::Config(simulated(&[24])),
    ));
    assert!(!offloading.contains("warnings:"), "{offloading}");
    assert!(offloading.contains("--n-gpu-layers 999"), "{offloading}");
}
