//! A real headless Chromium (Debian's `chromium`, driven by Playwright for Python) tries what
//! a hostile web page could do to a daemon on its default loopback bind (issue 9, item 2):
//! cross-site submits (text/plain without CORS, and JSON with), a drain and a reload, writing
//! and deleting manifests through the write API, reading the snapshot, and a DNS-rebinding
//! page. None takes effect. A page on the one origin the
//! config allows submits a task, so the refusals are the daemon's, not the browser's.
//! `e2e/python/cross_site_check.py` drives the browser; the venv is set up by `scripts/test.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use serde_json::Value;

const READY: Duration = Duration::from_secs(30);

use llama_orch_e2e::python::CHROMIUM;

fn tasks(d: &Daemon) -> Vec<Value> {
    reqwest::blocking::get(format!("{}/v2/tasks", d.url))
        .unwrap()
        .json::<Vec<Value>>()
        .unwrap()
}

#[test]
fn a_hostile_page_in_a_real_browser_cannot_drive_the_daemon() {
    let python = llama_orch_e2e::python::with_playwright();
    let d = Daemon::start_with(
        Runtime::docker(),
        "cors:\n  allowedOrigins: [\"http://trusted.test\"]\n",
    );
    d.write_manifest("chat.yaml", &mock_stack("chat-engine", "chat", 1, &d.model_path(), &[]));
    d.wait_for("pool chat Ready", READY, |s| pool_ready(s, "chat", 1));
    let containers = d.container_ids();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/cross_site_check.py");
    let out = Command::new(&python)
        .arg(script)
        .args(["--daemon", &d.url, "--pool", "chat", "--chromium", CHROMIUM])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser script failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });

    // Requests that need CORS fail in the browser: the preflight or the response is refused.
    let attacker = &report["attacker"];
    for name in ["submit_json_cors", "apply_manifest_cors", "read_snapshot_cors"] {
        assert!(attacker[name]["error"].is_string(), "{name}: {attacker}");
    }
    // The rebinding page's own origin is refused by its Host, navigation included.
    assert_eq!(report["rebinding_navigation"], 403, "{report}");
    for name in ["read_snapshot", "submit_json", "apply_manifest"] {
        assert_eq!(report["rebinding"][name]["status"], 403, "{name}: {report}");
        assert!(
            report["rebinding"][name]["body"]
                .as_str()
                .unwrap()
                .contains("FORBIDDEN"),
            "{report}"
        );
    }
    // The allowed origin's submit went through: the browser did reach the daemon.
    assert_eq!(report["trusted"]["status"], 202, "{report}");
    let trusted_task = report["trusted"]["body"]["task_id"].as_str().unwrap().to_string();

    // Nothing the hostile pages sent took effect.
    let ids: Vec<String> = tasks(&d)
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [trusted_task], "only the allowed origin's task exists");
    let health: Value = reqwest::blocking::get(format!("{}/v2/pools/chat/health", d.url))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["draining"], false, "{health}");
    assert_eq!(d.container_ids(), containers, "no reload replaced the replica");
    let manifests: Vec<String> = std::fs::read_dir(d.manifests_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(manifests, ["chat.yaml"], "no manifest was written or deleted");
    let log = d.log_until(Duration::from_secs(5), |l| {
        l.contains("request refused at the front door")
    });
    assert!(log.contains("request refused at the front door"), "{log}");
}
