//! The status page (`/ui`, issue 12 item 5) in a real headless Chromium (Debian's `chromium`,
//! driven by Playwright for Python: `e2e/python/status_page_check.py`; the venv is set up by
//! `scripts/test.sh`), against the real daemon serving the demo's Pools (`examples/`, applied
//! with `orchctl apply`) on real containers:
//! - it loads with the Pools and the simulated GPUs; after this test kills an engine container
//!   through the runtime, the page shows the crash live (no reload);
//! - the keyboard reaches the playground's Submit and Enter submits; the tokens stream into the
//!   page one DOM change after another, and the text equals a direct `/v2` stream of the same
//!   request (the mock engine is deterministic for a seed);
//! - the task then appears in the real Recent jobs list (the page refreshes it itself once the
//!   record is written), its transcript shows the same text, and Replay says `identical`;
//!   another client's task appears there without a click (the page polls the list); faked
//!   records with hostile text in every field stay text;
//! - the page's headers carry the strict CSP, and a page on another origin cannot read `/v2`;
//! - with a daemon that requires a token, the page shows the token form first, then the Pools.
//!
//! Each run saves screenshots (the page, and its Recent jobs section) under `${LLORCH_ARTIFACTS:-target/e2e-artifacts}` and prints
//! its path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
use llama_orch_e2e::python::CHROMIUM;
const TOKEN: &str = "ui-test-token-0123456789";

/// Where screenshots go: `${LLORCH_ARTIFACTS:-target/e2e-artifacts}` (absolute).
fn artifact(name: &str) -> PathBuf {
    let dir = std::env::var("LLORCH_ARTIFACTS")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    std::path::absolute(dir.join(name)).unwrap()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/status_page_check.py")
}

/// The demo's manifests (`examples/*.yaml`), with the mock engine slowed to 40 tokens/s so that
/// a stream takes long enough to be seen arriving, and the Model's file given by absolute path.
fn demo_manifests(dir: &Path) -> PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let out = dir.join("demo");
    std::fs::create_dir_all(&out).unwrap();
    for file in ["mock-pool.yaml", "tiny-model.yaml", "chat-pool.yaml"] {
        let mut text = std::fs::read_to_string(examples.join(file)).unwrap();
        if file == "mock-pool.yaml" {
            text.push_str("  env:\n    MOCK_TOKEN_RATE: \"40\"\n");
        }
        if file == "tiny-model.yaml" {
            let model = std::path::absolute(examples.join("models/tiny.gguf")).unwrap();
            text = text.replace("file:models/tiny.gguf", &format!("file:{}", model.display()));
        }
        std::fs::write(out.join(file), text).unwrap();
    }
    out
}

/// A direct `/v2` run of `request`: the text of its token frames and how many there were.
fn direct_stream(d: &Daemon, request: &Value) -> (String, usize) {
    let http = reqwest::blocking::Client::builder().no_proxy().build().unwrap();
    let admitted: Value = http
        .post(format!("{}/v2/tasks", d.url))
        .json(request)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = admitted["task_id"].as_str().unwrap();
    let body = http
        .get(format!("{}/v2/tasks/{id}/events", d.url))
        .timeout(Duration::from_secs(60))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut text = String::new();
    let mut tokens = 0;
    for frame in body.split("\n\n") {
        if frame.lines().any(|l| l == "event: token") {
            let data = frame.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let token: Value = serde_json::from_str(data).unwrap();
            text.push_str(token["t"].as_str().unwrap());
            tokens += 1;
        }
    }
    assert!(body.contains("event: end"), "the direct stream ended: {body}");
    (text, tokens)
}

fn last_json_line(stdout: &str, stderr: &str) -> Value {
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"))
}

