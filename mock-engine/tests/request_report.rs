//! `GET /debug/requests`: the bodies the engine received, as received, oldest first.

mod common;

use common::Engine;
use serde_json::json;

#[tokio::test]
async fn debug_requests_lists_post_bodies_oldest_first_as_received() {
    let engine = Engine::start(|_| {}).await;
    let chat =
        json!({"model":"m","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"x_custom":{"keep":[1,2]}});
    let completion = json!({"prompt":"Once","n_predict":1});
    engine.post_json("/v1/chat/completions", chat.clone()).await;
    engine.post_json("/completion", completion.clone()).await;
    engine.get_json("/props").await;
    let report = engine.get_json("/debug/requests").await;
    assert_eq!(
        report,
        json!([
            {"path": "/v1/chat/completions", "body": chat},
            {"path": "/completion", "body": completion},
        ])
    );
}

#[tokio::test]
async fn rejected_bodies_are_reported_too() {
    let engine = Engine::start(|_| {}).await;
    let bad = json!({"prompt": 5});
    assert_eq!(engine.post("/v1/completions", bad.clone()).await.status(), 400);
    let report = engine.get_json("/debug/requests").await;
    assert_eq!(report, json!([{"path": "/v1/completions", "body": bad}]));
}
