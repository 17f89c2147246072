//! `orchctl run`, `tasks` and `cancel` against the real API server (router, data plane,
//! engine adapter) on port 0, dispatching to a mock engine that runs in-process on a socket of
//! its own. The same runs check what the data plane records: `/metrics` series, the JSON log
//! lines of each task (captured from a global JSON subscriber), and the correlation id a task
//! carries from its submit to its stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{ENGINE, Home, MODEL};
use llorch_api::engine::EngineClients;
use llorch_api::{AppState, NoEvents, NoLogs};
use llorch_manifests::api::{GpuView, ObjectView, Snapshot};
use llorch_manifests::parse_file;
use llorch_manifests::status::{ObjectStatus, ReplicaPhase, ReplicaStatus};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

// ---- captured logs ------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every JSON log line of this test binary so far (tests run in parallel: filter by job).
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

fn log_lines(job_id: &str) -> Vec<Value> {
    let bytes = logs().0.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["job_id"] == job_id)
        .collect()
}

fn log_line(job_id: &str, message: &str) -> Value {
    log_lines(job_id)
        .into_iter()
        .find(|v| v["message"] == message)
        .unwrap_or_else(|| panic!("no `{message}` line for {job_id}: {:?}", log_lines(job_id)))
}

// ---- the mock engine and the server ---------------------------------------------------------

/// A mock engine "process": its own thread and runtime, so an injected crash closes its sockets.
struct Mock {
    base: String,
    shutdown: CancellationToken,
    _model: tempfile::NamedTempFile,
}

