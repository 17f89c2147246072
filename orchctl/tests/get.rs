//! The kubectl habits of `get` and `logs` (issue 14) against the real API server on port 0,
//! serving a snapshot the tests control: `-o wide` and `-o name` (golden outputs), `-l`
//! selectors, `-o yaml` that `apply -f -` and `diff -f -` take back, `--watch` seeing a
//! change, and `logs -f` following a fake log source.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{ENGINE, Home, MODEL, POOL};
use llorch_api::{AppState, BoxFuture, LogLines, LogSource, LogsError, NoEvents};
use llorch_manifests::api::{ObjectView, Snapshot, SourceRef};
use llorch_manifests::status::{ObjectStatus, ReplicaPhase, ReplicaStatus};
use llorch_manifests::{Endpoint, ReplicaId, hash, parse_file};
use tokio::sync::{mpsc, watch};

const BATCH: &str = "\
apiVersion: llama-orch.dev/v1alpha1
kind: Pool
metadata:
  name: batch
  labels:
    team: demo
    tier: batch
spec:
  engine: mock
  model: tiny
  replicas: 1
  gpus: [0, 1]
  gpusPerReplica: 2
  slotsPerReplica: 4
";

fn view_of(text: &str) -> ObjectView {
    let located = parse_file("/m/x.yaml", text.as_bytes()).unwrap().remove(0);
    let object = located.object.object_ref();
    let mut status = ObjectStatus::new(object.clone());
    status.generation = Some(hash::short_hash(&located.object));
    status.observed_generation = status.generation.clone();
    ObjectView {
        object: object.clone(),
        source: Some(SourceRef {
            file: format!("/m/{}-{}.yaml", object.kind.lower(), object.name),
            document: 0,
        }),
        manifest: Some(located.object.to_json()),
        status,
    }
}

fn replica(index: u32) -> ReplicaStatus {
    ReplicaStatus {
        id: ReplicaId::new("chat", index),
        pool: "chat".into(),
        index,
        phase: ReplicaPhase::Ready,
        container_id: Some(format!("{index}123456789abcdef")),
        container_name: Some(format!("llorch-chat-{index}")),
        endpoint: Some(Endpoint::loopback(41000 + index as u16)),
        gpus: vec![index],
        gpus_simulated: false,
        engine_version: "0.1.0".into(),
        spec_hash: "abc123def456".into(),
        restarts: 0,
        ready_since: None,
        kv_cache_usage_ratio: None,
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        synced: true,
        instance: "default".into(),
        objects: vec![view_of(ENGINE), view_of(MODEL), view_of(POOL), view_of(BATCH)],
        replicas: vec![replica(0), replica(1)],
        ..Snapshot::default()
    }
}

/// A log source whose followed log is whatever the test sends, ending when it drops the sender.
#[derive(Default)]
struct Logs {
    follow: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl LogSource for Logs {
    fn tail(&self, replica_id: &str, lines: usize) -> BoxFuture<'_, Result<Vec<String>, LogsError>> {
        let out = (0..lines.min(2)).map(|i| format!("{replica_id}: line {i}")).collect();
        Box::pin(async move { Ok(out) })
    }

    fn follow(&self, replica_id: &str, lines: usize) -> BoxFuture<'_, Result<LogLines, LogsError>> {
        let receiver = self.follow.lock().unwrap().take();
        let replica = replica_id.to_string();
        Box::pin(async move {
            let mut receiver = receiver.ok_or(LogsError::NotServed {
                replica: replica.clone(),
            })?;
            let tail: Vec<Result<String, LogsError>> = (0..lines).map(|i| Ok(format!("{replica}: old {i}"))).collect();
            let live = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx).map(|l| l.map(Ok)));
            Ok(Box::pin(futures_util::StreamExt::chain(futures_util::stream::iter(tail), live)) as LogLines)
        })
    }
}

