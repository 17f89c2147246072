//! `/tokenize`, `/detokenize`, `/apply-template`, and that `prompt_tokens` agrees with them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Engine;
use serde_json::{Value, json};

async fn token_count(engine: &Engine, text: &str) -> usize {
    let r = engine.post_json("/tokenize", json!({"content": text})).await;
    r["tokens"].as_array().unwrap().len()
}

#[tokio::test]
async fn tokenize_and_detokenize_round_trip_in_llama_servers_shapes() {
    let engine = Engine::start(|_| {}).await;
    let text = "Once upon a time, the fox";
    let r = engine.post_json("/tokenize", json!({"content": text})).await;
    let ids = r["tokens"].clone();
    assert_eq!(ids.as_array().unwrap().len(), 6);
    assert!(ids.as_array().unwrap().iter().all(Value::is_u64));
    let back = engine.post_json("/detokenize", json!({"tokens": ids})).await;
    assert_eq!(back, json!({"content": text}));

    let with = engine
        .post_json(
            "/tokenize",
            json!({"content": text, "with_pieces": true, "add_special": true}),
        )
        .await;
    let tokens = with["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 7, "BOS first");
    assert_eq!(tokens[0]["piece"], "<s>");
    assert_eq!(tokens[2], json!({"id": ids[1], "piece": " upon"}));
}

#[tokio::test]
async fn usage_prompt_tokens_equal_the_tokenize_count() {
    let engine = Engine::start(|_| {}).await;
    let prompt = "The  quick brown\tfox";
    let completion = engine
        .post_json("/v1/completions", json!({"prompt": prompt, "max_tokens": 1}))
        .await;
    assert_eq!(completion["usage"]["prompt_tokens"], token_count(&engine, prompt).await);
    let native = engine
        .post_json("/completion", json!({"prompt": prompt, "n_predict": 1}))
        .await;
    assert_eq!(native["tokens_evaluated"], token_count(&engine, prompt).await);

    let messages = json!([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi there, you"}]);
    let chat = engine
        .post_json("/v1/chat/completions", json!({"messages": messages, "max_tokens": 1}))
        .await;
    let template = engine.post_json("/apply-template", json!({"messages": messages})).await;
    assert_eq!(template["prompt"], "system: Be brief.\nuser: Hi there, you\nassistant:");
    let rendered = template["prompt"].as_str().unwrap();
    assert_eq!(chat["usage"]["prompt_tokens"], token_count(&engine, rendered).await);
}

#[tokio::test]
async fn apply_template_without_messages_is_a_400() {
    let engine = Engine::start(|_| {}).await;
    assert_eq!(engine.post("/apply-template", json!({})).await.status(), 400);
}
