//! Finds host processes by environment entries (`KEY=VALUE`) in `/proc/<pid>/environ`, so a
//! state file can say "whatever process carries these variables is on this GPU" — an engine
//! container started with them, e.g. `NVIDIA_VISIBLE_DEVICES=1` (which Docker's device request
//! puts there) and a test's own marker — and the shim reports real host PIDs as NVML does. Processes
//! whose environment cannot be read (another user's, gone meanwhile) are skipped silently.
//! It owns no state and decides nothing about memory.

use std::path::Path;

/// True when the NUL-separated `environ` block holds exactly `entry`.
pub fn environ_contains(environ: &[u8], entry: &str) -> bool {
    environ.split(|b| *b == 0).any(|e| e == entry.as_bytes())
}

/// The PIDs under `proc_root` (normally `/proc`) whose environment holds every one of
/// `entries`, ascending. No entries match nothing (a state file cannot claim every process).
pub fn pids_with_entries(proc_root: &Path, entries: &[String]) -> Vec<u32> {
    if entries.is_empty() {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(proc_root.join(pid.to_string()).join("environ"))
                .is_ok_and(|environ| entries.iter().all(|entry| environ_contains(&environ, entry)))
        })
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_entry_matches() {
        let block = b"PATH=/bin\0LLORCH_ON_GPU=1\0HOME=/root\0";
        assert!(environ_contains(block, "LLORCH_ON_GPU=1"));
        assert!(environ_contains(block, "HOME=/root"));
        assert!(!environ_contains(block, "LLORCH_ON_GPU=10"));
        assert!(!environ_contains(block, "LLORCH_ON_GPU="));
        assert!(!environ_contains(block, "ON_GPU=1"));
        assert!(!environ_contains(b"", "A=B"));
    }

    /// Kills the child when the test ends, even on a failed assertion.
    struct Child(std::process::Child);

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A shell carrying `KEY=value`, returned once it has printed a line: its exec is complete,
    /// so its environment is in `/proc` (right after `spawn` it can still read as empty).
    fn running_with(key: &str, value: &str) -> Child {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Child(
            Command::new("sh")
                .args(["-c", "echo ready; read line"])
                .env(key, value)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        std::io::BufReader::new(child.0.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        child
    }

    #[test]
    fn a_spawned_process_is_found_by_its_unique_entry_and_nothing_else_is() {
        let value = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
        let mut child = running_with("LLORCH_SHIM_ENVIRON_TEST", &value);
        let entry = format!("LLORCH_SHIM_ENVIRON_TEST={value}");
        let proc = Path::new("/proc");
        assert_eq!(pids_with_entries(proc, std::slice::from_ref(&entry)), [child.0.id()]);
        let with_path = [entry.clone(), format!("PATH={}", std::env::var("PATH").unwrap())];
        assert_eq!(pids_with_entries(proc, &with_path), [child.0.id()], "all entries held");
        let with_other = [entry.clone(), "LLORCH_SHIM_NOT_SET=1".to_string()];
        assert_eq!(
            pids_with_entries(proc, &with_other),
            Vec::<u32>::new(),
            "one entry missing"
        );
        assert_eq!(pids_with_entries(proc, &[format!("{entry}x")]), Vec::<u32>::new());
        assert_eq!(
            pids_with_entries(proc, &[]),
            Vec::<u32>::new(),
            "no entries match nothing"
        );
        let _ = child.0.kill();
        let _ = child.0.wait();
        assert_eq!(pids_with_entries(proc, &[entry]), Vec::<u32>::new());
    }

    #[test]
    fn an_unreadable_proc_root_finds_nothing() {
        assert!(pids_with_entries(Path::new("/nonexistent-proc"), &["A=B".to_string()]).is_empty());
    }
}