impl Mock {
    async fn start(tweak: impl FnOnce(&mut mock_engine::Config)) -> Mock {
        let model = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
        std::fs::write(model.path(), mock_engine::model_file::fixture_model()).unwrap();
        let mut config = mock_engine::Config::for_model(model.path());
        config.parallel = 2;
        tweak(&mut config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                mock_engine::run(config, listener, stop).await
            });
        });
        let http = reqwest::Client::new();
        for _ in 0..500 {
            if let Ok(r) = http.get(format!("{base}/health")).send().await
                && r.status() == 200
            {
                return Mock {
                    base,
                    shutdown,
                    _model: model,
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the mock engine at {base} never became healthy");
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn view_of(text: &str) -> ObjectView {
    let located = parse_file("/m/x.yaml", text.as_bytes()).unwrap().remove(0);
    let object = located.object.object_ref();
    ObjectView {
        object: object.clone(),
        source: None,
        manifest: Some(located.object.to_json()),
        status: ObjectStatus::new(object),
    }
}

fn snapshot(endpoint: &str, slots: u32, queue: &str) -> Snapshot {
    let pool = format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata:\n  name: chat\nspec:\n  engine: mock\n  \
         model: tiny\n  replicas: 1\n  slotsPerReplica: {slots}\n  ctxSize: 2048\n  queue: {queue}\n"
    );
    let mut s = Snapshot {
        synced: true,
        instance: "default".into(),
        objects: vec![view_of(ENGINE), view_of(MODEL), view_of(&pool)],
        replicas: vec![ReplicaStatus {
            id: llorch_manifests::ReplicaId::new("chat", 0),
            pool: "chat".into(),
            index: 0,
            phase: ReplicaPhase::Ready,
            container_id: Some("0123456789abcdef".into()),
            container_name: Some("llorch-chat-0".into()),
            endpoint: Some(llorch_manifests::Endpoint::external(endpoint)),
            gpus: vec![0],
            gpus_simulated: true,
            engine_version: "0.1.0".into(),
            spec_hash: "abc".into(),
            restarts: 0,
            ready_since: None,
            kv_cache_usage_ratio: None,
        }],
        gpus: vec![GpuView {
            index: 0,
            uuid: "SIM-GPU-0".into(),
            name: "Simulated RTX 3090".into(),
            total_bytes: 24 << 30,
            used_bytes: 0,
            free_bytes: 24 << 30,
            utilization_pct: None,
            simulated: true,
            processes: Vec::new(),
            process_listing: Default::default(),
            errors: Vec::new(),
        }],
        gpus_simulated: true,
        ..Snapshot::default()
    };
    s.serving = llorch_manifests::serving::from_objects(&s);
    s
}

/// The API server with a data plane, one pool `chat` of one replica on `mock`.
struct Stack {
    url: String,
    home: Home,
    http: reqwest::Client,
    _publish: watch::Sender<Arc<Snapshot>>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _mock: Mock,
}

impl Stack {
    async fn start(mock: Mock, slots: u32, queue: &str) -> Stack {
        logs();
        let (publish, rx) = watch::channel(Arc::new(snapshot(&mock.base, slots, queue)));
        let state = AppState::new(rx, Arc::new(NoEvents), Arc::new(NoLogs)).with_data_plane(EngineClients::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(llorch_api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Stack {
            home: Home::new(&url),
            url,
            http: reqwest::Client::new(),
            _publish: publish,
            _stop: stop,
            _mock: mock,
        }
    }

    async fn submit(&self, body: Value) -> String {
        let r = self
            .http
            .post(format!("{}/v2/tasks", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()["task_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn status(&self, id: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/v2/tasks/{id}", self.url))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    async fn wait_state(&self, id: &str, state: &str) {
        for _ in 0..500 {
            if self.status(id).await["state"] == state {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never became {state}: {}", self.status(id).await);
    }

    async fn metrics(&self) -> String {
        let r = self.http.get(format!("{}/metrics", self.url)).send().await.unwrap();
        r.text().await.unwrap()
    }

    async fn assert_metrics(&self, lines: &[&str]) {
        let text = self.metrics().await;
        for line in lines {
            assert!(
                text.lines().any(|l| l == *line),
                "missing `{line}` in /metrics:\n{text}"
            );
        }
    }
}

/// The task id in `done: …, task <id>` or `interrupted: task <id> …`.
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

// ---- tests ----------------------------------------------------------------------------------

#[tokio::test]
async fn run_streams_the_tokens_then_a_summary_and_the_task_shows_in_metrics_and_logs() {
    let s = Stack::start(Mock::start(|_| {}).await, 1, "{capacity: 4}").await;
    let args = ["run", "chat", "Once upon a time", "--max-tokens", "8", "--seed", "7"];
    let first = s.home.run(&args).await;
    assert_eq!(first.code, 0, "{}", first.err);
    assert!(first.out.len() > 1 && first.out.ends_with('\n'), "{:?}", first.out);
    assert!(first.err.contains("done: 8 tokens, decode "), "{}", first.err);
    let again = s.home.run(&args).await;
    assert_eq!(again.out, first.out, "same prompt, parameters and seed: same tokens");

    s.assert_metrics(&[
        r#"tasks_enqueued_total{pool="chat",priority="interactive"} 2"#,
        r#"tasks_started_total{pool="chat",priority="interactive"} 2"#,
        r#"tokens_in_total{pool="chat"} 8"#,
        r#"tokens_out_total{pool="chat"} 16"#,
        r#"queue_depth{pool="chat",priority="interactive"} 0"#,
        r#"queue_depth{pool="chat",priority="batch"} 0"#,
        r#"latency_first_token_seconds_count{pool="chat"} 2"#,
        r#"latency_decode_seconds_count{pool="chat"} 2"#,
        r#"placement_decisions_total{pool="chat",replica="chat-0"} 2"#,
        "llorch_snapshot_synced 1",
    ])
    .await;

    // A client that read `end` and left finds its task done, not canceled by its disconnect.
    let id = task_id_in(&first.err);
    assert_eq!(s.status(&id).await["state"], "done");
    assert!(!s.metrics().await.contains("tasks_canceled_total"));

    // ORCH-3027: a line per step, each with the task's identity, place and a human sentence.
    let admitted = log_line(&id, "task admitted");
    for field in [
        "correlation_id",
        "queue_position",
        "predicted_start_ms",
        "tokens_in",
        "human",
    ] {
        assert!(!admitted[field].is_null(), "admission lacks {field}: {admitted}");
    }
    assert_eq!(
        (&admitted["pool_id"], &admitted["engine"], &admitted["engine_version"]),
        (&json!("chat"), &json!("mock"), &json!("0.1.0"))
    );
    assert_eq!(log_line(&id, "task placed")["replica_id"], "chat-0");
    assert!(log_line(&id, "task stream started")["first_token_ms"].is_u64());
    let ended = log_line(&id, "task ended");
    assert_eq!(
        (&ended["tokens_out"], &ended["replica_id"]),
        (&json!(8), &json!("chat-0"))
    );
    assert!(ended["decode_time_ms"].is_u64(), "{ended}");
    assert!(ended["human"].as_str().unwrap().contains("8 tokens"), "{ended}");
    let correlation = &admitted["correlation_id"];
    assert!(
        log_lines(&id).iter().all(|l| &l["correlation_id"] == correlation),
        "one correlation id for the whole task: {:?}",
        log_lines(&id)
    );
}

#[tokio::test]
async fn a_full_queue_exits_3_with_the_code_message_and_retry_advice() {
    let mock = Mock::start(|c| c.token_interval = Some(Duration::from_millis(50))).await;
    let s = Stack::start(mock, 1, "{capacity: 1, fullPolicy: reject}").await;
    let running = s
        .submit(json!({"pool": "chat", "prompt": "a", "max_tokens": 400}))
        .await;
    s.wait_state(&running, "running").await;
    let queued = s.submit(json!({"pool": "chat", "prompt": "b", "max_tokens": 4})).await;

    let refused = s.home.run(&["run", "chat", "c", "--max-tokens", "4"]).await;
    assert_eq!(refused.code, 3, "{}", refused.err);
    assert!(
        refused
            .err
            .contains("error: ADMISSION_REJECT (HTTP 429): pool `chat`'s queue is full"),
        "{}",
        refused.err
    );
    assert!(
        refused.err.contains("hint: retriable; try again in ") && refused.err.contains("(queue policy reject)"),
        "{}",
        refused.err
    );
    assert!(refused.err.contains("[Retry-After: "), "{}", refused.err);
    assert!(refused.out.is_empty());

    // `orchctl tasks`: the running task on its replica, the queued one without.
    let table = s.home.run(&["tasks"]).await;
    assert_eq!(table.code, 0, "{}", table.err);
    assert!(table.out.starts_with("ID"), "{}", table.out);
    assert!(
        table.out.contains("STATE") && table.out.contains("REPLICA"),
        "{}",
        table.out
    );
    let row = |id: &str| table.out.lines().find(|l| l.starts_with(id)).unwrap().to_string();
    assert!(
        row(&running).contains(" running ") && row(&running).ends_with("chat-0"),
        "{}",
        table.out
    );
    assert!(
        row(&queued).contains(" queued ") && row(&queued).ends_with(" -"),
        "{}",
        table.out
    );
    let json = s.home.run(&["tasks", "-o", "json"]).await;
    let list: Vec<Value> = serde_json::from_str(&json.out).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|t| t["correlation_id"].is_string()), "{list:?}");

    // `orchctl cancel`: the state and what the client got; again: already canceled.
    let cancel = s.home.run(&["cancel", &queued]).await;
    assert_eq!(
        cancel.out,
        format!("task {queued}: canceled (was queued); tokens_streamed 0\n"),
        "{}",
        cancel.err
    );
    let again = s.home.run(&["cancel", &queued]).await;
    assert_eq!(
        again.out,
        format!("task {queued}: already canceled; tokens_streamed 0\n")
    );
    assert_eq!(s.home.run(&["cancel", &running]).await.code, 0);
    let unknown = s.home.run(&["cancel", "task-nope"]).await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.err.contains("no task `task-nope`"), "{}", unknown.err);

    s.assert_metrics(&[
        r#"tasks_rejected_total{code="ADMISSION_REJECT"} 1"#,
        r#"admission_backpressure_events_total{pool="chat",policy="reject"} 1"#,
        r#"tasks_canceled_total{pool="chat",priority="interactive"} 2"#,
    ])
    .await;
    let canceled = log_line(&queued, "task canceled");
    assert_eq!(
        (&canceled["reason"], &canceled["tokens_out"]),
        (&json!("requested"), &json!(0))
    );
}

#[tokio::test]
async fn a_refused_request_exits_1_with_the_field_named_and_no_retry() {
    let s = Stack::start(Mock::start(|_| {}).await, 1, "{capacity: 4}").await;
    let ran = s.home.run(&["run", "chat", "x", "--temperature", "9"]).await;
    assert_eq!(ran.code, 1);
    assert!(
        ran.err.contains("error: INVALID_PARAMS (HTTP 400): `temperature` 9"),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("hint: not retriable"), "{}", ran.err);
    let ran = s.home.run(&["run", "elsewhere", "x"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("POOL_UNAVAILABLE (HTTP 404)"), "{}", ran.err);
    s.assert_metrics(&[
        r#"tasks_rejected_total{code="INVALID_PARAMS"} 1"#,
        r#"tasks_rejected_total{code="POOL_UNAVAILABLE"} 1"#,
    ])
    .await;
}

#[tokio::test]
async fn an_error_event_exits_4_after_the_tokens_that_came() {
    let s = Stack::start(Mock::start(|c| c.exit_after_tokens = Some(3)).await, 1, "{capacity: 4}").await;
    let ran = s
        .home
        .run(&["run", "chat", "Once upon a time", "--max-tokens", "16"])
        .await;
    assert_eq!(ran.code, 4, "{}", ran.err);
    assert!(ran.err.contains("error: WORKER_RESET: "), "{}", ran.err);
    assert!(ran.err.contains("after 3 tokens"), "{}", ran.err);
    assert!(ran.err.contains("hint: retriable"), "{}", ran.err);
    assert!(ran.out.ends_with('\n') && ran.out.len() > 1, "{:?}", ran.out);
    s.assert_metrics(&[r#"tasks_failed_total{pool="chat",code="WORKER_RESET"} 1"#])
        .await;
}

/// Ctrl-C (an interrupt future here) while queued and while streaming: the task is canceled
/// before orchctl exits 130, and the count it prints is what the daemon streamed.
#[tokio::test]
async fn an_interrupt_cancels_the_task_and_exits_130_while_queued_or_streaming() {
    let mock = Mock::start(|c| c.token_interval = Some(Duration::from_millis(20))).await;
    let s = Stack::start(mock, 1, "{capacity: 4}").await;
    let blocker = s
        .submit(json!({"pool": "chat", "prompt": "a", "max_tokens": 1000}))
        .await;
    s.wait_state(&blocker, "running").await;

    let interrupt_after = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
    let ctx = orchctl::context::Context::with(s.home.manifests(), &s.url);
    let run = |prompt: &str| {
        use clap::Parser;
        let cli = orchctl::cli::Cli::parse_from(["orchctl", "run", "chat", prompt, "--max-tokens", "1000"]);
        match cli.command {
            orchctl::cli::Command::Run(args) => args,
            _ => unreachable!(),
        }
    };
    let go = |args: orchctl::cli::RunArgs, ms: u64| {
        let ctx = ctx.clone();
        async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut input: &[u8] = b"";
            let mut io = orchctl::Io {
                out: &mut out,
                err: &mut err,
                input: &mut input,
                err_tty: false,
            };
            let code = orchctl::run::run(&ctx, &args, &mut io, interrupt_after(ms))
                .await
                .unwrap();
            (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
        }
    };

    // Queued behind the blocker: the wait is shown, then the cancel.
    let (code, out, err) = go(run("b"), 1500).await;
    assert_eq!(code, 130, "{err}");
    assert!(out.is_empty(), "{out:?}");
    assert!(err.contains("next in line on pool chat; predicted start in ~"), "{err}");
    assert!(err.contains(" canceled after 0 tokens"), "{err}");
    let waited = task_id_in(&err);
    assert_eq!(s.status(&waited).await["state"], "canceled");

    // Streaming: tokens, then the cancel, with the count the daemon acknowledged.
    s.http
        .post(format!("{}/v2/tasks/{blocker}/cancel", s.url))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (code, out, err) = go(run("Once upon a time"), 600).await;
    assert_eq!(code, 130, "{err}");
    let id = task_id_in(&err);
    let streamed: u32 = err
        .split(" canceled after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {err}"));
    assert!(streamed > 0, "{err}");
    assert!(out.ends_with('\n') && out.len() > 1, "{out:?}");
    assert_eq!(s.status(&id).await["state"], "canceled");
    s.assert_metrics(&[r#"tasks_canceled_total{pool="chat",priority="interactive"} 3"#])
        .await;
}

/// OC-CTRL-2052: a task carries its submitter's correlation id into its stream response and
/// its logs; a client that sends its own id on a later request gets that one back.
#[tokio::test]
async fn a_task_carries_its_correlation_id_from_submit_to_stream_and_logs() {
    let s = Stack::start(Mock::start(|_| {}).await, 1, "{capacity: 4}").await;
    let submitted = s
        .http
        .post(format!("{}/v2/tasks", s.url))
        .header("x-correlation-id", "agent-7.turn-1")
        .json(&json!({"pool": "chat", "prompt": "Once upon a time", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.headers()["x-correlation-id"], "agent-7.turn-1");
    let id = submitted.json::<Value>().await.unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stream = s
        .http
        .get(format!("{}/v2/tasks/{id}/events", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["x-correlation-id"], "agent-7.turn-1");
    assert!(stream.text().await.unwrap().contains("event: end"));
    let status = s
        .http
        .get(format!("{}/v2/tasks/{id}", s.url))
        .header("x-correlation-id", "dashboard-1")
        .send()
        .await
        .unwrap();
    assert_eq!(status.headers()["x-correlation-id"], "dashboard-1");
    assert_eq!(
        status.json::<Value>().await.unwrap()["correlation_id"],
        "agent-7.turn-1"
    );
    let lines = log_lines(&id);
    assert!(lines.len() >= 4, "{lines:?}");
    assert!(
        lines.iter().all(|l| l["correlation_id"] == "agent-7.turn-1"),
        "{lines:?}"
    );
}
