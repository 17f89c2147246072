//! Which host processes make up one replica: a root pid (a container's init process as the
//! runtime reports it, or a spawned engine) and every process below it, found by reading the
//! parent pid in each `/proc/<pid>/stat`. The NotOnGpu check looks for these pids in NVML's
//! per-GPU process lists, so they must be in the host's PID namespace — which is what Docker
//! and Podman report as `State.Pid` and what a spawned child's pid is.
//!
//! Reading /proc is blocking file I/O: [`tree`] does it on a blocking thread, never on an
//! async worker. It only reads; it never signals a process.

use std::path::Path;

/// Reading `/proc` could not be finished.
#[derive(Debug, thiserror::Error)]
#[error("the blocking task reading /proc for the processes under pid {root} did not finish: {source}")]
pub struct ProcTreeError {
    /// The root looked under.
    pub root: u32,
    /// Why the task ended without an answer.
    #[source]
    pub source: tokio::task::JoinError,
}

/// The parent pid in one `/proc/<pid>/stat` line (field 4). The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parent_of(stat_line: &str) -> Option<u32> {
    let rest = &stat_line[stat_line.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and every process below it in `parents` (`(pid, parent pid)` pairs), sorted; empty
/// when `root` is not among the processes.
pub fn descendants(root: u32, parents: &[(u32, u32)]) -> Vec<u32> {
    if !parents.iter().any(|(pid, _)| *pid == root) {
        return Vec::new();
    }
    let mut found = vec![root];
    let mut next = 0;
    while let Some(&parent) = found.get(next) {
        next += 1;
        for (pid, _) in parents.iter().filter(|(pid, ppid)| *ppid == parent && *pid != parent) {
            if !found.contains(pid) {
                found.push(*pid);
            }
        }
    }
    found.sort_unstable();
    found
}

/// Every process under `proc_root` with its parent. Processes that end while this reads are
/// skipped.
pub fn read_parents(proc_root: &Path) -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let line = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
            Some((pid, parent_of(&line)?))
        })
        .collect()
}

/// `root` and its descendants on this host, read from `/proc` on a blocking thread.
pub async fn tree(root: u32) -> Result<Vec<u32>, ProcTreeError> {
    tokio::task::spawn_blocking(move || descendants(root, &read_parents(Path::new("/proc"))))
        .await
        .map_err(|source| ProcTreeError { root, source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn the_parent_is_read_past_a_name_with_spaces_and_parentheses() {
        let line = "4242 (llama (server) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654";
        assert_eq!(parent_of(line), Some(17));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn descendants_are_children_and_their_children_but_not_siblings() {
        let parents = [(1, 0), (10, 1), (11, 10), (12, 11), (13, 10), (20, 1), (21, 20)];
        assert_eq!(descendants(10, &parents), [10, 11, 12, 13]);
        assert_eq!(descendants(12, &parents), [12]);
        assert_eq!(descendants(99, &parents), Vec::<u32>::new(), "no such root");
    }

    /// A real process tree: `sh` forks `sleep`, prints its pid, waits. The grandchild of this
    /// test must be found under the `sh` child.
    #[tokio::test]
    async fn a_real_child_and_its_own_child_are_found_in_proc() {
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The echo comes after the fork: once it is read, the grandchild exists.
        let mut line = String::new();
        BufReader::new(sh.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let found = tree(sh.id()).await.unwrap();
        let _ = Command::new("kill").arg(grandchild.to_string()).status();
        let _ = sh.kill();
        let _ = sh.wait();
        assert!(found.contains(&sh.id()), "{found:?}");
        assert!(
            found.contains(&grandchild),
            "the grandchild {grandchild} is not in {found:?}"
        );
        assert!(!found.contains(&std::process::id()), "its parent is not below it");
    }
}
