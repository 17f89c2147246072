//! The real `orchctl` binary writing into a pipe whose reader goes away early (`orchctl diff … |
//! head -1`): it ends quietly with exit 0, as kubectl does, instead of `error: Broken pipe`.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{ENGINE, Home, MODEL};

#[test]
fn a_reader_that_closes_the_pipe_early_ends_orchctl_quietly_with_exit_0() {
    let home = Home::new("http://127.0.0.1:9");
    // Far more output than a pipe buffers (64 KiB), so orchctl is still writing when the
    // reader goes away: 400 new Pools, each a diff of some 20 lines.
    let mut text = format!("{ENGINE}---\n{}", MODEL.replace("file:models/", "file:/abs/"));
    for i in 0..400 {
        text.push_str(&format!(
            "---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: pool-{i}}}\n\
             spec: {{engine: mock, model: tiny, replicas: 1}}\n"
        ));
    }
    let input = home.input_file("many.yaml", &text);
    let config = home.config().display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchctl"))
        .args(["--config", &config, "diff", "-f", &input])
        .env_remove("LLAMA_ORCH_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        reader.read_line(&mut first).unwrap();
        // The reader is dropped here: the pipe's read end closes, like `head -1` exiting.
    }
    assert_eq!(first, "engine/mock new\n");
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    // Only the line that says where diff acts: no `error: Broken pipe`.
    assert!(stderr.starts_with("comparing with the manifests directory"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "nothing else on stderr: {stderr}");
    assert_eq!(done.status.code(), Some(0), "a closed pipe is not a failure: {stderr}");
}
