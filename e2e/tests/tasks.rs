//! End-to-end: the native task API (`/v2/tasks`) on real Docker with the mock engine image —
//! streaming, determinism across replicas, overload with 429s, race-free cancel, an engine
//! killed mid-stream, and interactive tasks overtaking batch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready};
use llama_orch_e2e::sse::{TaskClient, tokens};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(30);

/// A pool of the mock engine with the given shape.
fn pool(d: &Daemon, name: &str, replicas: u32, slots: u32, queue: &str, engine_args: &[&str]) -> String {
    mock_stack(&format!("{name}-engine"), name, replicas, &d.model_path(), engine_args).replace(
        "slotsPerReplica: 2",
        &format!("slotsPerReplica: {slots}\n  queue: {queue}"),
    )
}

fn start(name: &str, replicas: u32, slots: u32, queue: &str, args: &[&str]) -> (Daemon, TaskClient) {
    let d = Daemon::start(Runtime::docker());
    d.write_manifest(&format!("{name}.yaml"), &pool(&d, name, replicas, slots, queue, args));
    d.wait_for("pool Ready", READY, |s| pool_ready(s, name, replicas));
    let c = TaskClient::new(&d.url);
    (d, c)
}

fn submit_ok(c: &TaskClient, body: Value) -> String {
    let a = c.submit(&body);
    assert_eq!(a.status, 202, "{:?}", a.body);
    a.body["task_id"].as_str().unwrap().to_string()
}

#[test]
fn tokens_stream_started_token_end_in_order() {
    let (_d, c) = start("chat", 1, 2, "{capacity: 8}", &[]);
    let id = submit_ok(
        &c,
        json!({"pool": "chat", "prompt": "Once upon a time", "max_tokens": 8, "seed": 7}),
    );
    let events = c.events(&id);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.event.as_str())
        .filter(|e| *e != "metrics")
        .collect();
    assert_eq!(names.first(), Some(&"started"));
    assert_eq!(names.last(), Some(&"end"));
    assert_eq!(names.iter().filter(|n| **n == "token").count(), 8);
    let idx: Vec<u64> = events
        .iter()
        .filter(|e| e.event == "token")
        .map(|e| e.data["i"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, (0..8).collect::<Vec<_>>());
    let end = &events.last().unwrap().data;
    assert_eq!(end["tokens_out"], 8);
    assert!(end["decode_time_ms"].is_u64());
    assert!(events[0].data["queue_position"].is_u64() && events[0].data["predicted_start_ms"].is_u64());
    assert_eq!(c.status(&id)["state"], "done");
}

/// OC-TEST-7001..7003: 64 fixed seeds, the same request twice → byte-identical streams, on
/// both replicas.
#[test]
fn determinism_suite_64_seeds_across_replicas_and_runs() {
    let (_d, c) = start("det", 2, 1, "{capacity: 64}", &[]);
    let mut replicas = BTreeSet::new();
    for seed in 0..64u64 {
        let body =
            json!({"pool": "det", "prompt": "Once upon a time", "max_tokens": 12, "seed": seed, "temperature": 0.8});
        // Two at once, so the pair lands on both replicas (one slot each).
        let (a, b) = (submit_ok(&c, body.clone()), submit_ok(&c, body));
        let (ta, tb) = (tokens(&c.events(&a)), tokens(&c.events(&b)));
        assert_eq!(ta.len(), 12);
        assert_eq!(ta, tb, "seed {seed}: same request, same tokens");
        replicas.insert(c.status(&a)["replica"].as_str().unwrap().to_string());
        replicas.insert(c.status(&b)["replica"].as_str().unwrap().to_string());
    }
    assert_eq!(replicas.len(), 2, "both replicas served: {replicas:?}");
}

/// ORCH-2007, OC-CTRL-2011: 10× more concurrent tasks than the queue holds → every excess
/// request gets 429 with Retry-After, X-Backoff-Ms and the body fields; every accepted task
/// ends; the queue drains; no slot leaks.
#[test]
fn overload_gets_429_with_advice_and_every_accepted_task_ends() {
    let (d, c) = start(
        "busy",
        2,
        1,
        "{capacity: 4, fullPolicy: reject}",
        &["--token-rate", "100"],
    );
    let body = json!({"pool": "busy", "prompt": "Once upon a time", "max_tokens": 20, "seed": 1});
    let burst = c.submit_burst(&body, 40);
    let (accepted, refused) = (&burst.accepted, &burst.refused);
    assert!(
        !refused.is_empty() && accepted.len() >= 4,
        "accepted {} refused {}",
        accepted.len(),
        refused.len()
    );
    for r in refused {
        assert!(r.headers.get("retry-after").is_some(), "Retry-After");
        assert!(r.headers.get("x-backoff-ms").is_some(), "X-Backoff-Ms");
        assert_eq!(r.body["code"], "ADMISSION_REJECT");
        assert_eq!(r.body["policy_label"], "reject");
        assert_eq!(r.body["retriable"], true);
        assert!(r.body["retry_after_ms"].as_u64().unwrap() >= 100);
    }
    for id in accepted {
        let events = c.events(id);
        let last = events.last().unwrap();
        assert!(last.event == "end" || last.event == "error", "{id} ended: {last:?}");
    }
    // Queue drained and slots free: a new task runs straight away.
    let id = submit_ok(&c, json!({"pool": "busy", "prompt": "again", "max_tokens": 2}));
    assert_eq!(c.events(&id).last().unwrap().event, "end");
    drop(d);
}