fn status_page_follows_the_daemon_live(rt: Runtime) {
    let python = llama_orch_e2e::python::with_playwright();
    let examples = std::path::absolute(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models")).unwrap();
    let d = Daemon::start_with(rt, &format!("models:\n  fileRoots: [{}]\n", examples.display()));
    let demo = demo_manifests(d.home.path());
    let out = d.orchctl(&["apply", "-f", demo.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "orchctl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot = d.wait_for("pool chat Ready with 2 replicas", READY, |s| pool_ready(s, "chat", 2));
    let victim = snapshot
        .replicas
        .iter()
        .find(|r| r.pool == "chat" && r.index == 0)
        .unwrap();
    let (victim_id, victim_container) = (victim.id.to_string(), victim.container_id.clone().unwrap());

    let screenshot = artifact(&format!("ui-{}.png", d.runtime.name));
    let (prompt, max_tokens, seed) = ("The status page streams", 24, 7);
    let mut child = Command::new(&python)
        .arg(script())
        .args([
            "--mode",
            "live",
            "--daemon",
            &d.url,
            "--pool",
            "chat",
            "--chromium",
            CHROMIUM,
        ])
        .args(["--screenshot", screenshot.to_str().unwrap(), "--victim", &victim_id])
        .args([
            "--prompt",
            prompt,
            "--max-tokens",
            &max_tokens.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    // Up to the script's request to kill (or its report, if it failed before).
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let step = serde_json::from_str::<Value>(&line).ok();
        lines.push(line);
        if step.as_ref().is_some_and(|s| s["step"] == "kill") {
            d.runtime.run(&["kill", &victim_container]);
            writeln!(stdin, "killed {victim_container}").unwrap();
            stdin.flush().unwrap();
            break;
        }
        if step.is_some() {
            break;
        }
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = lines.concat() + &rest;
    let report = last_json_line(&stdout, &stderr);
    println!("status page screenshot: {}", screenshot.display());
    assert!(
        report.get("failed").is_none(),
        "the browser script stopped: {report:#}\n{stderr}"
    );
    assert!(output.status.success(), "{stderr}");

    // The page and its headers.
    assert_eq!(report["status"], 200, "{report}");
    let csp = report["headers"]["content-security-policy"].as_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(report["headers"]["x-content-type-options"], "nosniff");
    let errors: Vec<&Value> = report["console_errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.as_str().unwrap().starts_with("pageerror"))
        .collect();
    assert!(errors.is_empty(), "the page's scripts threw: {errors:?}");

    // The demo's Pool, two ready replicas, and the simulated GPUs, said in words.
    assert_eq!(report["pools"], json!(["chat"]), "{report}");
    assert!(report["pool_row"].as_str().unwrap().contains("2/2"), "{report}");
    assert!(report["pool_row"].as_str().unwrap().contains("Ready=True"), "{report}");
    let gpus = report["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2, "{report}");
    assert!(gpus[0].as_str().unwrap().contains("Simulated RTX 3090"), "{report}");
    assert!(gpus[0].as_str().unwrap().contains("simulated"), "{report}");
    assert!(report["gpu_note"].as_str().unwrap().contains("Simulated"), "{report}");
    assert_eq!(report["logs_shown"], true);
    assert!(report["queue_row"].as_str().unwrap().starts_with("chat"), "{report}");

    // Live: the kill showed up without a reload.
    assert_eq!(report["no_reload"], "still here", "{report}");
    let warned = report["warnings"].as_array().unwrap();
    assert!(
        warned.iter().any(|w| w["replica"] == victim_id.as_str()),
        "a Warning event about {victim_id} is in the feed: {report:#}"
    );

    // Keyboard: skip link first; Tab reaches Submit; Enter submitted.
    assert_eq!(report["first_tab"], "skip", "{report}");
    assert_eq!(report["submit_focused"], true, "{report}");

    // The playground streamed: several DOM updates with a growing count, ending at the total.
    let pg = &report["playground"];
    assert_eq!(pg["state"], "done", "{pg:#}");
    let tokens = pg["tokens"].as_u64().unwrap();
    assert!(tokens >= 3, "{pg:#}");
    let counts: Vec<u64> = pg["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    let growing: Vec<&u64> = counts.iter().filter(|&&c| c > 0).collect();
    assert!(growing.len() >= 3, "tokens arrived in at least 3 steps: {counts:?}");
    assert!(growing.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
    assert_eq!(growing.last().copied(), Some(&tokens), "{counts:?}");
    // The task's own status agrees, and a direct stream of the same request gives the same text.
    let task_id = pg["task_id"].as_str().unwrap();
    let status: Value = reqwest::blocking::get(format!("{}/v2/tasks/{task_id}", d.url))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (status["state"].as_str(), status["tokens_out"].as_u64()),
        (Some("done"), Some(tokens)),
        "{status}"
    );
    let (text, direct_tokens) = direct_stream(
        &d,
        &json!({"pool": "chat", "prompt": prompt, "max_tokens": max_tokens, "seed": seed}),
    );
    assert_eq!(direct_tokens as u64, tokens);
    assert_eq!(
        pg["text"].as_str().unwrap(),
        text,
        "the page shows exactly the streamed text"
    );

    // The real Recent jobs list showed the playground's task once its record was written (the
    // page refreshed by itself); its transcript holds the text the playground showed, the
    // record agrees through the API, and a replay of the seeded task is identical.
    let job = &report["real_job"];
    assert!(job["row"].as_str().unwrap().contains("done"), "{job:#}");
    let artifact = job["artifact"].as_str().unwrap();
    assert!(
        artifact.starts_with("sha256:"),
        "the page addresses records by id: {job:#}"
    );
    assert_eq!(
        job["text"], pg["text"],
        "the transcript shows what the playground showed"
    );
    assert!(
        job["detail"].as_str().unwrap().contains(&format!("seed {seed}")),
        "{job:#}"
    );
    let record: Value = reqwest::blocking::get(format!("{}/v2/artifacts/{artifact}", d.url))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(record["taskId"], task_id, "{record}");
    let recorded: String = record["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["event"] == "token")
        .map(|f| {
            let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
            data["t"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(recorded, text, "the record holds the streamed text");
    assert_eq!(job["verdict"], "identical", "{job:#}");
    assert!(job["verdict_text"].as_str().unwrap().contains("identical"), "{job:#}");
    assert_eq!(job["other_ended"], true, "{job:#}");
    assert!(job["other"].as_str().unwrap().starts_with("task-"), "{job:#}");
    let jobs_screenshot = job["screenshot"].as_str().unwrap();
    println!("jobs screenshot: {jobs_screenshot}");
    assert!(Path::new(jobs_screenshot).exists(), "{jobs_screenshot}");

    // Faked records with hostile text in every field (answered by the browser script in the
    // API's shapes): shown as text, never markup.
    assert!(report["records_row"].as_str().unwrap().contains("length"), "{report}");
    assert_eq!(
        report["records_text"].as_str().unwrap(),
        "Hello <img src=x onerror=\"window.__xss=1\">",
        "{report}"
    );
    let verdict = report["records_verdict"].as_str().unwrap();
    assert!(verdict.contains("different") && verdict.contains("token 2"), "{report}");
    assert!(verdict.contains("engineVersion"), "{report}");
    assert_eq!(
        report["records_injected"], 0,
        "untrusted text never becomes markup: {report}"
    );
    // Dark mode follows the system setting.
    assert_eq!(report["dark_background"], "rgb(15, 19, 24)", "{report}");

    // A page on another origin could not read /v2.
    assert!(report["cross_origin"]["error"].is_string(), "{report}");
    assert!(screenshot.exists(), "{}", screenshot.display());
}

#[test]
fn docker_status_page_follows_the_daemon_live_and_streams_the_playground() {
    status_page_follows_the_daemon_live(Runtime::docker());
}

#[test]
fn podman_status_page_follows_the_daemon_live_and_streams_the_playground() {
    status_page_follows_the_daemon_live(Runtime::podman());
}

#[test]
fn with_a_token_the_page_asks_for_it_before_showing_anything() {
    let python = llama_orch_e2e::python::with_playwright();
    let d = Daemon::start_secured(
        Runtime::docker(),
        &[("browser", TOKEN)],
        std::net::Ipv4Addr::LOCALHOST.into(),
        "",
    );
    d.write_manifest("chat.yaml", &mock_stack("chat-engine", "chat", 1, &d.model_path(), &[]));
    d.wait_for("pool chat Ready", READY, |s| pool_ready(s, "chat", 1));
    let screenshot = artifact("ui-token.png");
    let out = Command::new(&python)
        .arg(script())
        .args([
            "--mode",
            "token",
            "--daemon",
            &d.url,
            "--pool",
            "chat",
            "--chromium",
            CHROMIUM,
        ])
        .args(["--screenshot", screenshot.to_str().unwrap(), "--token", TOKEN])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = last_json_line(&String::from_utf8_lossy(&out.stdout), &stderr);
    println!("status page (token) screenshot: {}", screenshot.display());
    assert!(
        report.get("failed").is_none(),
        "the browser script stopped: {report:#}\n{stderr}"
    );
    assert_eq!(report["form_first"], true, "{report}");
    assert!(report["auth_msg"].as_str().unwrap().contains("token"), "{report}");
    assert_eq!(report["token_focused"], true, "{report}");
    assert_eq!(report["pools"], json!(["chat"]), "{report}");
    assert_eq!(report["stored"], 1, "the token is kept in sessionStorage");
    assert_eq!(report["signed_out_form"], true, "{report}");
    assert_eq!(report["stored_after_sign_out"], 0, "sign out forgets the token");
}
