//! The real `llama-orchd` with `--log-format text` writing its log into a pipe (as a service
//! manager or `2>file` does): the lines are plain text, without ANSI colour escapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn text_logs_into_a_pipe_carry_no_colour_escapes() {
    let home = tempfile::tempdir().unwrap();
    // No GPUs and no container runtime needed; port 0: nothing else on the host is disturbed.
    std::fs::write(home.path().join("config.yaml"), "gpus: none\nbind: 127.0.0.1:0\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llama-orchd"))
        .args(["--log-format", "text"])
        .env("LLAMA_ORCH_HOME", home.path())
        .env_remove("LLAMA_ORCH_CONFIG")
        .env_remove("NO_COLOR")
        .env("LLAMA_ORCH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // Every line up to the one that says the daemon listens (or the daemon's exit).
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let listening = line.contains("llama-orchd listening");
        lines.push(line);
        if listening {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = lines.join("\n");
    assert!(
        lines.last().is_some_and(|l| l.contains("llama-orchd listening")),
        "the daemon did not start:\n{log}"
    );
    assert!(
        lines.iter().any(|l| l.contains(" INFO ")),
        "text format, level in plain words:\n{log}"
    );
    assert!(!log.contains('\x1b'), "no ANSI escapes in a pipe:\n{log:?}");
}
