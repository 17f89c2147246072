#![allow(clippy::unwrap_used)]
use llorch_manifests::api::GpuProcess;

use super::*;

fn gpu(index: u32, processes: &[(u32, Option<u64>)]) -> GpuView {
    GpuView {
        index,
        uuid: format!("GPU-{index}"),
        name: "RTX".into(),
        total_bytes: 24 << 30,
        used_bytes: 0,
        free_bytes: 24 << 30,
        utilization_pct: None,
        simulated: false,
        processes: processes
            .iter()
            .map(|&(pid, used_bytes)| GpuProcess { pid, used_bytes })
            .collect(),
        process_listing: ProcessListing::Listed,
        errors: Vec::new(),
    }
}

const GRACE: Duration = Duration::from_secs(60);
const PAST: Duration = Duration::from_secs(61);

#[test]
fn a_replica_found_on_every_gpu_is_on_its_gpu() {
    let gpus = [
        gpu(0, &[(5, Some(1 << 30))]),
        gpu(1, &[(1, Some(9)), (7, Some(2 << 30))]),
    ];
    let found = look(&[5, 6, 7], &[0, 1], &gpus);
    assert_eq!(
        found[1].on,
        OnDevice::Found {
            pid: 7,
            used_bytes: Some(2 << 30)
        }
    );
    assert_eq!(decide(&found, None, PAST, GRACE), Decision::OnGpu);
}

#[test]
fn one_gpu_without_its_process_makes_it_not_on_its_gpu_past_the_grace() {
    let gpus = [gpu(0, &[(5, Some(1 << 30))]), gpu(1, &[(99, Some(1 << 30))])];
    let found = look(&[5], &[0, 1], &gpus);
    let Decision::NotOnGpu(Shortfall::Missing(missing)) = decide(&found, None, PAST, GRACE) else {
        panic!("{found:?}");
    };
    assert_eq!(missing.len(), 1);
    assert_eq!((missing[0].index, missing[0].uuid.as_str()), (1, "GPU-1"));
}

#[test]
fn within_the_grace_a_missing_process_is_unconfirmed_with_the_time_left() {
    let found = look(&[5], &[0], &[gpu(0, &[])]);
    assert_eq!(
        decide(&found, None, Duration::from_secs(45), GRACE),
        Decision::Unconfirmed {
            left: Duration::from_secs(15)
        }
    );
    assert!(matches!(decide(&found, None, GRACE, GRACE), Decision::NotOnGpu(_)));
    assert!(
        matches!(
            decide(&found, None, Duration::ZERO, Duration::ZERO),
            Decision::NotOnGpu(_)
        ),
        "a grace of 0s decides at once"
    );
}

#[test]
fn a_pid_listed_with_zero_bytes_does_not_count_but_one_without_an_amount_does() {
    let found = look(&[5], &[0], &[gpu(0, &[(5, Some(0))])]);
    assert_eq!(found[0].on, OnDevice::Missing);
    let found = look(&[5], &[0], &[gpu(0, &[(5, None)])]);
    assert_eq!(
        found[0].on,
        OnDevice::Found {
            pid: 5,
            used_bytes: None
        }
    );
}

#[test]
fn a_gpu_whose_processes_cannot_be_listed_is_unchecked_and_never_counts_against_it() {
    let mut g = gpu(0, &[]);
    g.process_listing = ProcessListing::NotSupported;
    let found = look(&[5], &[0, 3], &[g]);
    assert_eq!(
        found[0].on,
        OnDevice::Unchecked(Unchecked::Listing(ProcessListing::NotSupported))
    );
    assert_eq!(found[1].on, OnDevice::Unchecked(Unchecked::NotInInventory));
    assert_eq!(decide(&found, None, PAST, GRACE), Decision::OnGpu);
    assert!(
        Unchecked::Listing(ProcessListing::NotSupported)
            .to_string()
            .contains("NotSupported")
    );
}

#[test]
fn the_message_names_the_replica_gpu_pids_and_fix() {
    let found = look(&[41, 42], &[0], &[gpu(0, &[])]);
    let Decision::NotOnGpu(why) = decide(&found, None, PAST, GRACE) else {
        panic!("{found:?}");
    };
    let m = not_on_gpu_message(&ReplicaId::new("chat", 0), "chat", &why, &[41, 42], Fix::AddGpuLayers);
    assert!(m.starts_with("replica chat-0 of Pool chat is not on its GPU"), "{m}");
    assert!(m.contains("pids 41, 42") && m.contains("GPU 0 (GPU-0)"), "{m}");
    assert!(m.ends_with("Fix: add `--n-gpu-layers 999` to the Engine's args"), "{m}");
}

const GIB: u64 = 1 << 30;

/// Measured on an H200 (docs/gpus.md): a CUDA llama-server with `--n-gpu-layers 0` is listed
/// with 0.59 GiB while its 1.10 GiB of weights stay in host memory; with 999 it holds 1.74 GiB.
#[test]
fn a_replica_listed_with_less_than_its_weights_is_not_on_its_gpu() {
    let weights = Some(1_176_000_000);
    let cpu = look(&[4834], &[0], &[gpu(0, &[(4834, Some(604 << 20))])]);
    let Decision::NotOnGpu(why) = decide(&cpu, weights, PAST, GRACE) else {
        panic!("{cpu:?}");
    };
    let Shortfall::Weights { held, weights: w, .. } = &why else {
        panic!("{why:?}");
    };
    assert_eq!((*held, *w), (604 << 20, 1_176_000_000));
    let m = not_on_gpu_message(&ReplicaId::new("cpu", 0), "cpu", &why, &[4834], Fix::AddGpuLayers);
    assert!(
        m.contains("hold 0.59 GiB on GPU 0 (GPU-0)") && m.contains("less than 90 % of its model's 1.10 GiB of weights"),
        "{m}"
    );
    assert_eq!(
        decide(&cpu, weights, Duration::from_secs(1), GRACE),
        Decision::Unconfirmed {
            left: Duration::from_secs(59)
        },
        "the grace holds for a short hold too"
    );
    let gpu_held = look(&[4833], &[0], &[gpu(0, &[(4833, Some(1782 << 20))])]);
    assert_eq!(decide(&gpu_held, weights, PAST, GRACE), Decision::OnGpu);
}

