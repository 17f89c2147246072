//! Secrets stay secret (issue 9, item 7), on a real daemon and real Docker: an Engine whose env
//! holds a literal `HF_TOKEN`, a value from the daemon's environment and a value from a file.
//! The replica receives all three (read from the container itself), and none of them appears
//! in any API response, `orchctl` output, log line, event or status file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready};

const READY: Duration = Duration::from_secs(30);

/// A value unique to this run, unlikely to occur by chance.
fn planted(tag: &str) -> String {
    format!("{tag}-{}", llama_orch_e2e::unique("s3cr3t"))
}

#[test]
fn engine_secrets_reach_the_replica_and_nothing_else() {
    let (literal, from_env, from_file) = (planted("lit"), planted("env"), planted("file"));
    let d = Daemon::start_with_env(Runtime::docker(), "", &[("LLORCH_E2E_VLLM_KEY", &from_env)]);
    let key_file = d.home.path().join("api-key");
    std::fs::write(&key_file, format!("{from_file}\n")).unwrap();
    let manifest = format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec:\n  \
         image: llama-orch/mock-engine:dev\n  version: \"0.1.0\"\n  health: {{path: /health, intervalMs: 200}}\n  \
         env:\n    HF_TOKEN: \"{literal}\"\n    UPSTREAM: {{valueFrom: {{env: LLORCH_E2E_VLLM_KEY}}}}\n    \
         FROM_FILE: {{valueFrom: {{file: {}}}}}\n    LOG_LEVEL: debug\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: tiny}}\nspec: {{ref: 'file:{}', ctxMax: 4096}}\n---\n\
         apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: chat}}\nspec: {{engine: mock, model: tiny, replicas: 1}}\n",
        key_file.display(),
        d.model_path().display()
    );
    d.write_manifest("stack.yaml", &manifest);
    let s = d.wait_for("pool chat Ready", READY, |s| pool_ready(s, "chat", 1));

    // The replica got the values.
    let container = s.replicas[0].container_id.clone().unwrap();
    let env = d.runtime.run(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &container,
    ]);
    for (name, value) in [
        ("HF_TOKEN", &literal),
        ("UPSTREAM", &from_env),
        ("FROM_FILE", &from_file),
    ] {
        assert!(
            env.lines().any(|l| l == format!("{name}={value}")),
            "{name} in the container:\n{env}"
        );
    }

    // Everything the daemon and orchctl show.
    let mut shown = Vec::new();
    let http = reqwest::blocking::Client::new();
    for path in [
        "/v2/snapshot",
        "/v2/engines",
        "/v2/engines/mock",
        "/v2/pools",
        "/v2/pools/chat",
        "/v2/replicas",
        "/v2/events?limit=1000",
        "/v2/meta/capabilities",
        "/metrics",
        "/v1/models",
    ] {
        let body = http.get(format!("{}{path}", d.url)).send().unwrap().text().unwrap();
        shown.push((path.to_string(), body));
    }
    for args in [
        vec!["describe", "engine/mock"],
        vec!["describe", "pool/chat"],
        vec!["plan", "pool/chat"],
        vec!["get", "engines", "-o", "json"],
        vec!["events", "--limit", "1000"],
    ] {
        let out = d.orchctl(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        shown.push((format!("orchctl {}", args.join(" ")), text));
    }
    let describe = &shown
        .iter()
        .find(|(w, _)| w == "orchctl describe engine/mock")
        .unwrap()
        .1;
    assert!(
        describe.contains("<redacted>"),
        "describe shows that a value is hidden:\n{describe}"
    );
    assert!(
        describe.contains("LLORCH_E2E_VLLM_KEY"),
        "describe names where a value comes from:\n{describe}"
    );
    let plan = &shown.iter().find(|(w, _)| w == "orchctl plan pool/chat").unwrap().1;
    assert!(
        plan.contains("HF_TOKEN=<redacted>")
            && plan.contains("UPSTREAM=<redacted>")
            && plan.contains("LOG_LEVEL=debug"),
        "plan shows the env, secrets redacted:\n{plan}"
    );
    shown.push(("daemon log".into(), d.log_until(Duration::from_secs(2), |_| false)));
    for entry in walk(&d.home.path().join("state")) {
        if let Ok(text) = std::fs::read_to_string(&entry) {
            shown.push((entry.display().to_string(), text));
        }
    }
    assert!(shown.len() > 18, "looked at {} places", shown.len());
    for (place, text) in &shown {
        for secret in [&literal, &from_env, &from_file] {
            assert!(
                !text.contains(secret.as_str()),
                "a planted secret is shown by {place}:\n{text}"
            );
        }
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { dirs.push(p) } else { files.push(p) }
        }
    }
    files
}
