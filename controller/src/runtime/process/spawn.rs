//! Starting and stopping one engine process. A process gets its own process group (so a
//! Ctrl-C or SIGKILL of the daemon does not reach it, and stopping it reaches its children),
//! stdin from `/dev/null`, stdout and stderr appended to a log file, and `{port}` in its
//! arguments replaced by a free loopback port.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use super::procfs;
use crate::runtime::{ContainerSpec, Result, RuntimeError};

/// How long a process may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// A free TCP port on 127.0.0.1 (the kernel's pick; free when this returns).
pub fn free_loopback_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind((llorch_manifests::Endpoint::LOOPBACK, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `args` with `{port}` filled.
pub fn fill_port(args: &[String], port: u16) -> Vec<String> {
    args.iter().map(|a| a.replace("{port}", &port.to_string())).collect()
}

/// Spawns `executable` for `spec` with its log at `log`; returns the child and its pid.
pub fn spawn(
    spec: &ContainerSpec,
    executable: &Path,
    args: &[String],
    log: &Path,
) -> Result<(tokio::process::Child, u32)> {
    let failed = |message: String| RuntimeError::Api {
        step: "spawn process",
        message,
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| failed(format!("cannot open the log file {}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| failed(format!("cannot open the log file {}: {e}", log.display())))?;
    let mut command = tokio::process::Command::new(executable);
    command
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(false);
    let child = command
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", executable.display())))?;
    let pid = child
        .id()
        .ok_or_else(|| failed(format!("{} exited before its pid was read", executable.display())))?;
    Ok((child, pid))
}

/// Stops the process group of `pid` (if `pid` is still the process that started at
/// `start_ticks`): SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL. Gone already is
/// success.
pub async fn stop(pid: u32, start_ticks: u64) -> std::io::Result<()> {
    let Some(group) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Ok(());
    };
    if !procfs::is_alive(pid, start_ticks) {
        return Ok(());
    }
    signal_group(group, Signal::TERM)?;
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !procfs::is_alive(pid, start_ticks) {
            // The leader is gone; whatever it left in its group goes too.
            return signal_group(group, Signal::KILL);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    signal_group(group, Signal::KILL)
}

fn signal_group(group: Pid, signal: Signal) -> std::io::Result<()> {
    match kill_process_group(group, signal) {
        Err(rustix::io::Errno::SRCH) | Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The last `lines` lines of the log file (at most its last 256 KiB are read).
pub fn tail(log: &Path, lines: usize) -> std::io::Result<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    const MAX: u64 = 256 * 1024;
    let mut file = std::fs::File::open(log)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_port_placeholder_is_filled() {
        let args = [
            "--port".to_string(),
            "{port}".into(),
            "--host".into(),
            "127.0.0.1".into(),
        ];
        assert_eq!(fill_port(&args, 4242), ["--port", "4242", "--host", "127.0.0.1"]);
    }

    #[test]
    fn the_tail_is_the_last_lines_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("l.log");
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&log, 2).unwrap(), ["b", "c"]);
        assert_eq!(tail(&log, 9).unwrap(), ["a", "b", "c"]);
    }
}
