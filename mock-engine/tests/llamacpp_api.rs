//! llama-server's native API, against an in-process engine over real HTTP.

// Helpers outside #[test] functions may unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Engine, SseReader};
use serde_json::{Value, json};

async fn stream_completion(engine: &Engine, body: Value) -> (Vec<Value>, Value) {
    let response = engine.post("/completion", body).await;
    assert_eq!(response.status(), 200);
    let events = SseReader::new(response).collect().await;
    let mut chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let last = chunks.pop().expect("a final chunk");
    (chunks, last)
}

#[tokio::test]
async fn health_answers_503_loading_model_until_loaded_then_200() {
    let engine = Engine::start(|c| c.load_delay = Duration::from_millis(400)).await;
    let early = reqwest::get(engine.url("/health")).await.unwrap();
    assert_eq!(early.status(), 503);
    let body: Value = early.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})
    );
    // Other routes are gated too, as in llama-server.
    assert_eq!(engine.post("/completion", json!({"prompt":"x"})).await.status(), 503);
    engine.wait_healthy().await;
    assert_eq!(engine.get_json("/health").await, json!({"status":"ok"}));
}

#[tokio::test]
async fn a_streamed_completion_equals_the_non_streamed_one() {
    let engine = Engine::start(|_| {}).await;
    let body = json!({"prompt":"Once upon a time","n_predict":12,"seed":5,"temperature":0.7});
    let whole = engine.post_json("/completion", body.clone()).await;
    let mut streamed_body = body;
    streamed_body["stream"] = json!(true);
    let (chunks, last) = stream_completion(&engine, streamed_body).await;

    assert_eq!(chunks.len(), 12, "one chunk per token");
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["stop"], false);
        assert_eq!(chunk["tokens_predicted"], i + 1);
        assert_eq!(chunk["id_slot"], 0);
    }
    let text: String = chunks.iter().map(|c| c["content"].as_str().unwrap()).collect();
    assert_eq!(text, whole["content"].as_str().unwrap());
    assert_eq!(text.split_whitespace().count(), 12);

    for end in [&last, &whole] {
        assert_eq!(end["stop"], true);
        assert_eq!(end["stop_type"], "limit");
        assert_eq!(end["tokens_predicted"], 12);
        assert_eq!(end["tokens_evaluated"], 4);
        assert_eq!(end["timings"]["predicted_n"], 12);
        assert_eq!(end["model"], whole["model"]);
    }
    assert_eq!(last["content"], "", "the final stream chunk repeats no content");
}

#[tokio::test]
async fn two_replicas_answer_the_same_request_with_the_same_text() {
    let (a, b) = (Engine::start(|_| {}).await, Engine::start(|c| c.parallel = 3).await);
    let body = json!({"prompt":"The same prompt","n_predict":20});
    let (ra, rb) = (
        a.post_json("/completion", body.clone()).await,
        b.post_json("/completion", body).await,
    );
    assert_eq!(ra["content"], rb["content"]);
    assert_ne!(ra["content"], "");
}

#[tokio::test]
async fn a_different_seed_or_prompt_changes_the_text_and_no_seed_means_the_default() {
    let engine = Engine::start(|_| {}).await;
    let content = |v: Value| v["content"].as_str().unwrap().to_owned();
    let base = content(
        engine
            .post_json("/completion", json!({"prompt":"p","n_predict":16,"seed":1}))
            .await,
    );
    let other_seed = content(
        engine
            .post_json("/completion", json!({"prompt":"p","n_predict":16,"seed":2}))
            .await,
    );
    let other_prompt = content(
        engine
            .post_json("/completion", json!({"prompt":"q","n_predict":16,"seed":1}))
            .await,
    );
    assert_ne!(base, other_seed);
    assert_ne!(base, other_prompt);
    let unseeded = content(
        engine
            .post_json("/completion", json!({"prompt":"p","n_predict":16}))
            .await,
    );
    let default_seed = content(
        engine
            .post_json("/completion", json!({"prompt":"p","n_predict":16,"seed":4294967295u64}))
            .await,
    );
    assert_eq!(unseeded, default_seed);
}

#[tokio::test]
async fn a_stop_string_ends_the_completion_with_stop_type_word() {
    let engine = Engine::start(|_| {}).await;
    let full = engine
        .post_json("/completion", json!({"prompt":"stop test","n_predict":10}))
        .await;
    let full = full["content"].as_str().unwrap().to_owned();
    let word = full.split_whitespace().nth(3).unwrap().to_owned();
    let body = json!({"prompt":"stop test","n_predict":10,"stop":[word]});
    let stopped = engine.post_json("/completion", body.clone()).await;
    assert_eq!(stopped["stop_type"], "word");
    assert_eq!(stopped["stopping_word"], word);
    let text = stopped["content"].as_str().unwrap();
    assert!(full.starts_with(text) && !text.contains(&word), "{text:?} vs {full:?}");
    assert!(stopped["tokens_predicted"].as_u64().unwrap() <= 4);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let (chunks, last) = stream_completion(&engine, streamed).await;
    let streamed_text: String = chunks.iter().map(|c| c["content"].as_str().unwrap()).collect();
    assert_eq!(streamed_text, text);
    assert_eq!(last["stop_type"], "word");
}