/// ORCH-3026, OC-CTRL-2012: cancels of queued and running tasks, and client disconnects →
/// zero tokens after the cancel is acknowledged, and no slot leaks.
#[test]
fn a_thousand_random_cancels_leave_no_token_after_the_ack_and_no_leaked_slot() {
    let (_d, c) = start("cxl", 2, 2, "{capacity: 64}", &["--token-rate", "400"]);
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let plans: Vec<(u64, u64)> = (0..1000).map(|_| (next() % 3, next() % 12)).collect();
    std::thread::scope(|s| {
        for chunk in plans.chunks(125) {
            let c = c.clone();
            s.spawn(move || {
                for &(kind, after) in chunk {
                    let id = submit_ok(
                        &c,
                        json!({"pool": "cxl", "prompt": "Once upon a time", "max_tokens": 16}),
                    );
                    match kind {
                        // Cancel before reading anything (often still queued).
                        0 => {
                            let ack = c.cancel(&id);
                            let got = tokens(&c.events(&id)).len() as u64;
                            assert_eq!(
                                got,
                                ack["tokens_streamed"].as_u64().unwrap(),
                                "{id}: tokens after the ack"
                            );
                        }
                        // Cancel mid-stream, then read to the end.
                        1 => {
                            let mut r = c.open(&id);
                            let mut got = 0u64;
                            while got < after {
                                match r.next_event() {
                                    Some(e) if e.event == "token" => got += 1,
                                    Some(e) if e.event == "end" || e.event == "error" => break,
                                    Some(_) => {}
                                    None => break,
                                }
                            }
                            let ack = c.cancel(&id);
                            while let Some(e) = r.next_event() {
                                if e.event == "token" {
                                    got += 1;
                                }
                            }
                            let streamed = ack["tokens_streamed"].as_u64().unwrap();
                            assert!(
                                got <= streamed.max(16),
                                "{id}: {got} tokens read, {streamed} streamed at the ack"
                            );
                            if ack["state"] == "canceled" {
                                assert_eq!(got, streamed, "{id}: a token arrived after the cancel ack");
                            }
                        }
                        // Disconnect mid-stream.
                        _ => {
                            let mut r = c.open(&id);
                            for _ in 0..after {
                                if r.next_event().is_none() {
                                    break;
                                }
                            }
                            drop(r);
                        }
                    }
                }
            });
        }
    });
    // Every slot is free again: 4 slots, 4 tasks at once all start without waiting.
    let ids: Vec<String> = (0..4)
        .map(|_| submit_ok(&c, json!({"pool": "cxl", "prompt": "x", "max_tokens": 2})))
        .collect();
    for id in ids {
        assert_eq!(c.events(&id).last().unwrap().event, "end", "{id}");
    }
    let tasks: Value = reqwest::blocking::get(format!("{}/v2/tasks", _d.url))
        .unwrap()
        .json()
        .unwrap();
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] != "queued" && t["state"] != "running"),
        "nothing left in flight"
    );
}

/// An engine killed mid-stream → that stream ends with a retriable WORKER_RESET; the next
/// task succeeds on the other replica.
#[test]
fn an_engine_killed_mid_stream_gives_worker_reset_and_the_next_task_runs_elsewhere() {
    let (d, c) = start("kill", 2, 1, "{capacity: 8}", &["--token-rate", "20"]);
    let id = submit_ok(
        &c,
        json!({"pool": "kill", "prompt": "Once upon a time", "max_tokens": 200}),
    );
    let mut r = c.open(&id);
    while let Some(e) = r.next_event() {
        if e.event == "token" {
            break;
        }
    }
    let replica = c.status(&id)["replica"].as_str().unwrap().to_string();
    let container = d
        .snapshot()
        .replicas
        .iter()
        .find(|x| x.id.as_str() == replica)
        .unwrap()
        .container_id
        .clone()
        .unwrap();
    d.runtime.run(&["kill", &container]);
    let mut last = None;
    while let Some(e) = r.next_event() {
        last = Some(e);
    }
    let last = last.unwrap();
    assert_eq!(last.event, "error", "{last:?}");
    assert_eq!(last.data["code"], "WORKER_RESET");
    assert_eq!(last.data["retriable"], true);
    let next = submit_ok(&c, json!({"pool": "kill", "prompt": "again", "max_tokens": 4}));
    let events = c.events(&next);
    assert_eq!(events.last().unwrap().event, "end", "{events:?}");
    assert_ne!(c.status(&next)["replica"].as_str().unwrap(), replica);
}

