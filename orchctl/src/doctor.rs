//! `orchctl doctor`: is this host ready to run what the manifests declare? Each check prints
//! one line — `ok`, `warn` or `FAIL`, what it found — and, when something is wrong, a fix to
//! copy and paste. Checks: the config file, the NVIDIA driver and NVML (through the daemon's
//! own `gpu::open`), the container runtime, the NVIDIA container toolkit — all four skipped
//! under `gpus: none`, where only `external` Engines run —, free disk in the model and engine
//! caches, and the tools each declared Engine's provisioning mode needs. Exit status 1 when
//! anything FAILs. It changes nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use llorch_controller::runtime::ContainerRuntime;
use llorch_controller::runtime::docker::DockerRuntime;
use llorch_controller::runtime::process::resolve::{ResolveError, which};
use llorch_manifests::config::{Config, GpuConfig};
use serde::Serialize;

mod engines;

use crate::Io;
use crate::cli::DoctorArgs;

/// Below this much free space a cache is a FAIL.
pub const DISK_FAIL_BYTES: u64 = 2 << 30;
/// Below this much free space a cache is a warning (one 7B model at Q4 is ~4 GiB).
pub const DISK_WARN_BYTES: u64 = 20 << 30;

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Something declared cannot run until this is fixed.
    Fail,
}

/// One check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name, e.g. `nvidia-driver`.
    pub check: String,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub found: String,
    /// A command or edit that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

pub(crate) fn check(name: &str, level: Level, found: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        check: name.to_string(),
        level,
        found: found.into(),
        fix: fix.map(String::from),
    }
}

/// The report as text: one line per check, a `fix:` line under each that has one.
pub fn format_text(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        let level = match c.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let _ = writeln!(out, "{level}  {:width$}  {}", c.check, c.found);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "      {:width$}  fix: {fix}", "");
        }
    }
    let (fails, warns) = (
        checks.iter().filter(|c| c.level == Level::Fail).count(),
        checks.iter().filter(|c| c.level == Level::Warn).count(),
    );
    let _ = writeln!(out, "\n{fails} FAIL, {warns} warn, {} ok", checks.len() - fails - warns);
    out
}

/// Runs every check; returns the exit code (1 when anything FAILs).
pub async fn run(config_flag: Option<&Path>, args: &DoctorArgs, io: &mut Io<'_>) -> anyhow::Result<u8> {
    let env = |k: &str| std::env::var(k).ok();
    let home = llorch_manifests::config::home_dir(
        env(llorch_manifests::config::HOME_ENV).as_deref(),
        env("HOME").as_deref(),
    );
    let config_path = config_flag
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.join("config.yaml"));
    let mut checks = Vec::new();
    let config = config_check(&config_path, &mut checks);
    let runtime = if config.gpus == GpuConfig::None {
        // A gateway: no GPU, no container runtime; nothing NVIDIA's is needed here.
        checks.push(no_gpus_check());
        None
    } else {
        nvidia_checks(&config, &mut checks);
        let runtime = runtime_check(&config, &mut checks).await;
        toolkit_checks(&config, runtime.as_ref(), &mut checks);
        runtime
    };
    let cache_root = llorch_manifests::config::cache_root(env("XDG_CACHE_HOME").as_deref(), env("HOME").as_deref());
    let model_cache = config
        .models
        .cache_dir
        .clone()
        .unwrap_or_else(|| cache_root.join("models"));
    let engine_cache = llorch_controller::provision::engine_cache_dir(&config.provisioning);
    checks.push(disk_check("disk-model-cache", &model_cache));
    checks.push(disk_check("disk-engine-cache", &engine_cache));
    let (manifests_dir, _) = config.resolved_dirs(&home, &config_path);
    engines::checks(&config, &manifests_dir, &engine_cache, runtime.as_ref(), &mut checks).await;
    if args.json {
        writeln!(io.out, "{}", serde_json::to_string_pretty(&checks)?)?;
    } else {
        write!(io.out, "{}", format_text(&checks))?;
    }
    Ok(u8::from(checks.iter().any(|c| c.level == Level::Fail)))
}

