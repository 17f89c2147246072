//! The secure front door against a real daemon on real Docker (issue 9, items 1 and 2): a
//! token-guarded API on this machine's LAN address, reached from a second home by `orchctl`
//! and by the official OpenAI SDK with its API key; cross-site and DNS-rebinding requests
//! refused before they take effect; a LAN bind without a token refused at start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, bin, mock_stack, pool_ready};
use llama_orch_e2e::lan::{fresh_token, lan_ip};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(30);

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[test]
fn a_lan_bind_serves_only_token_holders_and_refuses_cross_site_requests() {
    let (token, other) = (fresh_token(), fresh_token());
    let d = Daemon::start_secured(Runtime::docker(), &[("e2e", &token), ("other", &other)], lan_ip(), "");
    d.write_manifest("chat.yaml", &mock_stack("chat-engine", "chat", 1, &d.model_path(), &[]));
    d.wait_for("pool chat Ready", READY, |s| pool_ready(s, "chat", 1));
    let http = client();
    let url = &d.url;

    // Item 1: tokens. /healthz is open; everything else needs the token.
    assert_eq!(http.get(format!("{url}/healthz")).send().unwrap().status(), 200);
    for path in ["/v2/snapshot", "/v2/pools", "/metrics", "/readyz", "/v1/models"] {
        let r = http.get(format!("{url}{path}")).send().unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        assert!(
            r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"),
            "{path}"
        );
        let wrong = http
            .get(format!("{url}{path}"))
            .bearer_auth("0".repeat(40))
            .send()
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
        let right = http.get(format!("{url}{path}")).bearer_auth(&token).send().unwrap();
        assert_eq!(right.status(), 200, "{path} with the token");
    }

    // A task over the LAN, with the token; its log lines name the token, never show it.
    let submitted: Value = http
        .post(format!("{url}/v2/tasks"))
        .bearer_auth(&token)
        .json(&json!({"pool": "chat", "prompt": "Once upon a time", "max_tokens": 4}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = submitted["task_id"].as_str().unwrap_or_else(|| panic!("{submitted}"));
    let events = http
        .get(format!("{url}/v2/tasks/{id}/events"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(events.contains("event: end"), "{events}");
    let log = d.log_until(Duration::from_secs(5), |l| l.contains("task ended"));
    assert!(
        log.contains(r#""identity":"token:e2e""#),
        "task lines carry the identity:\n{log}"
    );
    assert!(!log.contains(&token), "the token reached the log");

    // Item 8: the task belongs to its submitter; another token holder gets 403 and no list entry.
    for (method, path) in [
        ("GET", format!("/v2/tasks/{id}")),
        ("GET", format!("/v2/tasks/{id}/events")),
        ("POST", format!("/v2/tasks/{id}/cancel")),
    ] {
        let r = http
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .bearer_auth(&other)
            .header("content-type", "application/json")
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path} by another identity");
    }
    assert_eq!(
        tasks_listed(&http, url, &other),
        0,
        "another identity lists none of e2e's tasks"
    );
    let mine = http
        .get(format!("{url}/v2/tasks/{id}"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(mine.status(), 200, "the submitter still reads its task");

    // Item 2: browser safety, with the token (a page cannot have it, but even then).
    let tasks_before = tasks_listed(&http, url, &token);
    let cross_site = http
        .post(format!("{url}/v2/tasks"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .header("origin", "http://evil.example")
        .body(r#"{"pool":"chat","prompt":"hi","max_tokens":4}"#)
        .send()
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let drain = http
        .post(format!("{url}/v2/pools/chat/drain"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("origin", "http://evil.example")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(drain.status(), 403);
    let plain = http
        .post(format!("{url}/v2/tasks"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(r#"{"pool":"chat","prompt":"hi","max_tokens":4}"#)
        .send()
        .unwrap();
    assert_eq!(plain.status(), 415);
    let rebinding = http
        .get(format!("{url}/v2/snapshot"))
        .bearer_auth(&token)
        .header("host", "evil.example")
        .send()
        .unwrap();
    assert_eq!(rebinding.status(), 403);
    assert_eq!(
        tasks_listed(&http, url, &token),
        tasks_before,
        "no refused request made a task"
    );
    let health: Value = http
        .get(format!("{url}/v2/pools/chat/health"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["draining"], false, "the refused drain did not drain: {health}");

    // orchctl from another home (no config, no manifests) over the LAN.
    let elsewhere = tempfile::tempdir().unwrap();
    let orchctl = |token: Option<&str>| {
        let mut cmd = Command::new(bin("orchctl"));
        cmd.env("LLAMA_ORCH_HOME", elsewhere.path())
            .env_remove("LLAMA_ORCH_URL")
            .env_remove("LLAMA_ORCH_TOKEN")
            .args(["--server", url, "get", "pools"]);
        if let Some(token) = token {
            cmd.args(["--token", token]);
        }
        cmd.output().unwrap()
    };
    let ok = orchctl(Some(&token));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("chat"));
    let refused = orchctl(None);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("bearer token") && err.contains("--token"), "{err}");

    // The official OpenAI SDK: its api_key is the bearer token.
    let python = llama_orch_e2e::python::with_openai();
    let script = r#"
import json, sys, openai
base, key = sys.argv[1], sys.argv[2]
good = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
text = "".join(c.choices[0].text for c in good.completions.create(model="chat", prompt="Once", max_tokens=4, stream=True))
try:
    openai.OpenAI(base_url=base, api_key="0" * 40, max_retries=0).models.list()
    refused = None
except openai.AuthenticationError as e:
    refused = {"status": e.status_code, "code": e.code}
print(json.dumps({"text": text, "refused": refused}))
"#;
    let out = Command::new(python)
        .args(["-c", script, &format!("{url}/v1"), &token])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["text"].as_str().unwrap().is_empty(), "{report}");
    assert_eq!(report["refused"], json!({"status": 401, "code": "UNAUTHORIZED"}));
}

fn tasks_listed(http: &Client, url: &str, token: &str) -> usize {
    let list: Value = http
        .get(format!("{url}/v2/tasks"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    list.as_array().map_or_else(|| panic!("{list}"), Vec::len)
}

/// `llama-orchd` with `config` in a fresh home: its exit status and stderr, once it exits
/// (it must, within 30 s).
fn start_and_exit(config: &str, setup: impl FnOnce(&std::path::Path)) -> (Option<i32>, String) {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.yaml"), config).unwrap();
    setup(home.path());
    let mut child = Command::new(bin("llama-orchd"))
        .env("LLAMA_ORCH_HOME", home.path())
        .env_remove("LLAMA_ORCH_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("llama-orchd kept running with {config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_lan_bind_without_a_token_or_with_a_readable_token_file_does_not_start() {
    let bind = format!(
        "bind: {}:0\ngpus:\n  simulate:\n    - {{name: Simulated GPU, vramBytes: 25769803776}}\n",
        lan_ip()
    );
    let (code, err) = start_and_exit(&bind, |_| {});
    assert_eq!(code, Some(2), "{err}");
    for hint in ["field `bind`", "auth.tokenFile", "LLAMA_ORCH_TOKEN", "ssh -L"] {
        assert!(err.contains(hint), "{hint} in:\n{err}");
    }

    let token = fresh_token();
    let (code, err) = start_and_exit(&format!("{bind}auth:\n  tokenFile: tokens.yaml\n"), |home| {
        std::fs::write(home.join("tokens.yaml"), format!("laptop: {token}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.join("tokens.yaml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(&token), "the token reached stderr");
}
