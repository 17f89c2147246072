//! Log probabilities in chat and completions replies, whole and streamed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Engine, SseReader};
use serde_json::{Value, json};

async fn stream(engine: &Engine, path: &str, body: Value) -> Vec<Value> {
    let events = SseReader::new(engine.post(path, body).await).collect().await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_logprobs_cover_every_content_token_with_top_alternatives() {
    let engine = Engine::start(|_| {}).await;
    let body = json!({"messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"logprobs":true,"top_logprobs":3});
    let whole = engine.post_json("/v1/chat/completions", body.clone()).await;
    let content = whole["choices"][0]["logprobs"]["content"].as_array().unwrap().clone();
    assert_eq!(content.len(), 5);
    let text: String = content.iter().map(|e| e["token"].as_str().unwrap()).collect();
    assert_eq!(text, whole["choices"][0]["message"]["content"].as_str().unwrap());
    for entry in &content {
        assert!(entry["logprob"].as_f64().unwrap() <= 0.0);
        assert_eq!(entry["bytes"], json!(entry["token"].as_str().unwrap().as_bytes()));
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(
            top.iter()
                .all(|t| t["bytes"].is_array() && t["logprob"].as_f64().unwrap() <= 0.0)
        );
    }

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks = stream(&engine, "/v1/chat/completions", streamed).await;
    let entries: Vec<Value> = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["content"].is_string())
        .flat_map(|c| c["choices"][0]["logprobs"]["content"].as_array().unwrap().clone())
        .collect();
    assert_eq!(entries, content, "streamed entries equal the whole reply's");
}

#[tokio::test]
async fn without_logprobs_the_field_stays_null_or_absent() {
    let engine = Engine::start(|_| {}).await;
    let chat = engine
        .post_json(
            "/v1/chat/completions",
            json!({"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}),
        )
        .await;
    assert!(chat["choices"][0]["logprobs"].is_null());
    let completion = engine
        .post_json("/v1/completions", json!({"prompt":"Hi","max_tokens":2}))
        .await;
    assert!(completion["choices"][0]["logprobs"].is_null());
}

#[tokio::test]
async fn completions_logprobs_use_the_legacy_shape() {
    let engine = Engine::start(|_| {}).await;
    let body = json!({"prompt":"Once upon","max_tokens":4,"logprobs":2});
    let whole = engine.post_json("/v1/completions", body.clone()).await;
    let logprobs = &whole["choices"][0]["logprobs"];
    let tokens: Vec<&str> = logprobs["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tokens.concat(), whole["choices"][0]["text"].as_str().unwrap());
    assert_eq!(logprobs["token_logprobs"].as_array().unwrap().len(), 4);
    assert!(
        logprobs["top_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.as_object().unwrap().len() == 2)
    );
    let offsets: Vec<usize> = logprobs["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(offsets[0], 0);
    assert_eq!(offsets[1], tokens[0].len());

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks = stream(&engine, "/v1/completions", streamed).await;
    let streamed_offsets: Vec<Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["logprobs"].is_null())
        .flat_map(|c| c["choices"][0]["logprobs"]["text_offset"].as_array().unwrap().clone())
        .collect();
    assert_eq!(streamed_offsets, logprobs["text_offset"].as_array().unwrap().clone());
}

#[tokio::test]
async fn too_many_top_logprobs_are_refused_naming_the_field() {
    let engine = Engine::start(|_| {}).await;
    let body = json!({"messages":[{"role":"user","content":"Hi"}],"logprobs":true,"top_logprobs":21});
    let response = engine.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().starts_with("top_logprobs:"));
}
