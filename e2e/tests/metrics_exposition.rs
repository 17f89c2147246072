//! End-to-end: the daemon's `/metrics` is valid Prometheus exposition, as Prometheus's own
//! `promtool check metrics` judges it (its parser and its lints), after every kind of task
//! traffic has created the data plane's series: tasks through the native API and through
//! `/v1/chat/completions` (streamed and not), a 429 from a full queue, a cancel and invalid
//! requests, next to the snapshot's series (pools, simulated GPUs, GPU placements).
//!
//! It also holds the scrape to what the rest of the system promises: each replica's
//! `kv_cache_usage_ratio` read from its engine (above 0 while a slot works, 0 to 1 always),
//! `llorch_build_info`, the `process_*` series, and every metric that the shipped Grafana
//! dashboard and alert rules (`deploy/`) query, so neither can rot.
//!
//! `promtool` comes from Debian's `prometheus` package (`scripts/install-promtool.sh`, run by
//! `scripts/test.sh`, which exports `LLORCH_PROMTOOL`); without it the test fails with the
//! command to run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready, pool_status};
use llama_orch_e2e::monitoring::{
    ALERTS, DASHBOARD, PROMETHEUS_MADE, dashboard_exprs, exposed_names, metric_names, promtool, repo_file, rule_exprs,
};
use llama_orch_e2e::sse::{TaskClient, tokens};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(30);
/// How long a KV-cache reading may take to reach the scrape: the prober reads every 5 s, the
/// next reconcile pass (2 s in these daemons) publishes it.
const KV_READING: Duration = Duration::from_secs(30);

/// `promtool check metrics` with `scrape` on its stdin.
fn check_metrics(promtool: &PathBuf, scrape: &str) -> Output {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .expect("write the scrape to promtool");
    child.wait_with_output().expect("wait for promtool")
}

