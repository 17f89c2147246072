//! Slots (the `--parallel` limit and its queue), client disconnects, and the in-process faults
//! (hang; the crash is tested on the binary, since it exits the process).

mod common;

use std::time::{Duration, Instant};

use common::{Engine, SseReader};
use serde_json::json;

#[tokio::test]
async fn requests_beyond_parallel_wait_for_a_slot() {
    // 10 tokens at 40 tokens/s: each request holds its slot for at least 250 ms.
    let engine = Engine::start(|c| c.token_interval = Some(Duration::from_millis(25))).await;
    let body = json!({"prompt":"queue","n_predict":10});
    let started = Instant::now();
    let (first, second, deferred_seen) = tokio::join!(
        engine.post_json("/completion", body.clone()),
        engine.post_json("/completion", body.clone()),
        async {
            // The second request waits for at least 250 ms: sample until that is seen.
            for _ in 0..200 {
                let gauges = (
                    engine.metric("requests_processing").await,
                    engine.metric("requests_deferred").await,
                );
                if gauges == (1.0, 1.0) {
                    return gauges;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (f64::NAN, f64::NAN)
        }
    );
    let elapsed = started.elapsed();
    assert_eq!(deferred_seen, (1.0, 1.0), "one running, one waiting");
    assert!(
        elapsed >= Duration::from_millis(500),
        "ran one after the other: {elapsed:?}"
    );
    assert_eq!(first["content"], second["content"]);
    assert_eq!(
        (first["id_slot"].as_u64(), second["id_slot"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn parallel_slots_run_requests_at_the_same_time() {
    let engine = Engine::start(|c| {
        c.parallel = 2;
        c.token_interval = Some(Duration::from_millis(25));
    })
    .await;
    let body = json!({"prompt":"together","n_predict":20});
    let (a, b) = tokio::join!(
        engine.post_json("/completion", body.clone()),
        engine.post_json("/completion", body)
    );
    let mut slots = [a["id_slot"].as_u64().unwrap(), b["id_slot"].as_u64().unwrap()];
    slots.sort_unstable();
    assert_eq!(slots, [0, 1], "each request had its own slot");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_frees_its_slot() {
    let engine = Engine::start(|c| c.token_interval = Some(Duration::from_millis(20))).await;
    let response = engine
        .post("/completion", json!({"prompt":"long","n_predict":100000,"stream":true}))
        .await;
    let mut reader = SseReader::new(response);
    assert!(reader.next_json().await.is_some());
    let slots = engine.get_json("/slots").await;
    assert_eq!(slots[0]["is_processing"], true);
    drop(reader);

    // The only slot is free again: a new request completes promptly.
    let next = tokio::time::timeout(
        Duration::from_secs(3),
        engine.post_json("/completion", json!({"prompt":"after","n_predict":2})),
    )
    .await
    .expect("the slot was freed");
    assert_eq!(next["tokens_predicted"], 2);
}

#[tokio::test]
async fn hang_after_tokens_stops_sending_but_keeps_the_connection_open() {
    let engine = Engine::start(|c| c.hang_after_tokens = Some(3)).await;
    let response = engine
        .post("/completion", json!({"prompt":"x","n_predict":10,"stream":true}))
        .await;
    let mut reader = SseReader::new(response);
    for i in 1..=3 {
        let chunk = reader.next_json().await.expect("a token before the hang");
        assert_eq!(chunk["tokens_predicted"], i);
    }
    let fourth = tokio::time::timeout(Duration::from_millis(500), reader.next()).await;
    assert!(
        fourth.is_err(),
        "no token and no end of stream after the hang, got {fourth:?}"
    );
    // The hang is process-wide: a new request hangs too, while the server still answers probes.
    let stuck = tokio::time::timeout(
        Duration::from_millis(300),
        engine.post("/completion", json!({"prompt":"y","n_predict":1})),
    )
    .await;
    assert!(stuck.is_err());
    assert_eq!(engine.get_json("/health").await, json!({"status":"ok"}));
}

#[tokio::test]
async fn shutdown_ends_the_engine_even_with_a_hung_stream() {
    let engine = Engine::start(|c| c.hang_after_tokens = Some(0)).await;
    let response = engine
        .post("/completion", json!({"prompt":"x","n_predict":5,"stream":true}))
        .await;
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    engine.shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), engine.task)
        .await
        .expect("stopped in time");
    assert!(result.unwrap().is_ok());
    assert!(started.elapsed() <= mock_engine::server::SHUTDOWN_GRACE + Duration::from_millis(500));
}
