//! Chat tool calls, tool results and reasoning, whole and streamed, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Engine, SseReader};
use serde_json::{Value, json};

fn weather_request() -> Value {
    json!({
        "model": "m",
        "messages": [{"role":"user","content":"What is the weather in Paris?"}],
        "tools": [
            {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}},
            {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
                "properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city","days"]}}}
        ],
        "tool_choice": {"type":"function","function":{"name":"get_weather"}},
    })
}

/// The JSON chunks of a streamed chat reply, checking it ends with `[DONE]`.
async fn chunks(engine: &Engine, body: Value) -> Vec<Value> {
    let events = SseReader::new(engine.post("/v1/chat/completions", body).await)
        .collect()
        .await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test]
async fn a_chat_with_tools_answers_with_one_call_to_the_chosen_function() {
    let engine = Engine::start(|_| {}).await;
    let r = engine.post_json("/v1/chat/completions", weather_request()).await;
    let choice = &r["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let message = &choice["message"];
    assert_eq!(
        (message["role"].as_str(), message["content"].is_null()),
        (Some("assistant"), true)
    );
    let call = &message["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city":"mock","days":1}));
    assert!(r["usage"]["completion_tokens"].as_u64().unwrap() >= 1);
    // Deterministic: the same request gets the same id.
    let again = engine.post_json("/v1/chat/completions", weather_request()).await;
    assert_eq!(again["choices"][0]["message"]["tool_calls"][0]["id"], call["id"]);
}

#[tokio::test]
async fn a_streamed_tool_call_sends_header_then_argument_fragments_then_finish() {
    let engine = Engine::start(|_| {}).await;
    let mut body = weather_request();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = chunks(&engine, body).await;
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let header = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(header["index"], 0);
    assert!(header["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(header["type"], "function");
    assert_eq!(header["function"], json!({"name":"get_weather","arguments":""}));
    let (usage, rest) = chunks.split_last().unwrap();
    let (finish, fragments) = rest[2..].split_last().unwrap();
    assert!(fragments.len() >= 2);
    let arguments: String = fragments
        .iter()
        .map(|c| {
            let call = &c["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(call["index"], 0);
            call["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    let whole = engine.post_json("/v1/chat/completions", weather_request()).await;
    assert_eq!(
        arguments,
        whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    );
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(usage["usage"]["completion_tokens"], fragments.len());
}

#[tokio::test]
async fn tool_choice_none_gives_text() {
    let engine = Engine::start(|_| {}).await;
    let mut body = weather_request();
    body["tool_choice"] = json!("none");
    body["max_tokens"] = json!(3);
    let r = engine.post_json("/v1/chat/completions", body).await;
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert!(r["choices"][0]["message"]["content"].is_string());
}

fn after_tool_request(max_tokens: u32) -> Value {
    json!({
        "messages": [
            {"role":"user","content":"What is the weather in Paris?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny, 21 C"}
        ],
        "tools": weather_request()["tools"].clone(),
        "max_tokens": max_tokens,
    })
}

#[tokio::test]
async fn a_reply_to_a_tool_message_quotes_the_result_then_generates() {
    let engine = Engine::start(|_| {}).await;
    let r = engine.post_json("/v1/chat/completions", after_tool_request(3)).await;
    let content = r["choices"][0]["message"]["content"].as_str().unwrap();
    let generated = content.strip_prefix("Tool result: sunny, 21 C").unwrap();
    assert_eq!(
        generated.split_whitespace().count(),
        3,
        "max_tokens bounds the generated part"
    );
    assert_eq!(r["usage"]["completion_tokens"], 3, "the quoted result is not counted");
    assert_eq!(r["choices"][0]["finish_reason"], "length");

    let mut body = after_tool_request(3);
    body["stream"] = json!(true);
    let chunks = chunks(&engine, body).await;
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, content);
}

#[tokio::test]
async fn reasoning_comes_first_and_counts_as_completion_tokens() {
    let engine = Engine::start(|_| {}).await;
    let body = json!({"messages":[{"role":"user","content":"Think"}],"max_tokens":4,"reasoning_effort":"low"});
    let r = engine.post_json("/v1/chat/completions", body.clone()).await;
    let message = &r["choices"][0]["message"];
    let reasoning = message["reasoning_content"].as_str().unwrap();
    assert_eq!(reasoning.split_whitespace().count(), 3);
    assert_eq!(message["content"].as_str().unwrap().split_whitespace().count(), 4);
    assert_eq!(r["usage"]["completion_tokens"], 7);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let chunks = chunks(&engine, streamed).await;
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["delta"])
        .collect();
    let pieces: Vec<&str> = deltas[1..4]
        .iter()
        .map(|d| d["reasoning_content"].as_str().unwrap())
        .collect();
    assert_eq!(pieces.concat(), reasoning);
    assert!(deltas[1..4].iter().all(|d| d.get("content").is_none()));
    assert!(deltas[4]["content"].is_string(), "content only after the reasoning");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 7);

    let plain = engine
        .post_json(
            "/v1/chat/completions",
            json!({"messages":[{"role":"user","content":"Think"}],"max_tokens":4}),
        )
        .await;
    assert!(plain["choices"][0]["message"].get("reasoning_content").is_none());
}