/// A mock-engine Pool of one replica with `slots` slots and `queue`.
fn pool(d: &Daemon, name: &str, slots: u32, queue: &str, args: &[&str]) -> String {
    mock_stack(&format!("{name}-engine"), name, 1, &d.model_path(), args).replace(
        "slotsPerReplica: 2",
        &format!("slotsPerReplica: {slots}\n  queue: {queue}"),
    )
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `POST <daemon>/v1/chat/completions`: status and body text.
fn chat(d: &Daemon, body: &Value) -> (u16, String) {
    let r = http()
        .post(format!("{}/v1/chat/completions", d.url))
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn scrape(d: &Daemon) -> String {
    let r = http().get(format!("{}/metrics", d.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET /metrics");
    r.text().unwrap()
}

/// The value of the series written exactly `series` (name and labels) in `scrape`.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Tasks through the native API and `/v1`, streamed and not; returns the tokens they streamed.
fn run_tasks(d: &Daemon, c: &TaskClient) -> u64 {
    let a = c.submit(&json!({"pool": "chat", "prompt": "Once upon a time", "max_tokens": 8, "seed": 7}));
    assert_eq!(a.status, 202, "{:?}", a.body);
    let events = c.events(a.body["task_id"].as_str().unwrap());
    assert_eq!(events.last().unwrap().event, "end", "{events:?}");
    assert_eq!(tokens(&events).len(), 8, "{events:?}");

    let body = |stream: bool| {
        json!({"model": "chat", "messages": [{"role": "user", "content": "Tell me a story."}],
               "max_tokens": 6, "seed": 3, "stream": stream})
    };
    let (status, whole) = chat(d, &body(false));
    assert_eq!(status, 200, "{whole}");
    let whole: Value = serde_json::from_str(&whole).unwrap();
    let completion = whole["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(completion > 0, "{whole}");
    let (status, streamed) = chat(d, &body(true));
    assert_eq!(status, 200, "{streamed}");
    assert!(streamed.trim_end().ends_with("data: [DONE]"), "{streamed}");
    8 + completion
}

/// Fills pool `tight` (one slot, a queue of one, a slow engine) until a submit gets 429, waits
/// until its busy slot shows in `kv_cache_usage_ratio`, then cancels every admitted task.
fn overload_and_cancel(d: &Daemon, c: &TaskClient) {
    let body = json!({"pool": "tight", "prompt": "Once upon a time", "max_tokens": 1000});
    let mut admitted = Vec::new();
    let refused = (0..6).find_map(|_| {
        let a = c.submit(&body);
        match a.status {
            202 => {
                admitted.push(a.body["task_id"].as_str().unwrap().to_string());
                None
            }
            429 => Some(a),
            other => panic!("submit to the full pool: {other} {:?}", a.body),
        }
    });
    let refused = refused.expect("a 429 from a pool with one slot and a queue of one");
    assert_eq!(refused.body["code"], "ADMISSION_REJECT", "{:?}", refused.body);
    assert!(!admitted.is_empty(), "the first submit is admitted");
    // The engine's slot holds the prompt and the tokens generated so far: a share above 0.
    let series = r#"kv_cache_usage_ratio{pool="tight",replica="tight-0"}"#;
    let deadline = Instant::now() + KV_READING;
    loop {
        let text = scrape(d);
        match value(&text, series) {
            Some(v) if v > 0.0 => {
                assert!(v <= 1.0, "{series} {v}");
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "{series} is {other:?} while a slot generates, after {KV_READING:?}:\n{text}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for id in &admitted {
        let ack = c.cancel(id);
        assert_eq!(ack["state"], "canceled", "{id}: {ack}");
    }
}

/// Invalid requests on both APIs: refused with 400 `INVALID_PARAMS` before anything is queued.
fn invalid_requests(d: &Daemon, c: &TaskClient) {
    let a = c.submit(&json!({"pool": "chat", "prompt": "Once upon a time", "max_tokens": 0}));
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(a.body["code"], "INVALID_PARAMS", "{:?}", a.body);
    let (status, body) = chat(d, &json!({"model": "chat", "messages": []}));
    assert_eq!(status, 400, "{body}");
}

/// Series the traffic above must have created (name and labels as the scrape spells them).
const EXPECTED: &[&str] = &[
    "tasks_enqueued_total{pool=\"chat\",priority=\"interactive\"}",
    "tasks_started_total{pool=\"chat\",priority=\"interactive\"}",
    "tasks_canceled_total{pool=\"tight\",priority=\"interactive\"}",
    "tasks_rejected_total{code=\"ADMISSION_REJECT\"}",
    "tasks_rejected_total{code=\"INVALID_PARAMS\"}",
    "admission_backpressure_events_total{pool=\"tight\",policy=\"reject\"}",
    "placement_decisions_total{pool=\"chat\",replica=\"chat-0\"}",
    "tokens_out_total{pool=\"chat\"}",
    "latency_first_token_seconds_count{pool=\"chat\"}",
    "latency_decode_seconds_count{pool=\"chat\"}",
    "replica_placements_total{pool=\"chat\",outcome=\"placed\"}",
    "kv_cache_usage_ratio{pool=\"chat\",replica=\"chat-0\"}",
    "gpu_utilization{gpu=\"0\",simulated=\"true\"}",
    "llorch_gpu_problems{gpu=\"0\",simulated=\"true\"}",
    "llorch_pool_asleep{pool=\"sleepy\"}",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
];

/// A Pool sized by scaling, asleep (no replica): its scaling series exist from the start.
fn sleepy_pool(d: &Daemon) -> String {
    mock_stack("sleepy-engine", "sleepy", 1, &d.model_path(), &[]).replace(
        "  replicas: 1\n",
        "  scaling: {minReplicas: 0, maxReplicas: 1, idleTimeout: 1h}\n",
    )
}

/// Checks the values the new series promise.
fn check_values(text: &str) {
    let kv = value(text, EXPECTED[11]).unwrap();
    assert!((0.0..=1.0).contains(&kv), "kv_cache_usage_ratio of chat-0: {kv}");
    assert_eq!(value(text, EXPECTED[12]), Some(0.0), "a simulated GPU computes nothing");
    assert_eq!(value(text, EXPECTED[13]), Some(0.0), "a simulated GPU has no problems");
    let build = text
        .lines()
        .find(|l| l.starts_with("llorch_build_info{version=\""))
        .unwrap_or_else(|| panic!("no llorch_build_info in:\n{text}"));
    assert!(build.ends_with("\"} 1"), "{build}");
    assert!(value(text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(value(text, "process_open_fds").unwrap() >= 3.0);
    let start = value(text, "process_start_time_seconds").unwrap();
    assert!(start > 1.7e9, "process_start_time_seconds {start}");
}

/// Every metric the dashboard and the alert rules query is in `text` (bar `up`, which
/// Prometheus makes itself).
fn check_dashboard_and_rules_are_served(text: &str) {
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(repo_file(DASHBOARD)).unwrap()).unwrap();
    let rules = rule_exprs(&std::fs::read_to_string(repo_file(ALERTS)).unwrap()).unwrap();
    let wanted: BTreeSet<String> = dashboard_exprs(&dashboard)
        .iter()
        .chain(&rules)
        .flat_map(|e| metric_names(e))
        .filter(|n| !PROMETHEUS_MADE.contains(&n.as_str()))
        .collect();
    let served = exposed_names(text);
    let missing: Vec<&String> = wanted.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "{DASHBOARD} or {ALERTS} query metrics the daemon does not serve: {missing:?}\nserved: {served:?}"
    );
    assert!(
        wanted.len() > 25,
        "too few metrics found in the dashboard and rules: {wanted:?}"
    );
}

#[test]
fn the_metrics_scrape_after_every_kind_of_task_traffic_passes_promtool_check_metrics() {
    let promtool = promtool();
    let d = Daemon::start(Runtime::docker());
    d.write_manifest(
        "chat.yaml",
        &pool(&d, "chat", 2, "{capacity: 8}", &["--token-rate", "0"]),
    );
    d.write_manifest(
        "tight.yaml",
        &pool(
            &d,
            "tight",
            1,
            "{capacity: 1, fullPolicy: reject}",
            &["--token-rate", "5"],
        ),
    );
    d.write_manifest("sleepy.yaml", &sleepy_pool(&d));
    d.wait_for("pools chat and tight Ready, sleepy asleep", READY, |s| {
        pool_ready(s, "chat", 1)
            && pool_ready(s, "tight", 1)
            && pool_status(s, "sleepy").is_some_and(|st| st.scaling.as_ref().is_some_and(|sc| sc.asleep))
    });
    let c = TaskClient::new(&d.url);
    let streamed = run_tasks(&d, &c);
    overload_and_cancel(&d, &c);
    invalid_requests(&d, &c);

    // Counters are bumped as the tasks end; poll until every expected series is there.
    let deadline = Instant::now() + KV_READING;
    let text = loop {
        let text = scrape(&d);
        let missing: Vec<&&str> = EXPECTED.iter().filter(|s| value(&text, s).is_none()).collect();
        let tokens_out = value(&text, EXPECTED[7]).unwrap_or(0.0);
        if missing.is_empty() && tokens_out >= streamed as f64 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "missing from /metrics: {missing:?} (tokens_out {tokens_out}, streamed {streamed}):\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    check_values(&text);
    check_dashboard_and_rules_are_served(&text);

    let out = check_metrics(&promtool, &text);
    assert!(
        out.status.success(),
        "`promtool check metrics` exited with {} (1: the scrape does not parse, 3: lint problems).\n\
         promtool's stdout:\n{}\npromtool's stderr:\n{}\nthe scrape:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