#[test]
fn the_weights_are_summed_over_the_replicas_gpus_and_pids_and_unknown_amounts_skip_the_rule() {
    // A tensor-split replica: half its weights on each GPU, one engine process each.
    let split = [
        gpu(0, &[(7, Some(3 * GIB))]),
        gpu(1, &[(8, Some(3 * GIB)), (9, Some(GIB))]),
    ];
    let found = look(&[7, 8, 9], &[0, 1], &split);
    assert_eq!(
        found[1].on,
        OnDevice::Found {
            pid: 8,
            used_bytes: Some(4 * GIB)
        }
    );
    assert_eq!(decide(&found, Some(7 * GIB), PAST, GRACE), Decision::OnGpu);
    assert!(matches!(
        decide(&found, Some(8 * GIB), PAST, GRACE),
        Decision::NotOnGpu(Shortfall::Weights { held, .. }) if held == 7 * GIB
    ));
    // An amount NVML does not report: only presence can be checked.
    let unknown = look(&[7], &[0], &[gpu(0, &[(7, None)])]);
    assert_eq!(decide(&unknown, Some(8 * GIB), PAST, GRACE), Decision::OnGpu);
    // A GPU whose processes cannot be listed may hold the rest.
    let mut hidden = gpu(1, &[]);
    hidden.process_listing = ProcessListing::NotSupported;
    let partly = look(&[7], &[0, 1], &[gpu(0, &[(7, Some(GIB))]), hidden]);
    assert_eq!(decide(&partly, Some(8 * GIB), PAST, GRACE), Decision::OnGpu);
    // No weights known (a `vramBytes` override): presence is enough.
    assert_eq!(
        decide(&look(&[7], &[0], &[gpu(0, &[(7, Some(1))])]), None, PAST, GRACE),
        Decision::OnGpu
    );
}

#[test]
fn short_of_weights_is_an_offload_fix_unless_the_engine_offloads_nothing() {
    use serde_json::json;
    let why = Shortfall::Weights {
        held: 1,
        weights: 2,
        found: Vec::new(),
    };
    let offloading = engine(json!({"image": "x", "version": "b1", "extraArgs": ["-ngl", "99"]}));
    assert_eq!(Fix::for_shortfall(&offloading, &why), Fix::OffloadWeights);
    let none = engine(json!({"image": "x", "version": "b1", "extraArgs": ["-ngl", "0"]}));
    assert_eq!(Fix::for_shortfall(&none, &why), Fix::AddGpuLayers);
    assert_eq!(
        Fix::for_shortfall(&offloading, &Shortfall::Missing(Vec::new())),
        Fix::ContainerGpuAccess
    );
}

fn engine(yaml: serde_json::Value) -> llorch_manifests::EngineSpec {
    serde_json::from_value(yaml).unwrap()
}

#[test]
fn the_fix_is_gpu_layers_for_llamacpp_without_them_else_gpu_access_or_cuda() {
    use serde_json::json;
    let plain = engine(json!({"image": "ghcr.io/ggml-org/llama.cpp:server-cuda", "version": "b1"}));
    assert_eq!(Fix::for_engine(&plain), Fix::AddGpuLayers);
    for args in [
        json!(["-ngl", "99"]),
        json!(["--n-gpu-layers=99"]),
        json!(["--gpu-layers", "all"]),
    ] {
        let e = engine(json!({"image": "x", "version": "b1", "extraArgs": args}));
        assert_eq!(Fix::for_engine(&e), Fix::ContainerGpuAccess, "{args}");
    }
    let zero =
        engine(json!({"image": "x", "version": "b1", "args": ["-ngl", "99"], "extraArgs": ["--n-gpu-layers=0"]}));
    assert_eq!(
        Fix::for_engine(&zero),
        Fix::AddGpuLayers,
        "the last flag wins; 0 offloads nothing"
    );
    let env = engine(json!({"image": "x", "version": "b1", "env": {"LLAMA_ARG_N_GPU_LAYERS": "99"}}));
    assert_eq!(Fix::for_engine(&env), Fix::ContainerGpuAccess);
    let vllm = engine(json!({"image": "vllm/vllm-openai", "version": "0.6", "api": "openai"}));
    assert_eq!(Fix::for_engine(&vllm), Fix::ContainerGpuAccess);
    let binary = engine(
        json!({"provisioning": "binary", "executable": "/opt/llama-server", "version": "b1",
        "args": ["--n-gpu-layers", "999"]}),
    );
    assert_eq!(Fix::for_engine(&binary), Fix::BuildWithCuda);
    assert!(
        Fix::ContainerGpuAccess
            .to_string()
            .contains("docker run --rm --gpus all ubuntu nvidia-smi")
    );
    assert!(Fix::BuildWithCuda.to_string().contains("CUDA"));
}
