//! `/v1/embeddings`: off without `--embeddings`, OpenAI's shape, floats or base64.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Engine;
use serde_json::{Value, json};

#[tokio::test]
async fn without_the_embeddings_flag_the_route_answers_501_naming_the_flag() {
    let engine = Engine::start(|_| {}).await;
    let response = engine.post("/v1/embeddings", json!({"input":"hi"})).await;
    assert_eq!(response.status(), 501);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_supported_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("--embeddings"));
}

#[tokio::test]
async fn embeddings_have_the_openai_shape_and_unit_length() {
    let engine = Engine::start(|c| {
        c.embeddings = true;
        c.embd_dim = 8;
        c.alias = "embedder".into();
    })
    .await;
    let r = engine
        .post_json("/v1/embeddings", json!({"input":["hello world","the fox"],"model":"x"}))
        .await;
    assert_eq!(r["object"], "list");
    assert_eq!(r["model"], "embedder");
    assert_eq!(r["usage"], json!({"prompt_tokens":4,"total_tokens":4}));
    let data = r["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(
            (item["object"].as_str(), item["index"].as_u64()),
            (Some("embedding"), Some(i as u64))
        );
        let v: Vec<f64> = item["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(v.len(), 8);
        assert!((v.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-4);
    }
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    // The same text gives the same vector, through /embeddings too, and token ids of it as well.
    let one = engine.post_json("/embeddings", json!({"input":"hello world"})).await;
    assert_eq!(one["data"][0]["embedding"], data[0]["embedding"]);
    let ids = engine.post_json("/tokenize", json!({"content":"the fox"})).await["tokens"].clone();
    let by_ids = engine.post_json("/v1/embeddings", json!({"input": ids})).await;
    assert_eq!(by_ids["data"][0]["embedding"], data[1]["embedding"]);
    let nested = engine.post_json("/v1/embeddings", json!({"input": [ids, [0]]})).await;
    assert_eq!(nested["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn base64_encoding_gives_little_endian_f32_bytes() {
    let engine = Engine::start(|c| c.embeddings = true).await;
    let floats = engine
        .post_json("/v1/embeddings", json!({"input":"hi","encoding_format":"float"}))
        .await;
    let encoded = engine
        .post_json("/v1/embeddings", json!({"input":"hi","encoding_format":"base64"}))
        .await;
    let text = encoded["data"][0]["embedding"].as_str().unwrap();
    let first: Vec<f64> = floats["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(first.len(), 16);
    assert_eq!(text.len(), (16 * 4usize).div_ceil(3) * 4);
    assert_eq!(
        text,
        mock_engine::embeddings::base64_f32(&first.iter().map(|x| *x as f32).collect::<Vec<_>>())
    );
}