struct Daemon {
    home: Home,
    publish: watch::Sender<Arc<Snapshot>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn daemon(snapshot: Snapshot, logs: Arc<Logs>) -> Daemon {
    let (publish, rx) = watch::channel(Arc::new(snapshot));
    let state = AppState::new(rx, Arc::new(NoEvents), logs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(llorch_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Daemon {
        home: Home::new(&url),
        publish,
        stop: Some(stop),
    }
}

/// stdout that the test reads while the command still runs.
struct Pipe(mpsc::UnboundedSender<Vec<u8>>);

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An orchctl run for the test to poll next to its own steps (`tokio::join!`); its stdout
/// arrives in the [`Output`] as it is written.
fn start(home: &Home, args: &[&str]) -> (impl Future<Output = (u8, String)>, Output) {
    let config = home.config().display().to_string();
    let mut argv = vec!["orchctl".to_string(), "--config".into(), config];
    argv.extend(args.iter().map(|a| a.to_string()));
    let (tx, rx) = mpsc::unbounded_channel();
    let run = async move {
        let cli = <orchctl::cli::Cli as clap::Parser>::try_parse_from(&argv).unwrap();
        let mut out = Pipe(tx);
        let mut err = Vec::new();
        let mut input: &[u8] = b"";
        let code = {
            let mut io = orchctl::Io {
                out: &mut out,
                err: &mut err,
                input: &mut input,
                err_tty: false,
            };
            orchctl::run(cli, &mut io).await
        };
        (code, String::from_utf8(err).unwrap())
    };
    (
        run,
        Output {
            rx,
            text: String::new(),
        },
    )
}

/// What a running command printed so far.
struct Output {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    text: String,
}

impl Output {
    /// Reads until the output holds `needle`, and returns everything so far.
    async fn until(&mut self, needle: &str) -> String {
        while !self.text.contains(needle) {
            let chunk = self
                .rx
                .recv()
                .await
                .unwrap_or_else(|| panic!("output ended without `{needle}`:\n{}", self.text));
            self.text.push_str(&String::from_utf8(chunk).unwrap());
        }
        self.text.clone()
    }
}

#[tokio::test]
async fn get_wide_adds_columns_per_resource() {
    let d = daemon(snapshot(), Arc::default()).await;
    let pools = d.home.run(&["get", "pools", "-o", "wide"]).await;
    assert_eq!(pools.code, 0, "{}", pools.err);
    assert_eq!(
        pools.out,
        "\
NAME    ENGINE   MODEL   READY   SCALE   IDLE   RESTARTS   STATUS    UPDATED   GPUS       SLOTS   CTX     QUEUE   LABELS
chat    mock     tiny    -       -       -      0          Pending   -         1 of all   1       2048    64      <none>
batch   mock     tiny    -       -       -      0          Pending   -         2 of 0,1   4       model   64      team=demo,tier=batch
"
    );
    let replicas = d.home.run(&["get", "replicas", "-o", "wide"]).await;
    assert_eq!(
        replicas.out,
        "\
ID       POOL   PHASE   CONTAINER      ENDPOINT                 GPUS   KV   RESTARTS   NAME            VERSION   SPEC-HASH
chat-0   chat   Ready   0123456789ab   http://127.0.0.1:41000   0      -    0          llorch-chat-0   0.1.0     abc123def456
chat-1   chat   Ready   1123456789ab   http://127.0.0.1:41001   1      -    0          llorch-chat-1   0.1.0     abc123def456
"
    );
    let engines = d.home.run(&["get", "engine/mock", "-o", "wide"]).await;
    assert!(
        engines
            .out
            .lines()
            .next()
            .unwrap()
            .ends_with("PROVISIONING   PORT   LABELS"),
        "{}",
        engines.out
    );
    assert!(engines.out.contains("container      8080   <none>"), "{}", engines.out);
}

#[tokio::test]
async fn get_name_prints_kind_slash_name_lines() {
    let d = daemon(snapshot(), Arc::default()).await;
    let pools = d.home.run(&["get", "pools", "-o", "name"]).await;
    assert_eq!((pools.code, pools.out.as_str()), (0, "pool/chat\npool/batch\n"));
    let one = d.home.run(&["get", "pool/chat", "-o", "name"]).await;
    assert_eq!(one.out, "pool/chat\n");
    let replicas = d.home.run(&["get", "replicas", "-o", "name"]).await;
    assert_eq!(replicas.out, "replica/chat-0\nreplica/chat-1\n");
}

#[tokio::test]
async fn selectors_keep_the_objects_whose_labels_match() {
    let d = daemon(snapshot(), Arc::default()).await;
    for (selector, expected) in [
        ("team=demo", "pool/batch\n"),
        ("team!=demo", "pool/chat\n"),
        ("team", "pool/batch\n"),
        ("!team", "pool/chat\n"),
        ("team=demo,tier=batch", "pool/batch\n"),
        ("team=demo,!tier", ""),
    ] {
        let ran = d.home.run(&["get", "pools", "-l", selector, "-o", "name"]).await;
        assert_eq!((ran.code, ran.out.as_str()), (0, expected), "{selector}: {}", ran.err);
    }
    let table = d.home.run(&["get", "pools", "--selector", "tier=gold"]).await;
    assert_eq!((table.code, table.out.as_str()), (0, ""));
    assert_eq!(table.err, "No pools match `tier=gold`.\n");

    let bad = d.home.run(&["get", "pools", "-l", "team in (demo)"]).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.err.starts_with("error: invalid selector `team in (demo)`:") && bad.err.contains("set-based"),
        "{}",
        bad.err
    );
    let replicas = d.home.run(&["get", "replicas", "-l", "team=demo"]).await;
    assert_eq!(replicas.code, 1);
    assert!(
        replicas.err.contains("replicas and GPUs have no labels"),
        "{}",
        replicas.err
    );
}

#[tokio::test]
async fn get_yaml_is_the_manifest_that_apply_and_diff_take_back_unchanged() {
    let d = daemon(snapshot(), Arc::default()).await;
    let input = d
        .home
        .input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
    assert_eq!(d.home.run(&["apply", "-f", &input]).await.code, 0);

    for target in [&["pool/chat"][..], &["pools", "chat"][..], &["engine/mock"][..]] {
        let mut args = vec!["get"];
        args.extend_from_slice(target);
        args.extend_from_slice(&["-o", "yaml"]);
        let got = d.home.run(&args).await;
        assert_eq!(got.code, 0, "{}", got.err);
        assert!(
            got.out.starts_with("apiVersion: llama-orch.dev/v1alpha1\nkind: "),
            "{}",
            got.out
        );
        assert!(!got.out.contains("status"), "a manifest, not the status: {}", got.out);
        let name = if target[0] == "engine/mock" {
            "engine/mock"
        } else {
            "pool/chat"
        };
        let applied = d.home.run_with_stdin(&["apply", "-f", "-"], got.out.as_bytes()).await;
        assert_eq!(
            (applied.code, applied.out.as_str()),
            (0, format!("{name} unchanged\n").as_str()),
            "{}",
            applied.err
        );
        let diffed = d.home.run_with_stdin(&["diff", "-f", "-"], got.out.as_bytes()).await;
        assert_eq!(diffed.code, 0, "{}{}", diffed.out, diffed.err);
    }

    // A list is one YAML document per object; apply takes it whole.
    let list = d.home.run(&["get", "pools", "-o", "yaml"]).await;
    assert_eq!(list.out.matches("kind: Pool").count(), 2, "{}", list.out);
    assert!(list.out.contains("\n---\n"), "{}", list.out);
    let diffed = d.home.run_with_stdin(&["diff", "-f", "-"], list.out.as_bytes()).await;
    assert_eq!(diffed.code, 1, "batch is not on disk yet: {}", diffed.out);
    assert!(diffed.out.contains("pool/chat unchanged"), "{}", diffed.out);
}

#[tokio::test]
async fn apply_refuses_a_redacted_secret_naming_the_field() {
    let d = daemon(snapshot(), Arc::default()).await;
    let redacted = format!("{ENGINE}  env:\n    HF_TOKEN: <redacted>\n    LOG_LEVEL: info\n");
    let ran = d.home.run_with_stdin(&["apply", "-f", "-"], redacted.as_bytes()).await;
    assert_eq!(ran.code, 1, "{}", ran.out);
    assert!(ran.err.contains("spec.env.HF_TOKEN"), "{}", ran.err);
    assert!(ran.err.contains("<redacted>"), "{}", ran.err);
    assert!(d.home.manifest_names().is_empty(), "nothing written");
}

#[tokio::test]
async fn watch_prints_the_table_then_a_row_for_each_change() {
    let mut d = daemon(snapshot(), Arc::default()).await;
    let (run, mut out) = start(&d.home, &["get", "pools", "-w", "-l", "team=demo"]);
    let steps = async {
        let first = out
            .until("batch   mock     tiny    -       -       -      0          Pending")
            .await;
        assert!(first.starts_with("NAME    ENGINE"), "{first}");
        assert!(!first.contains("chat"), "the selector holds: {first}");

        let mut changed = snapshot();
        let batch = changed.objects.iter_mut().find(|o| o.object.name == "batch").unwrap();
        batch.status.restarts = 7;
        // chat changes too, but the selector keeps it out.
        changed.objects[2].status.restarts = 9;
        d.publish.send_replace(Arc::new(changed));
        let text = out.until("batch   mock     tiny    -       -       -      7").await;
        assert_eq!(text.lines().count(), 3, "header, first row, changed row:\n{text}");
        assert!(!text.contains("chat"), "{text}");

        // The daemon going away ends the watch.
        drop(d.stop.take());
    };
    let ((code, err), ()) = tokio::join!(run, steps);
    assert_eq!(code, 0, "{err}");
}

#[tokio::test]
async fn get_named_and_watch_refuse_what_they_cannot_do() {
    let d = daemon(snapshot(), Arc::default()).await;
    let ran = d.home.run(&["get", "pool/chat", "chat"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("give the name once"), "{}", ran.err);
    let ran = d.home.run(&["get", "pools", "-w", "-o", "json"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("--watch prints rows"), "{}", ran.err);
}

#[tokio::test]
async fn logs_follow_prints_the_tail_then_each_new_line_until_the_log_ends() {
    let (lines, follow) = mpsc::unbounded_channel();
    let logs = Arc::new(Logs {
        follow: Mutex::new(Some(follow)),
    });
    let d = daemon(snapshot(), logs).await;
    let (run, mut out) = start(&d.home, &["logs", "chat/1", "-f", "--tail", "2"]);
    let steps = async {
        assert_eq!(out.until("old 1\n").await, "chat-1: old 0\nchat-1: old 1\n");
        lines.send("loaded model: \"tiny\"".into()).unwrap();
        assert!(
            out.until("\"tiny\"\n")
                .await
                .ends_with("old 1\nloaded model: \"tiny\"\n")
        );
        drop(lines);
    };
    let ((code, err), ()) = tokio::join!(run, steps);
    assert_eq!(code, 0, "{err}");

    // A source that cannot follow is an error before any line.
    let ran = d.home.run(&["logs", "chat/1", "-f"]).await;
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("not available from this server"), "{}", ran.err);
    let ran = d.home.run(&["logs", "chat-9", "-f"]).await;
    assert!(ran.err.contains("replica `chat-9` not found"), "{}", ran.err);
}
