//! End-to-end: `orchctl run`, `tasks` and `cancel` (the real binary) against a real daemon on
//! Docker with the mock engine image; then what the data plane recorded: every task series on
//! `/metrics` (requirements §5) and the daemon's JSON log lines of the task (ORCH-3027), tied
//! together by the correlation id. And a real SIGINT: orchctl cancels its task, exits 130.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, bin, mock_stack, pool_ready};
use llama_orch_e2e::sse::TaskClient;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(30);

fn start(name: &str, queue: &str, engine_args: &[&str]) -> Daemon {
    let d = Daemon::start(Runtime::docker());
    let manifest = mock_stack(&format!("{name}-engine"), name, 1, &d.model_path(), engine_args)
        .replace("slotsPerReplica: 2", &format!("slotsPerReplica: 1\n  queue: {queue}"));
    d.write_manifest(&format!("{name}.yaml"), &manifest);
    d.wait_for("pool Ready", READY, |s| pool_ready(s, name, 1));
    d
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The daemon's JSON log lines about `job_id`.
fn lines_of(log: &str, job_id: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["job_id"] == job_id)
        .collect()
}

/// The job's log lines, once one with `message` is among them (the daemon writes its lines
/// from a buffer every 10 ms).
fn job_log(d: &Daemon, job_id: &str, message: &str) -> Vec<Value> {
    let log = d.log_until(Duration::from_secs(5), |log| {
        lines_of(log, job_id).iter().any(|l| l["message"] == message)
    });
    lines_of(&log, job_id)
}

fn task_id_in(err: &str) -> String {
    let at = err
        .rfind("task task-")
        .unwrap_or_else(|| panic!("no task id in {err:?}"))
        + 5;
    err[at..]
        .split(|c: char| c.is_whitespace() || c == ',')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn orchctl_run_streams_a_task_and_metrics_and_logs_record_every_step() {
    let d = start("obs", "{capacity: 1, fullPolicy: reject}", &["--token-rate", "100"]);
    let c = TaskClient::new(&d.url);

    let out = d.orchctl(&["run", "obs", "Once upon a time", "--max-tokens", "8", "--seed", "7"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.ends_with('\n') && stdout.split_whitespace().count() >= 4,
        "{stdout:?}"
    );
    assert!(stderr.contains("done: 8 tokens, decode "), "{stderr}");
    let id = task_id_in(&stderr);

    // Backpressure: one task running, one queued, the next refused (exit 3) — then cancels.
    let long = json!({"pool": "obs", "prompt": "x", "max_tokens": 2000});
    let running = c.submit(&long).body["task_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.status(&running)["state"] != "running" {
        assert!(Instant::now() < deadline, "{}", c.status(&running));
        std::thread::sleep(Duration::from_millis(20));
    }
    let queued = c.submit(&long).body["task_id"].as_str().unwrap().to_string();
    let refused = d.orchctl(&["run", "obs", "y", "--max-tokens", "4"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("ADMISSION_REJECT (HTTP 429)"));
    let listed = text(&d.orchctl(&["tasks"]).stdout);
    for (task, state) in [(&id, "done"), (&running, "running"), (&queued, "queued")] {
        let row = listed
            .lines()
            .find(|l| l.starts_with(task.as_str()))
            .unwrap_or_else(|| panic!("{listed}"));
        assert!(row.contains(state), "{task} {state}: {listed}");
    }
    for task in [&queued, &running] {
        let out = text(&d.orchctl(&["cancel", task]).stdout);
        assert!(out.contains(": canceled (was "), "{out}");
    }

    // Requirements §5: the task series, by name, after tasks ran.
    let metrics = reqwest::blocking::get(format!("{}/metrics", d.url))
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "tasks_enqueued_total{",
        "tasks_started_total{",
        "tasks_canceled_total{",
        "tasks_rejected_total{code=\"ADMISSION_REJECT\"}",
        "queue_depth{pool=\"obs\",priority=\"interactive\"}",
        "latency_first_token_seconds_bucket{",
        "latency_decode_seconds_bucket{",
        "tokens_in_total{pool=\"obs\"}",
        "tokens_out_total{pool=\"obs\"}",
        "admission_backpressure_events_total{pool=\"obs\",policy=\"reject\"}",
        "placement_decisions_total{pool=\"obs\",replica=\"obs-0\"}",
    ] {
        assert!(metrics.contains(name), "`{name}` missing from /metrics:\n{metrics}");
    }

    // ORCH-3027: JSON lines at admission, placement, stream start and end, one correlation id.
    let lines = job_log(&d, &id, "task ended");
    let steps: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(
        steps,
        ["task admitted", "task placed", "task stream started", "task ended"],
        "{lines:?}"
    );
    let correlation = &lines[0]["correlation_id"];
    assert!(correlation.is_string());
    for l in &lines {
        assert_eq!(&l["correlation_id"], correlation, "{l}");
        assert!(
            l["human"].is_string() && l["engine_version"] == "0.1.0" && l["pool_id"] == "obs",
            "{l}"
        );
    }
    let end = &lines[3];
    assert_eq!((&end["tokens_out"], &end["replica_id"]), (&json!(8), &json!("obs-0")));
    assert!(end["decode_time_ms"].is_u64() && end["tokens_in"].is_u64(), "{end}");
    let canceled = job_log(&d, &running, "task canceled");
    assert!(canceled.iter().any(|l| l["message"] == "task canceled"), "{canceled:?}");
    let is_rejection =
        |v: &Value| v["message"] == "task rejected" && v["code"] == "ADMISSION_REJECT" && v["status"] == 429;
    let log = d.log_until(Duration::from_secs(5), |log| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| is_rejection(&v))
    });
    let rejected = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| is_rejection(&v));
    assert!(rejected, "a rejection line:\n{log}");
}

/// A real Ctrl-C (SIGINT to the orchctl process) mid-stream: the task is canceled before
/// orchctl exits 130, and the daemon has it as canceled with the count orchctl printed.
#[test]
fn sigint_during_orchctl_run_cancels_the_task_and_exits_130() {
    let d = start("sig", "{capacity: 4}", &["--token-rate", "20"]);
    let mut child = Command::new(bin("orchctl"))
        .env("LLAMA_ORCH_HOME", d.home.path())
        .env("LLAMA_ORCH_URL", &d.url)
        .args(["run", "sig", "Once upon a time", "--max-tokens", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    let n = stdout.read(&mut first).unwrap();
    assert!(n > 0, "tokens arrive before the interrupt");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: task "), "{err}");
    let id = task_id_in(&err);
    let c = TaskClient::new(&d.url);
    assert_eq!(c.status(&id)["state"], "canceled", "{err}");
    let streamed: u64 = err
        .split(" canceled after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {err}"));
    assert!((1..1000).contains(&streamed), "{err}");
    assert!(
        job_log(&d, &id, "task canceled")
            .iter()
            .any(|l| l["message"] == "task canceled"),
        "{}",
        d.log()
    );
}
