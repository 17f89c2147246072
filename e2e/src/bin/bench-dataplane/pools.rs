//! The Pools the benchmark measures on: mock-engine Pool manifests (in containers, or as plain
//! processes), applying one and waiting for its replicas, deleting it until its containers are
//! gone, and a guard for the engine processes. It must not measure.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use llama_orch_e2e::DEFAULT_MOCK_IMAGE;
use llama_orch_e2e::daemon::{Daemon, bin, mock_stack, pool_ready};

pub(crate) const READY: Duration = Duration::from_secs(60);

/// A Pool manifest of the mock engine: `replicas` × `slots`, context `ctx` (split over the
/// slots by the engine, as llama-server does), a `queue`, and extra engine flags.
pub(crate) fn pool(d: &Daemon, name: &str, replicas: u32, slots: u32, ctx: u32, queue: &str, args: &[&str]) -> String {
    mock_stack(&format!("{name}-engine"), name, replicas, &d.model_path(), args)
        .replace(
            "slotsPerReplica: 2",
            &format!("slotsPerReplica: {slots}\n  queue: {queue}"),
        )
        .replace("ctxMax: 4096", &format!("ctxMax: {ctx}"))
}

/// Applies a Pool, waits for it, and returns its replica endpoints.
pub(crate) fn bring_up(d: &Daemon, name: &str, manifest: &str, replicas: u32) -> Vec<String> {
    d.write_manifest(&format!("{name}.yaml"), manifest);
    let s = d.wait_for(&format!("pool {name} Ready"), READY, |s| pool_ready(s, name, replicas));
    let endpoints: Vec<String> = s
        .replicas
        .iter()
        .filter(|r| r.pool == name)
        .filter_map(|r| r.endpoint.as_ref().map(|e| e.as_str().to_string()))
        .collect();
    assert_eq!(endpoints.len(), replicas as usize, "endpoints of {name}");
    endpoints
}

pub(crate) fn tear_down(d: &Daemon, name: &str) {
    d.delete_manifest(&format!("{name}.yaml"));
    d.wait_for(&format!("pool {name} gone"), READY, |s| {
        s.replicas.iter().all(|r| r.pool != name)
    });
    let (instance, pool) = (
        format!("label=dev.llama-orch.instance={}", d.instance),
        format!("label=dev.llama-orch.pool={name}"),
    );
    let deadline = Instant::now() + READY;
    while !d
        .runtime
        .run(&["ps", "-a", "-q", "--filter", &instance, "--filter", &pool])
        .is_empty()
    {
        assert!(Instant::now() < deadline, "pool {name}'s containers are still there");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`pool`] with the mock engine as a plain process (`provisioning: binary`, `executable`):
/// its replicas listen on loopback ports the daemon picks, with no container and no proxy.
pub(crate) fn process_pool(
    d: &Daemon,
    name: &str,
    replicas: u32,
    slots: u32,
    ctx: u32,
    queue: &str,
    args: &[&str],
) -> String {
    let image = format!("  image: {DEFAULT_MOCK_IMAGE}\n");
    let manifest = pool(d, name, replicas, slots, ctx, queue, args);
    assert!(
        manifest.contains(&image),
        "mock_stack's Engine runs {DEFAULT_MOCK_IMAGE}"
    );
    let exe = bin("mock-engine");
    manifest.replace(
        &image,
        &format!("  provisioning: binary\n  executable: {}\n", exe.display()),
    )
}

/// SIGKILLs the process groups of every engine process the daemon recorded under
/// `<home>/state/processes` when dropped: they run in their own process groups and would
/// outlive a benchmark that stops half-way. Declare it after the [`Daemon`] (drops first).
pub(crate) struct ProcessGuard(pub(crate) PathBuf);

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let Ok(dir) = std::fs::read_dir(&self.0) else {
            return;
        };
        for entry in dir.flatten() {
            let record = std::fs::read(entry.path()).unwrap_or_default();
            let pid = serde_json::from_slice::<serde_json::Value>(&record)
                .ok()
                .and_then(|v| v["pid"].as_u64());
            if let Some(pid) = pid {
                let _ = Command::new("kill").args(["-9", "--", &format!("-{pid}")]).status();
            }
        }
    }
}
