//! The Pools the benchmark measures on: a mock-engine Pool manifest, applying it and waiting
//! for its replicas, and deleting it until its containers are gone. It must not measure.

use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, mock_stack, pool_ready};

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
        .filter_map(|r| r.endpoint.clone())
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
