//! The OpenAI-compatible API, against an in-process engine over real HTTP.

mod common;

use common::{Engine, SseReader};
use serde_json::{Value, json};

#[tokio::test]
async fn models_lists_the_alias() {
    let engine = Engine::start(|c| c.alias = "smol-135m".into()).await;
    let models = engine.get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    let model = &models["data"][0];
    assert_eq!(model["id"], "smol-135m");
    assert_eq!(model["object"], "model");
    assert_eq!(model["owned_by"], "llamacpp");
    assert!(model["created"].as_u64().unwrap() > 1_600_000_000);
}

#[tokio::test]
async fn the_default_model_id_is_the_model_file_name() {
    let engine = Engine::start(|_| {}).await;
    let id = engine.get_json("/v1/models").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = engine.get_json("/props").await["model_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(path.ends_with(&format!("/{id}")), "{id} / {path}");
}

#[tokio::test]
async fn completions_return_text_usage_and_finish_reason() {
    let engine = Engine::start(|_| {}).await;
    let r = engine
        .post_json(
            "/v1/completions",
            json!({"model":"any","prompt":"Once upon a time","max_tokens":6}),
        )
        .await;
    assert_eq!(r["object"], "text_completion");
    assert!(r["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert_eq!(r["choices"][0]["text"].as_str().unwrap().split_whitespace().count(), 6);
    assert_eq!(
        r["usage"],
        json!({"prompt_tokens":4,"completion_tokens":6,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":0}})
    );
    // Same tokens as the native API for the same prompt and settings.
    let native = engine
        .post_json("/completion", json!({"prompt":"Once upon a time","n_predict":6}))
        .await;
    assert_eq!(native["content"], r["choices"][0]["text"]);
}

#[tokio::test]
async fn streamed_completions_end_with_finish_reason_usage_and_done() {
    let engine = Engine::start(|_| {}).await;
    let body = json!({"prompt":"p q r","max_tokens":5,"stream":true,"stop":"zzz-never"});
    let events = SseReader::new(engine.post("/v1/completions", body).await)
        .collect()
        .await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = chunks[0]["id"].clone();
    assert!(chunks.iter().all(|c| c["id"] == id && c["object"] == "text_completion"));
    let (last, pieces) = chunks.split_last().unwrap();
    assert!(pieces.iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 5);
    let text: String = pieces
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    let whole = engine
        .post_json("/v1/completions", json!({"prompt":"p q r","max_tokens":5}))
        .await;
    assert_eq!(text, whole["choices"][0]["text"].as_str().unwrap());
}

#[tokio::test]
async fn chat_completions_answer_with_an_assistant_message() {
    let engine = Engine::start(|_| {}).await;
    let body = json!({"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":4});
    let r = engine.post_json("/v1/chat/completions", body).await;
    assert_eq!(r["object"], "chat.completion");
    assert!(r["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(r["choices"][0]["message"]["role"], "assistant");
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert_eq!(
        r["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        4
    );
    // "system: Be brief.\nuser: Hi\nassistant:" is 6 words.
    assert_eq!(r["usage"]["prompt_tokens"], 6);
    assert_eq!(r["usage"]["total_tokens"], 10);
}

#[tokio::test]
async fn streamed_chat_sends_role_then_deltas_then_finish_then_usage_then_done() {
    let engine = Engine::start(|_| {}).await;
    let messages = json!([{"role":"user","content":"Tell me a story"}]);
    let body = json!({"messages":messages,"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}});
    let events = SseReader::new(engine.post("/v1/chat/completions", body).await)
        .collect()
        .await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    let text: String = chunks[1..chunks.len() - 2]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    let whole = engine
        .post_json("/v1/chat/completions", json!({"messages":messages,"max_tokens":5}))
        .await;
    assert_eq!(text, whole["choices"][0]["message"]["content"].as_str().unwrap());
}

#[tokio::test]
async fn a_chat_stop_string_gives_finish_reason_stop() {
    let engine = Engine::start(|_| {}).await;
    let messages = json!([{"role":"user","content":"Go on"}]);
    let full = engine
        .post_json("/v1/chat/completions", json!({"messages":messages,"max_tokens":8}))
        .await;
    let full = full["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    let word = full.split_whitespace().nth(2).unwrap().to_owned();
    let r = engine
        .post_json(
            "/v1/chat/completions",
            json!({"messages":messages,"max_tokens":8,"stop":word}),
        )
        .await;
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    assert!(!r["choices"][0]["message"]["content"].as_str().unwrap().contains(&word));
}

#[tokio::test]
async fn unsupported_requests_get_openai_style_errors() {
    let engine = Engine::start(|_| {}).await;
    let response = engine
        .post(
            "/v1/chat/completions",
            json!({"messages":[{"role":"user","content":"x"}],"n":3}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 400);
    assert!(body["error"]["message"].as_str().unwrap().starts_with("n:"));
}

#[tokio::test]
async fn a_stop_string_on_the_last_allowed_token_still_gives_finish_reason_stop() {
    let engine = Engine::start(|_| {}).await;
    // Find a prompt whose 4th word appears nowhere earlier, so the stop matches on the last token.
    for n in 0..20 {
        let prompt = format!("Prompt number {n}");
        let full = engine
            .post_json("/v1/completions", json!({"prompt":prompt,"max_tokens":4}))
            .await;
        let words: Vec<String> = full["choices"][0]["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if words[..3].iter().any(|w| w.contains(words[3].as_str())) {
            continue;
        }
        for stream in [false, true] {
            let body = json!({"prompt":prompt,"max_tokens":4,"stop":[words[3]],"stream":stream});
            let finish = if stream {
                let events = SseReader::new(engine.post("/v1/completions", body).await)
                    .collect()
                    .await;
                let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
                last["choices"][0]["finish_reason"].clone()
            } else {
                engine.post_json("/v1/completions", body).await["choices"][0]["finish_reason"].clone()
            };
            assert_eq!(finish, "stop", "stream: {stream}");
        }
        let chat = json!({"messages":[{"role":"user","content":prompt}],"max_tokens":4});
        let full_chat = engine.post_json("/v1/chat/completions", chat.clone()).await;
        let last_word = full_chat["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned();
        let mut stopped = chat;
        stopped["stop"] = json!(last_word);
        let r = engine.post_json("/v1/chat/completions", stopped).await;
        let content = r["choices"][0]["message"]["content"].as_str().unwrap();
        if content.split_whitespace().count() == 3 {
            assert_eq!(r["choices"][0]["finish_reason"], "stop");
        }
        return;
    }
    panic!("no prompt with a fresh 4th word");
}
