//! End-to-end: stopping the daemon with open task streams, on real Docker with the mock engine.
//! The first SIGTERM stops admission and lets open streams finish within `shutdownGraceMs`,
//! then the daemon exits; a second signal, or the end of the grace, exits at once. Engine
//! containers keep running either way (the next start adopts them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use llama_orch_e2e::sse::TaskClient;
use serde_json::json;

const READY: Duration = Duration::from_secs(30);

/// A daemon with `grace_ms`, one Pool `slow` of the mock engine at 20 tokens/s.
fn start(grace_ms: u64) -> (Daemon, TaskClient) {
    let d = Daemon::start_with(Runtime::docker(), &format!("shutdownGraceMs: {grace_ms}\n"));
    let stack = mock_stack("slow-engine", "slow", 1, &d.model_path(), &["--token-rate", "20"]);
    d.write_manifest("slow.yaml", &stack);
    d.wait_for("pool Ready", READY, |s| pool_ready(s, "slow", 1));
    let c = TaskClient::new(&d.url);
    (d, c)
}

/// Submits a task of `max_tokens` and reads its stream up to its first token.
fn streaming(c: &TaskClient, max_tokens: u32) -> llama_orch_e2e::sse::EventReader {
    let a = c.submit(&json!({"pool": "slow", "prompt": "Once upon a time", "max_tokens": max_tokens}));
    assert_eq!(a.status, 202, "{:?}", a.body);
    let mut reader = c.open(a.body["task_id"].as_str().unwrap());
    loop {
        let ev = reader.next_event().expect("the stream ends only after a token");
        if ev.event == "token" {
            return reader;
        }
    }
}

#[test]
fn the_first_sigterm_stops_admission_and_lets_an_open_stream_finish_then_exits() {
    let (mut d, c) = start(10_000);
    let mut reader = streaming(&c, 30);
    let containers = d.container_ids();
    let signaled = Instant::now();
    d.signal("TERM");
    // New work is refused from now on: either the listener is closed or admission says so.
    std::thread::sleep(Duration::from_millis(200));
    let late = reqwest::blocking::Client::new()
        .post(format!("{}/v2/tasks", d.url))
        .json(&json!({"pool": "slow", "prompt": "x", "max_tokens": 1}))
        .send();
    match late {
        Err(e) => assert!(e.is_connect() || e.is_request(), "{e}"),
        Ok(r) => {
            assert_eq!(r.status().as_u16(), 503);
            assert_eq!(r.json::<serde_json::Value>().unwrap()["code"], "SHUTTING_DOWN");
        }
    }
    let mut tokens = 1;
    let last = loop {
        let ev = reader.next_event().expect("the open stream ends with end, not a cut");
        match ev.event.as_str() {
            "token" => tokens += 1,
            "end" | "error" => break ev,
            _ => {}
        }
    };
    assert_eq!(last.event, "end", "{:?}", last.data);
    assert_eq!((tokens, &last.data["tokens_out"]), (30, &json!(30)));
    let status = d
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon exits once the stream ended");
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(
        signaled.elapsed() < Duration::from_secs(9),
        "it exited when the stream ended, not at the end of the grace ({:?})",
        signaled.elapsed()
    );
    assert!(d.log().contains("shutting down"), "{}", d.log());
    assert_eq!(d.container_ids(), containers, "engine containers keep running");
}

#[test]
fn a_second_signal_exits_at_once_and_the_grace_bounds_the_wait() {
    // A 50 s stream against a 60 s grace: only the second signal ends the wait.
    let (mut d, c) = start(60_000);
    let _reader = streaming(&c, 1_000);
    d.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.wait_exit(Duration::ZERO).is_none(), "still waiting for the stream");
    let second = Instant::now();
    d.signal("INT");
    let status = d
        .wait_exit(Duration::from_secs(5))
        .expect("a second signal exits at once");
    assert!(status.success(), "{status}");
    assert!(second.elapsed() < Duration::from_secs(3), "{:?}", second.elapsed());
    assert!(d.log().contains("second signal"), "{}", d.log());

    // The same stream against a 1 s grace: the daemon exits when the grace is over.
    let (mut d, c) = start(1_000);
    let _reader = streaming(&c, 1_000);
    let signaled = Instant::now();
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(8)).expect("the grace bounds the wait");
    assert!(status.success(), "{status}");
    let waited = signaled.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "exited after {waited:?} with a 1 s grace"
    );
    assert!(d.log().contains("grace period over"), "{}", d.log());
}