/// ORCH-3004: interactive tasks overtake queued batch tasks; batch still completes.
#[test]
fn interactive_overtakes_queued_batch_and_batch_still_finishes() {
    let (_d, c) = start("prio", 1, 1, "{capacity: 32}", &["--token-rate", "200"]);
    let batch: Vec<String> = (0..6)
        .map(|_| {
            submit_ok(
                &c,
                json!({"pool": "prio", "prompt": "b", "max_tokens": 20, "priority": "batch"}),
            )
        })
        .collect();
    let interactive = submit_ok(
        &c,
        json!({"pool": "prio", "prompt": "i", "max_tokens": 2, "priority": "interactive"}),
    );
    let admitted_position = c.status(&interactive);
    assert_eq!(
        c.events(&interactive).last().unwrap().event,
        "end",
        "{admitted_position}"
    );
    let still_waiting = batch.iter().filter(|id| c.status(id)["state"] == "queued").count();
    assert!(
        still_waiting >= 3,
        "the interactive task finished while {still_waiting} batch tasks still waited"
    );
    for id in &batch {
        assert_eq!(c.events(id).last().unwrap().event, "end", "batch {id} completes");
    }
}

#[test]
fn bad_requests_are_refused_before_enqueue_with_the_field_named() {
    let (_d, c) = start("val", 1, 1, "{capacity: 8}", &[]);
    let cases = [
        (json!({"pool": "val", "max_tokens": 4}), 400, "prompt"),
        (
            json!({"pool": "val", "prompt": "x", "max_tokens": 999999}),
            400,
            "max_tokens",
        ),
        (
            json!({"pool": "val", "prompt": "x ".repeat(10000), "max_tokens": 8}),
            400,
            "context",
        ),
        (
            json!({"pool": "val", "prompt": "x", "max_tokens": 4, "temperature": 9}),
            400,
            "temperature",
        ),
        (json!({"pool": "nope", "prompt": "x", "max_tokens": 4}), 404, "nope"),
        (
            json!({"pool": "val", "prompt": "x", "max_tokens": 4, "colour": 1}),
            400,
            "colour",
        ),
        (
            json!({"pool": "val", "prompt": "x", "max_tokens": 4, "session_id": "s".repeat(129)}),
            400,
            "session_id",
        ),
    ];
    for (body, status, needle) in cases {
        let a = c.submit(&body);
        assert_eq!(a.status, status, "{body} → {:?}", a.body);
        assert!(
            a.body["message"].as_str().unwrap().contains(needle),
            "{body} → {:?}",
            a.body
        );
    }
}

/// ORCH-3099: with `spec.sessions.tokenBudget`, a session's tasks are refused before enqueue
/// once their `max_tokens` would exceed what is left; metrics frames say what is left; other
/// sessions are unaffected.
#[test]
fn a_session_token_budget_is_enforced_before_enqueue() {
    let (_d, c) = start("budget", 1, 1, "{capacity: 8}\n  sessions: {tokenBudget: 20}", &[]);
    let ask =
        |session: &str| json!({"pool": "budget", "prompt": "Once upon a time", "max_tokens": 8, "session_id": session});
    for _ in 0..2 {
        let id = submit_ok(&c, ask("s1"));
        let events = c.events(&id);
        assert_eq!(events.last().unwrap().event, "end");
    }
    let refused = c.submit(&ask("s1"));
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "ADMISSION_REJECT");
    assert_eq!(refused.body["policy_label"], "session-budget");
    assert_eq!(refused.body["retriable"], false);
    assert!(
        refused.body["message"].as_str().unwrap().contains("4 tokens left"),
        "{:?}",
        refused.body
    );
    // What is left still fits a smaller task, and another session has its own budget.
    let small = submit_ok(
        &c,
        json!({"pool": "budget", "prompt": "x", "max_tokens": 4, "session_id": "s1"}),
    );
    assert_eq!(c.events(&small).last().unwrap().event, "end");
    let other = submit_ok(&c, ask("s2"));
    assert_eq!(c.events(&other).last().unwrap().event, "end");
}
