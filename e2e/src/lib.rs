//! llama-orch's end-to-end tier: tests against real Docker and real Podman (started by
//! `scripts/setup-runtimes.sh`), the real binaries and the mock engine image. This file holds the
//! small helpers every e2e test shares: where the runtimes' sockets are, label values unique to
//! one test, the runtime's own CLI, and a guard that removes a test's containers even when the
//! test fails. Nothing here skips a test: a runtime that does not answer is a failure.

pub mod bad_input;
pub mod bench;
pub mod daemon;
pub mod lan;
pub mod llama_server;
pub mod monitoring;
pub mod nvml_shim;
pub mod python;
pub mod sse;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable with Docker's socket URL for the e2e tests.
pub const DOCKER_SOCKET_ENV: &str = "LLORCH_DOCKER_SOCKET";
/// Docker's socket as `scripts/setup-runtimes.sh` starts it.
pub const DEFAULT_DOCKER_SOCKET: &str = "unix:///tmp/lo-docker/docker.sock";
/// Environment variable with Podman's socket URL for the e2e tests.
pub const PODMAN_SOCKET_ENV: &str = "LLORCH_PODMAN_SOCKET";
/// Podman's socket as `scripts/setup-runtimes.sh` starts it.
pub const DEFAULT_PODMAN_SOCKET: &str = "unix:///tmp/lo-podman.sock";
/// Environment variable that overrides the mock engine image.
pub const MOCK_IMAGE_ENV: &str = "LLORCH_MOCK_IMAGE";
/// The mock engine image `scripts/build-mock-image.sh` builds for both runtimes.
pub const DEFAULT_MOCK_IMAGE: &str = "llama-orch/mock-engine:dev";

/// Docker's socket URL: `LLORCH_DOCKER_SOCKET`, else [`DEFAULT_DOCKER_SOCKET`].
pub fn docker_socket() -> String {
    env_or(DOCKER_SOCKET_ENV, DEFAULT_DOCKER_SOCKET)
}

/// Podman's socket URL: `LLORCH_PODMAN_SOCKET`, else [`DEFAULT_PODMAN_SOCKET`].
pub fn podman_socket() -> String {
    env_or(PODMAN_SOCKET_ENV, DEFAULT_PODMAN_SOCKET)
}

/// The socket URL of `runtime` (`docker` or `podman`).
pub fn socket_of(runtime: &str) -> String {
    if runtime == "podman" {
        podman_socket()
    } else {
        docker_socket()
    }
}

/// The mock engine image: `LLORCH_MOCK_IMAGE`, else [`DEFAULT_MOCK_IMAGE`].
pub fn mock_image() -> String {
    env_or(MOCK_IMAGE_ENV, DEFAULT_MOCK_IMAGE)
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// A value no other test, run or process uses: `<prefix>-<pid>-<nanos>-<n>`. Use it for label
/// values and container names so parallel tests never see each other's containers.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// The runtime's own CLI (`docker` or `podman`) talking to the same engine as `socket`: Docker's
/// through `DOCKER_HOST`, Podman's through `--url`.
pub fn runtime_cli(runtime: &str, socket: &str) -> Command {
    let mut cli = Command::new(runtime);
    if runtime == "podman" {
        cli.arg("--url").arg(socket);
    } else {
        cli.env("DOCKER_HOST", socket);
    }
    cli
}

/// Runs the runtime's CLI; `Err` carries the command and its stderr.
pub fn run_cli(runtime: &str, socket: &str, args: &[&str]) -> Result<String, String> {
    let out = runtime_cli(runtime, socket)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{runtime}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "`{runtime} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Removes every container carrying `key=value` on drop, running or not, through the runtime's
/// CLI, so a test that fails half-way leaves nothing behind.
#[derive(Debug)]
pub struct ContainerGuard {
    runtime: String,
    socket: String,
    label: String,
}

impl ContainerGuard {
    /// Guards the containers labelled `key=value` on `runtime` at `socket`.
    pub fn new(runtime: &str, socket: &str, key: &str, value: &str) -> Self {
        ContainerGuard {
            runtime: runtime.to_string(),
            socket: socket.to_string(),
            label: format!("{key}={value}"),
        }
    }

    /// Ids of the guarded containers (any state), as the runtime's CLI lists them.
    pub fn container_ids(&self) -> Result<Vec<String>, String> {
        let filter = format!("label={}", self.label);
        let listed = run_cli(
            &self.runtime,
            &self.socket,
            &["ps", "-a", "-q", "--no-trunc", "--filter", &filter],
        )?;
        Ok(listed.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let result = self.container_ids().and_then(|ids| {
            if ids.is_empty() {
                return Ok(());
            }
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids.iter().map(String::as_str));
            run_cli(&self.runtime, &self.socket, &args).map(drop)
        });
        if let Err(e) = result {
            // Never panic in drop (it may run while a failed test unwinds).
            eprintln!("warning: could not remove the containers labelled {}: {e}", self.label);
        }
    }
}

/// Declares `docker::<name>` and `podman::<name>` tests that call the scenario `fn <name>(Runtime)`
/// of the calling test file once per runtime.
#[macro_export]
macro_rules! on_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod docker {
            $( #[test] fn $name() { super::$name($crate::daemon::Runtime::docker()) } )*
        }
        mod podman {
            $( #[test] fn $name() { super::$name($crate::daemon::Runtime::podman()) } )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_values_differ_within_one_process() {
        assert_ne!(unique("t"), unique("t"));
        assert!(unique("run").starts_with(&format!("run-{}-", std::process::id())));
    }

    #[test]
    fn podmans_cli_is_pointed_at_the_socket_and_dockers_through_docker_host() {
        let podman = runtime_cli("podman", "unix:///tmp/p.sock");
        let args: Vec<_> = podman.get_args().collect();
        assert_eq!(args, ["--url", "unix:///tmp/p.sock"]);
        let docker = runtime_cli("docker", "unix:///tmp/d.sock");
        let envs: Vec<_> = docker.get_envs().collect();
        assert_eq!(
            envs,
            [(
                std::ffi::OsStr::new("DOCKER_HOST"),
                Some(std::ffi::OsStr::new("unix:///tmp/d.sock"))
            )]
        );
    }
}
