//! Prints the GPU inventory exactly as llama-orch reads it through NVML — index, UUID, name,
//! total/used/free VRAM, utilisation, processes, driver/ECC problems — and the container
//! create body llama-orch would send for a replica on GPU 0: Docker's `nvidia` device request
//! and Podman's CDI device. Used by `scripts/gpu-proof.sh` on a machine with an NVIDIA GPU.
//!
//! Exits 1 with llama-orch's own diagnostic when NVML is unusable (no driver, no GPU): the
//! same words the daemon refuses to start with. Never falls back to anything.
//!
//! `cargo run -p llama-orch-controller --example gpu-inventory [-- --create-body-only]`

use std::path::Path;
use std::process::ExitCode;

use llorch_controller::gpu;
use llorch_controller::runtime::docker::{ServerInfo, ServerKind, create_body};
use llorch_controller::spec::ReplicaInputs;
use llorch_manifests::api::GpuView;
use llorch_manifests::config::GpuConfig;
use llorch_manifests::{Engine, Model, Pool};

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
}

fn print_device(d: &GpuView) {
    println!("GPU {}: {}", d.index, d.name);
    println!("  uuid:        {}", d.uuid);
    println!(
        "  vram:        total {} ({} B), used {} ({} B), free {} ({} B)",
        gib(d.total_bytes),
        d.total_bytes,
        gib(d.used_bytes),
        d.used_bytes,
        gib(d.free_bytes),
        d.free_bytes
    );
    match d.utilization_pct {
        Some(u) => println!("  utilisation: {u}%"),
        None => println!("  utilisation: not reported"),
    }
    println!("  processes:   {}", d.processes.len());
    for p in &d.processes {
        let used = p.used_bytes.map_or_else(|| "unknown".to_string(), gib);
        println!("    pid {:>8}  {used}", p.pid);
    }
    if d.errors.is_empty() {
        println!("  health:      ok (no uncorrected ECC errors, no pages pending retirement)");
    } else {
        for e in &d.errors {
            println!("  ERROR:       {e}");
        }
    }
}

/// A one-replica Pool on GPU 0, as placement would hand it to the runtime.
fn replica_objects() -> Result<(Engine, Model, Pool), serde_json::Error> {
    let engine: Engine = serde_json::from_value(serde_json::json!({
        "apiVersion": "llama-orch.dev/v1alpha1", "kind": "Engine", "metadata": {"name": "llamacpp"},
        "spec": {"image": "ghcr.io/ggml-org/llama.cpp:server-cuda", "version": "proof",
                 "extraArgs": ["--n-gpu-layers", "999"]}
    }))?;
    let model: Model = serde_json::from_value(serde_json::json!({
        "apiVersion": "llama-orch.dev/v1alpha1", "kind": "Model", "metadata": {"name": "m"},
        "spec": {"ref": "file:/models/m.gguf", "ctxMax": 4096}
    }))?;
    let pool: Pool = serde_json::from_value(serde_json::json!({
        "apiVersion": "llama-orch.dev/v1alpha1", "kind": "Pool", "metadata": {"name": "proof"},
        "spec": {"engine": "llamacpp", "model": "m", "replicas": 1, "gpus": [0]}
    }))?;
    Ok((engine, model, pool))
}

fn print_create_bodies() -> Result<(), String> {
    let (engine, model, pool) = replica_objects().map_err(|e| e.to_string())?;
    let spec = ReplicaInputs {
        instance: "proof",
        pool_name: "proof",
        pool: &pool.spec,
        engine: &engine.spec,
        model: &model.spec,
        model_path: Path::new("/models/m.gguf"),
        index: 0,
        gpus: &[0],
        gpus_simulated: false,
    }
    .container_spec("proof");
    for server in [
        ServerInfo {
            kind: ServerKind::Docker,
            version: "20.10+".into(),
        },
        ServerInfo {
            kind: ServerKind::Podman,
            version: "5.4.0".into(),
        },
    ] {
        let body = create_body(&spec, &server).map_err(|e| e.to_string())?;
        let host = body.host_config.as_ref();
        let json = serde_json::json!({
            "Env": body.env,
            "HostConfig": {"DeviceRequests": host.and_then(|h| h.device_requests.clone())},
        });
        println!(
            "\n{} {}: the create body's GPU parts for a replica on GPU 0",
            server.kind.as_str(),
            server.version
        );
        println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
    }
    Ok(())
}

fn main() -> ExitCode {
    // `--create-body-only`: just the runtime side, which needs no GPU (for the docs and CI).
    if std::env::args().any(|a| a == "--create-body-only") {
        return match print_create_bodies() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gpu-inventory: cannot build the create body: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let inventory = match gpu::open(&GpuConfig::Nvml) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("gpu-inventory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let devices = match inventory.devices() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gpu-inventory: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "NVML inventory as llama-orch reads it (source: {}, simulated: {}), {} device(s):\n",
        inventory.source(),
        inventory.simulated(),
        devices.len()
    );
    for d in &devices {
        print_device(d);
    }
    let free: u64 = devices.iter().map(|d| d.free_bytes).sum();
    println!("\nfree VRAM in all: {} ({free} B)", gib(free));
    if let Err(e) = print_create_bodies() {
        eprintln!("gpu-inventory: cannot build the create body: {e}");
        return ExitCode::FAILURE;
    }
    if devices.iter().any(|d| !d.errors.is_empty()) {
        eprintln!("gpu-inventory: a GPU reports errors (above); llama-orch keeps replicas off it");
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}
