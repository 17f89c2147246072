//! `orchctl` on another machine (issue 9, item 3): a second home with no config and no
//! manifests directory drives a daemon bound to this machine's LAN address with `--server` and
//! `--token` — every command, including `apply`, `diff` and `delete`, which go through the
//! write API. The daemon parses, validates and checks the config's trust rules before it
//! writes, and refuses what a local `apply` would refuse, with nothing written. Real daemon,
//! real Docker, the real `orchctl` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, bin, mock_stack, pool_ready};
use llama_orch_e2e::lan::{fresh_token, lan_ip};

const READY: Duration = Duration::from_secs(60);

/// `orchctl` run from `home` (empty), naming the server (and the token, when given).
fn remote(home: &Path, url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("orchctl"));
    cmd.current_dir(home)
        .env("LLAMA_ORCH_HOME", home)
        .env_remove("LLAMA_ORCH_URL")
        .env_remove("LLAMA_ORCH_TOKEN")
        .env_remove("LLAMA_ORCH_CONFIG")
        .args(["--server", url]);
    if let Some(token) = token {
        cmd.args(["--token", token]);
    }
    cmd.args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every manifest file name in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_second_home_applies_diffs_and_deletes_through_the_write_api() {
    let token = fresh_token();
    let d = Daemon::start_secured(Runtime::docker(), &[("laptop", &token)], lan_ip(), "");
    let url = d.url.clone();
    let laptop = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| remote(laptop.path(), &url, Some(&token), args);
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(
            out.status.success(),
            "orchctl {args:?} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    // The input lives in the laptop's home; the Model names the file on the daemon's machine.
    let stack = mock_stack("remote-engine", "chat", 1, &d.model_path(), &[]);
    let input = laptop.path().join("stack.yaml");
    std::fs::write(&input, &stack).unwrap();
    let input = input.display().to_string();

    // diff before anything exists: exit 1, three new objects, nothing written.
    let diff = run(&["diff", "-f", &input]);
    assert_eq!(diff.status.code(), Some(1), "{}", text(&diff.stderr));
    let shown = text(&diff.stdout);
    for line in [
        "engine/remote-engine new",
        "model/chat-model new",
        "pool/chat new",
        "+  replicas: 1",
    ] {
        assert!(shown.contains(line), "diff lacks `{line}`:\n{shown}");
    }
    assert!(files(&d.manifests_dir()).is_empty(), "a diff wrote nothing");
    // It says where it acts: the daemon, not this machine's directory.
    assert!(
        text(&diff.stderr).starts_with(&format!("comparing with llama-orchd at {url} (its write API)")),
        "{}",
        text(&diff.stderr)
    );

    // apply: written by the daemon into its own directory, one file per object.
    assert_eq!(
        ok(&["apply", "-f", &input]),
        "engine/remote-engine created\nmodel/chat-model created\npool/chat created\n"
    );
    assert_eq!(
        files(&d.manifests_dir()),
        ["engine-remote-engine.yaml", "model-chat-model.yaml", "pool-chat.yaml"]
    );
    let written = std::fs::read_to_string(d.manifests_dir().join("pool-chat.yaml")).unwrap();
    assert!(
        written.starts_with("# Written by llama-orchd's write API for token:laptop from "),
        "{written}"
    );
    assert!(
        !laptop.path().join("manifests").exists(),
        "the laptop has no manifests directory"
    );

    // Every other command, against the same daemon.
    ok(&["wait", "pool/chat", "--for=condition=Ready", "--timeout=60s"]);
    d.wait_for("pool chat Ready", READY, |s| pool_ready(s, "chat", 1));
    assert!(ok(&["get", "pools"]).contains("chat"));
    assert!(ok(&["get", "replicas"]).contains("chat-0"));
    assert!(ok(&["describe", "pool/chat"]).contains("Ready"));
    assert!(ok(&["plan", "pool/chat"]).contains("chat"));
    assert!(ok(&["health", "pool/chat"]).contains("chat"));
    ok(&["events"]);
    ok(&["logs", "chat-0", "--tail", "5"]);
    ok(&["models", "list"]);
    assert!(!ok(&["run", "chat", "Once upon", "--max-tokens", "4"]).is_empty());
    ok(&["tasks"]);
    assert!(ok(&["diff", "-f", &input]).contains("pool/chat unchanged"));

    // A change: diff shows it, apply configures it, wait sees the new generation acted on.
    let bigger = laptop.path().join("bigger.yaml");
    std::fs::write(&bigger, stack.replace("replicas: 1", "replicas: 2")).unwrap();
    let bigger = bigger.display().to_string();
    let diff = run(&["diff", "-f", &bigger]);
    assert_eq!(diff.status.code(), Some(1));
    let shown = text(&diff.stdout);
    assert!(
        shown.contains("pool/chat changed") && shown.contains("-  replicas: 1") && shown.contains("+  replicas: 2"),
        "{shown}"
    );
    assert!(ok(&["apply", "-f", &bigger]).contains("pool/chat configured"));
    ok(&["wait", "pool/chat", "--for=condition=Ready", "--timeout=60s"]);
    d.wait_for("pool chat with 2 Ready replicas", READY, |s| pool_ready(s, "chat", 2));

    // Refusals: what a local apply refuses, plus the config's trust rules; nothing written.
    let before: Vec<(String, String)> = files(&d.manifests_dir())
        .into_iter()
        .map(|f| {
            let body = std::fs::read_to_string(d.manifests_dir().join(&f)).unwrap();
            (f, body)
        })
        .collect();
    let refused = |name: &str, yaml: &str, expect: &str| {
        let path = laptop.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        let out = run(&["apply", "-f", &path.display().to_string()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name} was applied: {err}");
        assert!(
            err.contains(expect) && err.contains("nothing was applied"),
            "{name}: {err}"
        );
    };
    let head = "apiVersion: llama-orch.dev/v1alpha1\n";
    refused(
        "dangling.yaml",
        &format!(
            "{head}kind: Pool\nmetadata: {{name: lost}}\nspec: {{engine: nope, model: chat-model, replicas: 1}}\n"
        ),
        "nope",
    );
    refused("broken.yaml", "kind: [\n", "broken.yaml");
    refused(
        "shell.yaml",
        &format!(
            "{head}kind: Engine\nmetadata: {{name: shell}}\nspec:\n  provisioning: binary\n  version: x\n  api: llamacpp\n  \
             executable: /bin/sh\n  args: [\"-c\", \"id; cat {{model_path}}\", \"{{port}}\"]\n"
        ),
        "allowedExecutables",
    );
    refused(
        "shadow.yaml",
        &format!("{head}kind: Model\nmetadata: {{name: shadow}}\nspec: {{ref: \"file:/etc/shadow\", ctxMax: 4096}}\n"),
        "fileRoots",
    );
    refused(
        "relative.yaml",
        &format!(
            "{head}kind: Model\nmetadata: {{name: rel}}\nspec: {{ref: \"file:models/tiny.gguf\", ctxMax: 4096}}\n"
        ),
        "relative",
    );
    let after: Vec<(String, String)> = files(&d.manifests_dir())
        .into_iter()
        .map(|f| {
            let body = std::fs::read_to_string(d.manifests_dir().join(&f)).unwrap();
            (f, body)
        })
        .collect();
    assert_eq!(before, after, "a refused apply changed the daemon's directory");

    // Without the token nothing is written.
    let anonymous = remote(laptop.path(), &url, None, &["delete", "pool/chat"]);
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(
        text(&anonymous.stderr).contains("bearer token"),
        "{}",
        text(&anonymous.stderr)
    );
    assert!(d.manifests_dir().join("pool-chat.yaml").exists());

    // A hand-written file with two objects is named, not rewritten.
    d.write_manifest(
        "pair.yaml",
        &format!(
            "{head}kind: Model\nmetadata: {{name: one}}\nspec: {{ref: \"file:{0}\", ctxMax: 4096}}\n---\n\
             {head}kind: Model\nmetadata: {{name: two}}\nspec: {{ref: \"file:{0}\", ctxMax: 4096}}\n",
            d.model_path().display()
        ),
    );
    d.wait_for("model one declared", READY, |s| {
        s.objects.iter().any(|o| o.object.name == "one")
    });
    let shared = run(&["delete", "model/one"]);
    assert_eq!(shared.status.code(), Some(1));
    assert!(
        text(&shared.stderr).contains("together with model/two"),
        "{}",
        text(&shared.stderr)
    );

    // delete: the file goes, the daemon forgets the Pool, and wait --for=delete agrees.
    assert_eq!(ok(&["delete", "pool/chat"]), "pool/chat deleted\n");
    assert!(!d.manifests_dir().join("pool-chat.yaml").exists());
    ok(&["wait", "pool/chat", "--for=delete", "--timeout=30s"]);
    let again = run(&["delete", "pool/chat"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("not found"), "{}", text(&again.stderr));
    ok(&["delete", "pool/chat", "--ignore-not-found"]);
    let out = run(&["delete", "-f", &input, "--ignore-not-found"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(files(&d.manifests_dir()), ["pair.yaml"]);
}