#[tokio::test]
async fn no_n_predict_ends_with_eos_after_the_default_length() {
    let engine = Engine::start(|_| {}).await;
    let r = engine.post_json("/completions", json!({"prompt":"open ended"})).await;
    assert_eq!(r["stop_type"], "eos");
    assert_eq!(r["tokens_predicted"], 16);
}

#[tokio::test]
async fn a_prompt_longer_than_the_slot_context_is_rejected() {
    let engine = Engine::start(|c| {
        c.ctx_size = 8;
        c.parallel = 2;
    })
    .await;
    let response = engine
        .post("/completion", json!({"prompt":"one two three four","n_predict":1}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "exceed_context_size_error");
    assert_eq!(body["error"]["n_ctx"], 4);
    // A reply is cut where the slot's context ends.
    let r = engine
        .post_json("/completion", json!({"prompt":"one","n_predict":50}))
        .await;
    assert_eq!(
        (r["tokens_predicted"].as_u64(), r["stop_type"].as_str()),
        (Some(3), Some("limit"))
    );
}

#[tokio::test]
async fn malformed_requests_get_400_naming_the_field() {
    let engine = Engine::start(|_| {}).await;
    let response = engine
        .post("/completion", json!({"prompt":"x","n_predict":"many"}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with("n_predict:"),
        "{body}"
    );
    let not_json = reqwest::Client::new()
        .post(engine.url("/completion"))
        .body("prompt=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(reqwest::get(engine.url("/nowhere")).await.unwrap().status(), 404);
}

#[tokio::test]
async fn props_describe_the_model_slots_and_context() {
    let engine = Engine::start(|c| {
        c.ctx_size = 2048;
        c.parallel = 2;
        c.alias = "smol".into();
    })
    .await;
    let props = engine.get_json("/props").await;
    assert_eq!(props["total_slots"], 2);
    assert_eq!(props["default_generation_settings"]["n_ctx"], 1024);
    assert_eq!(props["default_generation_settings"]["params"]["seed"], 4294967295u64);
    assert!(props["model_path"].as_str().unwrap().ends_with(".gguf"));
    assert_eq!(props["model_alias"], "smol");
    assert_eq!(props["build_info"], "mock-engine 0.1.0");
}

#[tokio::test]
async fn slots_list_each_slot_with_its_context_and_state() {
    let engine = Engine::start(|c| {
        c.parallel = 3;
        c.ctx_size = 3000;
    })
    .await;
    let slots = engine.get_json("/slots").await;
    let slots = slots.as_array().unwrap();
    assert_eq!(slots.len(), 3);
    for (i, slot) in slots.iter().enumerate() {
        assert_eq!(
            (slot["id"].as_u64(), slot["n_ctx"].as_u64()),
            (Some(i as u64), Some(1000))
        );
        assert_eq!(slot["is_processing"], false);
    }
}

#[tokio::test]
async fn metrics_count_prompt_and_generated_tokens() {
    let engine = Engine::start(|_| {}).await;
    engine
        .post_json("/completion", json!({"prompt":"a b c","n_predict":7}))
        .await;
    engine
        .post_json("/v1/completions", json!({"prompt":"d e","max_tokens":2}))
        .await;
    assert_eq!(engine.metric("prompt_tokens_total").await, 5.0);
    assert_eq!(engine.metric("tokens_predicted_total").await, 9.0);
    assert_eq!(engine.metric("requests_processing").await, 0.0);
    assert_eq!(engine.metric("requests_deferred").await, 0.0);
}

#[tokio::test]
async fn health_fail_always_answers_503() {
    let engine = Engine::start(|c| {
        c.health = mock_engine::faults::HealthMode::Fail;
        c.load_delay = Duration::from_millis(1);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        assert_eq!(reqwest::get(engine.url("/health")).await.unwrap().status(), 503);
    }
    // The engine itself still serves.
    engine
        .post_json("/completion", json!({"prompt":"x","n_predict":1}))
        .await;
}

#[tokio::test]
async fn health_flap_alternates_between_200_and_503() {
    let engine = Engine::start(|c| {
        c.health = mock_engine::faults::HealthMode::Flap {
            period: Duration::from_millis(150),
        };
        c.load_delay = Duration::from_millis(1);
    })
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(reqwest::get(engine.url("/health")).await.unwrap().status().as_u16());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![200, 503]);
}
