//! Pools sized by demand (issue 10, items 1 and 2, first part) on real Docker and real Podman
//! with the mock engine: a Pool with `scaling: {minReplicas: 0}` runs no container until a
//! request names its model; that request, through the OpenAI front door, is queued (never a
//! 503), the Pool activates and the answer comes once its replica is Ready; after
//! `idleTimeout` without a task the replica is removed and the Pool reports `ScaledToZero`.
//! Each transition is an event. The wake is timed, and the next task's `predicted_start_ms`
//! includes it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::{Daemon, Runtime};
use llorch_manifests::api::Snapshot;
use llorch_manifests::status::ConditionType;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);

fn stack(d: &Daemon) -> String {
    format!(
        "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {{name: mock}}\nspec:\n  image: llama-orch/mock-engine:dev\n  \
         version: \"0.1.0\"\n  health: {{path: /health, intervalMs: 200}}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: sleepy-model}}\nspec:\n  ref: file:{}\n  ctxMax: 4096\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: sleepy}}\nspec:\n  engine: mock\n  model: sleepy-model\n  \
         scaling: {{minReplicas: 0, maxReplicas: 1, idleTimeout: 3s}}\n",
        d.model_path().display()
    )
}

/// `POST /v1/completions` for `model` (waits up to [`SETTLE`]): the status and the body.
fn complete(url: &str, model: &str, max_tokens: u32) -> (u16, Value) {
    let response = reqwest::blocking::Client::builder()
        .timeout(SETTLE)
        .build()
        .unwrap()
        .post(format!("{url}/v1/completions"))
        .json(&json!({"model": model, "prompt": "Once upon", "max_tokens": max_tokens}))
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

/// The Pool's Ready condition reason, when it is reported.
fn ready_reason(s: &Snapshot) -> Option<String> {
    let view = s.objects.iter().find(|o| o.object.name == "sleepy")?;
    view.status
        .condition(ConditionType::Ready)
        .filter(|c| c.status)
        .map(|c| c.reason.to_string())
}

fn events(d: &Daemon) -> Vec<String> {
    let list: Value = reqwest::blocking::get(format!("{}/v2/events?kind=pool&name=sleepy&limit=100", d.url))
        .unwrap()
        .json()
        .unwrap();
    list["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["reason"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn a_pool_sleeps_wakes_for_a_request_and_sleeps_again(runtime: Runtime) {
    let d = Daemon::start(runtime);
    d.write_manifest("sleepy.yaml", &stack(&d));
    d.wait_for("pool sleepy scaled to zero", SETTLE, |s| {
        ready_reason(s).as_deref() == Some("ScaledToZero")
    });
    assert!(d.container_ids().is_empty(), "a sleeping pool runs no container");
    // Never woken: the expected wake is the prior, 2 s plus a second per GiB it needs.
    let prior = cold_start_ms(&d.snapshot()).expect("a pool that may sleep publishes its expected wake");
    assert!(prior >= 2_000, "{prior}");

    // A request for its model is queued, the Pool wakes, the answer comes.
    let started = Instant::now();
    let (status, body) = complete(&d.url, "sleepy-model", 4);
    assert_eq!(status, 200, "{body}");
    assert!(!body["choices"][0]["text"].as_str().unwrap().is_empty(), "{body}");
    println!("wake-to-answer: {} ms", started.elapsed().as_millis());
    assert_eq!(d.container_ids().len(), 1, "the pool woke with one replica");
    assert!(
        events(&d).iter().any(|e| e.starts_with("Activated")),
        "{:?}",
        events(&d)
    );

    // After idleTimeout (3 s) without a task its replica goes and it sleeps again.
    d.wait_for("pool sleepy scaled to zero again", SETTLE, |s| {
        ready_reason(s).as_deref() == Some("ScaledToZero") && s.replicas.iter().all(|r| r.pool != "sleepy")
    });
    let deadline = Instant::now() + SETTLE;
    while !d.container_ids().is_empty() {
        assert!(Instant::now() < deadline, "the idle pool's container was not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let scaled = events(&d);
    assert!(
        scaled
            .iter()
            .any(|e| e.starts_with("ScaledToZero") && e.contains("idleTimeout 3s")),
        "{scaled:?}"
    );

    // The wake was timed: a task for the sleeping pool is told to expect that long.
    let measured = cold_start_ms(&d.snapshot()).unwrap();
    assert_ne!(measured, prior, "the measured wake replaces the prior");
    // And it is in the cold-start histogram: one wake, whose sum is the measured time.
    let scrape = reqwest::blocking::get(format!("{}/metrics", d.url))
        .unwrap()
        .text()
        .unwrap();
    let sample = |name: &str| {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{pool=\"sleepy\"}} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{scrape}"))
            .parse::<f64>()
            .unwrap()
    };
    assert_eq!(sample("llorch_pool_cold_start_seconds_count"), 1.0);
    let sum_ms = sample("llorch_pool_cold_start_seconds_sum") * 1000.0;
    assert!((sum_ms - measured as f64).abs() < 2.0, "{sum_ms} vs {measured}");
    let admitted: Value = reqwest::blocking::Client::new()
        .post(format!("{}/v2/tasks", d.url))
        .json(&json!({"pool": "sleepy", "prompt": "Once upon", "max_tokens": 4}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let predicted = admitted["predicted_start_ms"].as_u64().unwrap();
    println!("wake: prior {prior} ms, measured {measured} ms, predicted start {predicted} ms");
    assert!(
        predicted <= measured && predicted + 1_000 >= measured,
        "predicted {predicted} ms for a wake measured at {measured} ms: {admitted}"
    );
}

/// The sleepy Pool's expected wake, as the serving view publishes it.
fn cold_start_ms(s: &Snapshot) -> Option<u64> {
    s.serving.iter().find(|p| p.pool == "sleepy")?.cold_start_ms
}

/// Autoscaling: a Pool of one slot per replica, `maxReplicas: 2`; four 4-second tasks at once
/// wait for a slot, so after 5 s a second replica starts (`ScaledUp`) and takes some; every
/// task completes, and once idle the Pool shrinks and sleeps again.
fn tasks_waiting_for_a_slot_bring_a_second_replica(runtime: Runtime) {
    let d = Daemon::start(runtime);
    let text = stack(&d).replace("maxReplicas: 1", "maxReplicas: 2").replace(
        "version: \"0.1.0\"\n",
        "version: \"0.1.0\"\n  extraArgs: [\"--token-rate\", \"25\"]\n",
    );
    d.write_manifest("sleepy.yaml", &text);
    d.wait_for("pool sleepy scaled to zero", SETTLE, |s| {
        ready_reason(s).as_deref() == Some("ScaledToZero")
    });
    let url = d.url.clone();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || complete(&url, "sleepy", 100))
        })
        .collect();
    let most = {
        let mut most = 0;
        let deadline = Instant::now() + SETTLE;
        while clients.iter().any(|c| !c.is_finished()) && Instant::now() < deadline {
            most = most.max(d.container_ids().len());
            std::thread::sleep(Duration::from_millis(200));
        }
        most
    };
    for c in clients {
        let (status, body) = c.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["usage"]["completion_tokens"], 100, "{body}");
    }
    let up: Vec<String> = events(&d).into_iter().filter(|e| e.starts_with("ScaledUp")).collect();
    println!("{}: {up:?}; at most {most} containers", d.runtime.name);
    assert_eq!(up.len(), 1, "{:?}", events(&d));
    assert!(up[0].contains("1 → 2 replicas (maxReplicas 2)"), "{}", up[0]);
    assert_eq!(most, 2, "the second replica ran");
    d.wait_for("pool sleepy asleep again", SETTLE, |s| {
        ready_reason(s).as_deref() == Some("ScaledToZero") && s.replicas.iter().all(|r| r.pool != "sleepy")
    });
}

/// A wake whose engine cannot load: the request that woke the Pool is not left waiting; it
/// ends with a retriable error that carries the engine's reason.
fn a_failed_wake_ends_the_waiting_task_with_the_engines_reason(runtime: Runtime) {
    let d = Daemon::start(runtime);
    let text = stack(&d).replace(
        "version: \"0.1.0\"\n",
        "version: \"0.1.0\"\n  extraArgs: [\"--fail-at-start\"]\n",
    );
    d.write_manifest("sleepy.yaml", &text);
    d.wait_for("pool sleepy scaled to zero", SETTLE, |s| {
        ready_reason(s).as_deref() == Some("ScaledToZero")
    });
    let started = Instant::now();
    let (status, body) = complete(&d.url, "sleepy", 4);
    println!(
        "{}: failed wake answered in {} ms: {body}",
        d.runtime.name,
        started.elapsed().as_millis()
    );
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("could not wake"), "{body}");
    assert!(message.contains("failed to load model"), "the engine's reason: {body}");
}

llama_orch_e2e::on_both_runtimes!(
    a_pool_sleeps_wakes_for_a_request_and_sleeps_again,
    tasks_waiting_for_a_slot_bring_a_second_replica,
    a_failed_wake_ends_the_waiting_task_with_the_engines_reason
);
