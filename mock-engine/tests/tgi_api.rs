//! TGI's native API (`/generate`, `/generate_stream`, `/info`) over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Engine, SseReader};
use serde_json::{Value, json};

async fn stream_events(engine: &Engine, body: Value) -> Vec<Value> {
    let response = engine.post("/generate_stream", body).await;
    assert_eq!(response.status(), 200);
    let events = SseReader::new(response).collect().await;
    events.iter().map(|e| serde_json::from_str(e).unwrap()).collect()
}

#[tokio::test]
async fn generate_stream_sends_one_event_per_token_and_the_text_and_details_last() {
    let engine = Engine::start(|_| {}).await;
    let body =
        json!({"inputs":"Once upon a time","parameters":{"max_new_tokens":5,"details":true,"do_sample":true,"seed":7}});
    let events = stream_events(&engine, body.clone()).await;
    assert_eq!(events.len(), 5);
    let (last, tokens) = events.split_last().unwrap();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["index"], i + 1);
        let token = &event["token"];
        assert!(token["id"].is_u64() && token["text"].is_string());
        assert!(token["logprob"].as_f64().unwrap() <= 0.0);
        assert_eq!(token["special"], false);
    }
    assert!(
        tokens
            .iter()
            .all(|e| e["generated_text"].is_null() && e["details"].is_null())
    );
    let text: String = events.iter().map(|e| e["token"]["text"].as_str().unwrap()).collect();
    assert_eq!(last["generated_text"], text);
    assert_eq!(
        last["details"],
        json!({"finish_reason":"length","generated_tokens":5,"seed":7,"input_length":4})
    );
    let whole = engine.post_json("/generate", body).await;
    assert_eq!(whole["generated_text"], text);
    assert_eq!(whole["details"]["finish_reason"], "length");
    assert_eq!(whole["details"]["tokens"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn without_details_the_last_event_keeps_generated_text_and_greedy_has_no_seed() {
    let engine = Engine::start(|_| {}).await;
    let events = stream_events(&engine, json!({"inputs":"Hi","parameters":{"max_new_tokens":2}})).await;
    let last = events.last().unwrap();
    assert!(last["generated_text"].is_string());
    assert!(last["details"].is_null());
    let whole = engine
        .post_json(
            "/generate",
            json!({"inputs":"Hi","parameters":{"max_new_tokens":2,"details":true}}),
        )
        .await;
    assert!(whole["details"]["seed"].is_null());
    let plain = engine
        .post_json("/generate", json!({"inputs":"Hi","parameters":{"max_new_tokens":2}}))
        .await;
    assert!(plain.get("details").is_none());
}

#[tokio::test]
async fn a_stop_sequence_ends_the_reply_keeping_the_sequence() {
    let engine = Engine::start(|_| {}).await;
    let full = engine
        .post_json(
            "/generate",
            json!({"inputs":"stop here","parameters":{"max_new_tokens":8}}),
        )
        .await;
    let words: Vec<String> = full["generated_text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let stop = words[2].clone();
    let body = json!({"inputs":"stop here","parameters":{"max_new_tokens":8,"stop":[stop],"details":true}});
    let events = stream_events(&engine, body.clone()).await;
    let last = events.last().unwrap();
    assert_eq!(last["details"]["finish_reason"], "stop_sequence");
    assert!(last["generated_text"].as_str().unwrap().ends_with(stop.as_str()));
    assert!(events.len() <= 3);
    let whole = engine.post_json("/generate", body).await;
    assert_eq!(whole["details"]["finish_reason"], "stop_sequence");
    assert_eq!(whole["generated_text"], last["generated_text"]);
}

#[tokio::test]
async fn unknown_parameters_and_bad_values_are_422_validation_errors() {
    let engine = Engine::start(|_| {}).await;
    for body in [
        json!({"inputs":"x","parameters":{"max_new_tokens":2,"no_such_field":1}}),
        json!({"inputs":"x","parameters":{"temperature":0.0}}),
        json!({"inputs":"x","parameters":{"max_new_tokens":100000}}),
        json!({"parameters":{}}),
    ] {
        for path in ["/generate", "/generate_stream"] {
            let response = engine.post(path, body.clone()).await;
            assert_eq!(response.status(), 422, "{path} {body}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error_type"], "validation");
            assert!(error["error"].is_string());
        }
    }
}

#[tokio::test]
async fn info_describes_the_model_and_context() {
    let engine = Engine::start(|c| {
        c.alias = "tgi-model".into();
        c.ctx_size = 2048;
    })
    .await;
    let info = engine.get_json("/info").await;
    assert_eq!(info["model_id"], "tgi-model");
    assert_eq!(
        (info["max_total_tokens"].as_u64(), info["max_input_tokens"].as_u64()),
        (Some(2048), Some(2047))
    );
    assert_eq!(info["version"], "mock");
}

#[tokio::test]
async fn tgi_bodies_are_in_the_request_report() {
    let engine = Engine::start(|_| {}).await;
    let body = json!({"inputs":"Hi","parameters":{"max_new_tokens":1,"repetition_penalty":1.1,"grammar":null}});
    engine.post_json("/generate", body.clone()).await;
    let report = engine.get_json("/debug/requests").await;
    assert_eq!(report, json!([{"path":"/generate","body":body}]));
}