fn config_check(path: &Path, checks: &mut Vec<Check>) -> Config {
    match std::fs::read_to_string(path) {
        Ok(text) => match Config::from_yaml(&text) {
            Ok(c) => {
                checks.push(check("config", Level::Ok, format!("{} parses", path.display()), None));
                c
            }
            Err(e) => {
                let fix = format!(
                    "edit {} at the field named above; the other checks use defaults",
                    path.display()
                );
                checks.push(check(
                    "config",
                    Level::Fail,
                    format!("{}: {e}", path.display()),
                    Some(&fix),
                ));
                Config::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            checks.push(check(
                "config",
                Level::Ok,
                format!("{} does not exist: defaults apply", path.display()),
                None,
            ));
            Config::default()
        }
        Err(e) => {
            let fix = format!("chmod u+r {}", path.display());
            checks.push(check(
                "config",
                Level::Fail,
                format!("cannot read {}: {e}", path.display()),
                Some(&fix),
            ));
            Config::default()
        }
    }
}

const DRIVER_FIX: &str = "install the NVIDIA driver and reboot: `apt install nvidia-driver` (Debian: enable `non-free` \
                          first), `pacman -S nvidia` (Arch); then `nvidia-smi` lists the GPUs";

fn nvidia_checks(config: &Config, checks: &mut Vec<Check>) {
    match std::fs::read_to_string("/proc/driver/nvidia/version") {
        Ok(text) => checks.push(check(
            "nvidia-driver",
            Level::Ok,
            text.lines().next().unwrap_or_default().trim().to_string(),
            None,
        )),
        Err(_) => checks.push(check(
            "nvidia-driver",
            Level::Fail,
            "no NVIDIA kernel driver: /proc/driver/nvidia/version does not exist",
            Some(DRIVER_FIX),
        )),
    }
    match llorch_controller::gpu::open(&GpuConfig::Nvml) {
        Ok(gpus) => match gpus.devices() {
            Ok(d) => {
                let names: Vec<String> = d.iter().map(|g| format!("{} {}", g.index, g.name)).collect();
                checks.push(check(
                    "nvml",
                    Level::Ok,
                    format!(
                        "libnvidia-ml.so.1 loaded, NVML initialised, {} GPU(s): {}",
                        d.len(),
                        names.join(", ")
                    ),
                    None,
                ));
            }
            Err(e) => checks.push(check(
                "nvml",
                Level::Fail,
                e.to_string(),
                Some("nvidia-smi -q | head -40"),
            )),
        },
        Err(e) => checks.push(check("nvml", Level::Fail, e.to_string(), Some(DRIVER_FIX))),
    }
    if let GpuConfig::Simulate(list) = &config.gpus {
        checks.push(check(
            "gpus-config",
            Level::Warn,
            format!(
                "config `gpus: simulate` lists {} SIMULATED GPU(s): the daemon uses them, not NVML (tests and demos only)",
                list.len()
            ),
            Some("remove `gpus: simulate` from config.yaml for real GPUs"),
        ));
    }
}

/// The one GPU line under `gpus: none`, instead of the driver, NVML, runtime and toolkit checks.
fn no_gpus_check() -> Check {
    check(
        "gpus-config",
        Level::Ok,
        "config `gpus: none`: this daemon uses no GPUs and no container runtime; only Pools on `external` \
         Engines run (NVIDIA driver, NVML, container runtime and toolkit not checked)",
        None,
    )
}

async fn runtime_check(config: &Config, checks: &mut Vec<Check>) -> Option<DockerRuntime> {
    let connected = tokio::time::timeout(
        Duration::from_secs(15),
        DockerRuntime::connect(config.runtime.kind, config.runtime.socket.as_deref()),
    )
    .await;
    match connected {
        Ok(Ok(rt)) => {
            let id = rt.identity();
            checks.push(check(
                "container-runtime",
                Level::Ok,
                format!("{} {} at {}", id.kind, id.version, id.socket),
                None,
            ));
            Some(rt)
        }
        Ok(Err(e)) => {
            checks.push(check(
                "container-runtime",
                Level::Fail,
                e.to_string(),
                Some("systemctl start docker   # or: systemctl start podman.socket; or set `runtime.socket` in config.yaml"),
            ));
            None
        }
        Err(_) => {
            checks.push(check(
                "container-runtime",
                Level::Fail,
                "no answer within 15 s",
                Some("systemctl restart docker"),
            ));
            None
        }
    }
}

fn toolkit_checks(config: &Config, runtime: Option<&DockerRuntime>, checks: &mut Vec<Check>) {
    const CTK_FIX: &str = "install the NVIDIA Container Toolkit (package `nvidia-container-toolkit` from NVIDIA's \
                           repository), then `nvidia-ctk runtime configure --runtime=docker && systemctl restart docker` \
                           or, for Podman, `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`";
    match which("nvidia-ctk") {
        Ok(p) => checks.push(check("nvidia-ctk", Level::Ok, format!("{}", p.display()), None)),
        Err(why) => checks.push(check("nvidia-ctk", Level::Fail, short(&why), Some(CTK_FIX))),
    }
    let kind = runtime.map(|r| r.identity().kind);
    if kind.as_deref() != Some("podman") {
        let socket = runtime
            .map(|r| r.identity().socket)
            .or_else(|| config.runtime.socket.clone());
        let mut cmd = std::process::Command::new("docker");
        cmd.args(["info", "--format", "{{json .Runtimes}}"]);
        if let Some(s) = socket {
            cmd.env("DOCKER_HOST", s);
        }
        match cmd.output() {
            Ok(out) if out.status.success() => {
                let runtimes = String::from_utf8_lossy(&out.stdout);
                if runtimes.contains("\"nvidia\"") {
                    checks.push(check(
                        "docker-nvidia-runtime",
                        Level::Ok,
                        "Docker has the `nvidia` runtime",
                        None,
                    ));
                } else {
                    checks.push(check(
                        "docker-nvidia-runtime",
                        Level::Fail,
                        format!("Docker's runtimes are {}: no `nvidia`", runtimes.trim()),
                        Some("nvidia-ctk runtime configure --runtime=docker && systemctl restart docker"),
                    ));
                }
            }
            Ok(out) => checks.push(check(
                "docker-nvidia-runtime",
                Level::Warn,
                format!("`docker info` failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
                Some("docker info   # see why it fails"),
            )),
            Err(e) => checks.push(check(
                "docker-nvidia-runtime",
                Level::Warn,
                format!("cannot run `docker info`: {e}"),
                Some("apt install docker.io"),
            )),
        }
    }
    if kind.as_deref() != Some("docker") {
        let mut specs: Vec<PathBuf> = Vec::new();
        for dir in ["/etc/cdi", "/var/run/cdi"] {
            if let Ok(entries) = std::fs::read_dir(dir) {
                specs.extend(
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json")),
                );
            }
        }
        specs.sort();
        if specs.is_empty() {
            checks.push(check(
                "cdi-spec",
                Level::Fail,
                "no CDI spec in /etc/cdi or /var/run/cdi: Podman cannot attach NVIDIA GPUs",
                Some("nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"),
            ));
        } else {
            let names: Vec<String> = specs.iter().map(|p| p.display().to_string()).collect();
            checks.push(check("cdi-spec", Level::Ok, names.join(", "), None));
        }
    }
}

/// `which`'s answer without the list of PATH directories it searched.
pub(crate) fn short(why: &ResolveError) -> String {
    match why {
        ResolveError::NotOnPath { name, .. } => format!("`{name}` is not on PATH"),
        other => other.to_string(),
    }
}

/// Free bytes where `path` is, or at its closest existing ancestor (a cache not created yet).
pub fn free_bytes(path: &Path) -> std::io::Result<(PathBuf, u64)> {
    let mut at = path.to_path_buf();
    while !at.exists() {
        if !at.pop() {
            at = PathBuf::from("/");
            break;
        }
    }
    let s = rustix::fs::statvfs(&at)?;
    Ok((at, s.f_bavail.saturating_mul(s.f_frsize)))
}

fn disk_check(name: &str, path: &Path) -> Check {
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30));
    match free_bytes(path) {
        Ok((at, free)) => {
            let found = format!("{} free at {} (for {})", gib(free), at.display(), path.display());
            let fix = format!(
                "free space there, or point the cache elsewhere in config.yaml (`models.cacheDir` / `provisioning.engineCacheDir`); `du -sh {}`",
                path.display()
            );
            if free < DISK_FAIL_BYTES {
                check(
                    name,
                    Level::Fail,
                    format!("{found}; below {}", gib(DISK_FAIL_BYTES)),
                    Some(&fix),
                )
            } else if free < DISK_WARN_BYTES {
                check(
                    name,
                    Level::Warn,
                    format!("{found}; below {}", gib(DISK_WARN_BYTES)),
                    Some(&fix),
                )
            } else {
                check(name, Level::Ok, found, None)
            }
        }
        Err(e) => check(name, Level::Warn, format!("cannot stat {}: {e}", path.display()), None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_tool_missing_from_path_is_named_without_the_directories_searched() {
        let missing = llorch_controller::runtime::process::resolve::resolve_executable(
            "llorch-no-such-tool",
            Some(std::ffi::OsStr::new("/nowhere:/also/nowhere")),
        )
        .unwrap_err();
        assert_eq!(short(&missing), "`llorch-no-such-tool` is not on PATH");
        let gone = which("/no/such/tool").unwrap_err();
        assert_eq!(short(&gone), "`/no/such/tool` does not exist");
    }

    #[test]
    fn each_check_is_one_line_with_its_fix_under_it_and_a_summary() {
        let text = format_text(&[
            check("config", Level::Ok, "x parses", None),
            check(
                "nvidia-driver",
                Level::Fail,
                "no driver",
                Some("apt install nvidia-driver"),
            ),
            check("disk", Level::Warn, "3.0 GiB free", Some("free space")),
        ]);
        assert_eq!(
            text,
            "ok    config         x parses\n\
             FAIL  nvidia-driver  no driver\n\
             \x20                    fix: apt install nvidia-driver\n\
             warn  disk           3.0 GiB free\n\
             \x20                    fix: free space\n\
             \n1 FAIL, 1 warn, 1 ok\n"
        );
    }

    #[test]
    fn json_levels_are_lower_case_and_fixes_only_when_present() {
        let json = serde_json::to_value([
            check("a", Level::Fail, "f", Some("x")),
            check("b", Level::Ok, "g", None),
        ])
        .unwrap();
        assert_eq!(json[0]["level"], "fail");
        assert_eq!(json[0]["fix"], "x");
        assert!(json[1].get("fix").is_none());
    }

    #[test]
    fn a_cache_that_does_not_exist_yet_is_measured_at_its_closest_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let (at, free) = free_bytes(&dir.path().join("not/yet/there")).unwrap();
        assert_eq!(at, dir.path());
        assert!(free > 0);
    }
}
