//! End-to-end fidelity with a REAL engine: llama.cpp's `llama-server` (image
//! `llama-orch/llama-server:dev`, with `--jinja` so it takes `tools`) serving SmolLM2-135M with
//! one slot, managed by `llama-orchd` on real Docker. For the same requests — chat with and
//! without `tools`, completions; whole and streamed; seed fixed — llama-orch's answer equals
//! the engine's own answer (asked directly at its endpoint) field for field: text, `tool_calls`,
//! `finish_reason`, `usage`. And `response_format` with a JSON schema returns JSON that
//! validates, because the engine constrains it and llama-orch relays the field.
//!
//! The 135M model does not produce tool calls through llama-server's templates, so this proves
//! fidelity; the tool-call path itself is proven against the mock in `openai_agent.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, pool_ready};
use llama_orch_e2e::llama_server::{CTX_MAX, GGUF_SHA256, engine_manifest, require_fixtures};
use serde_json::{Value, json};

const READY_WITHIN: Duration = Duration::from_secs(60);

fn stack(model: &std::path::Path) -> String {
    let engine = engine_manifest().replacen("\"--slots\"]", "\"--slots\", \"--jinja\"]", 1);
    assert!(engine.contains("--jinja"), "{engine}");
    format!(
        "{engine}---\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {{name: smollm2}}\nspec:\n  ref: file:{}\n  digest: sha256:{GGUF_SHA256}\n  ctxMax: {CTX_MAX}\n\
         ---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {{name: smol}}\nspec:\n  engine: llamacpp\n  model: smollm2\n  replicas: 1\n  \
         slotsPerReplica: 1\n  ctxSize: 2048\n",
        model.display()
    )
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// The parts compared: text, tool calls, finish reason, usage counts.
fn answer(url: &str, body: &Value) -> Value {
    let stream = body["stream"].as_bool().unwrap_or(false);
    let r = http()
        .post(url)
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = r.status();
    let text = r.text().unwrap();
    assert!(status.is_success(), "POST {url}: {status}: {text}");
    let usage = |u: &Value| json!([u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]]);
    if !stream {
        let v: Value = serde_json::from_str(&text).unwrap();
        let c = &v["choices"][0];
        let content = c["message"]["content"].clone();
        let content = if content.is_null() { c["text"].clone() } else { content };
        let calls = c["message"]["tool_calls"].clone();
        return json!({"text": content, "tool_calls": calls, "finish_reason": c["finish_reason"], "usage": usage(&v["usage"])});
    }
    let (mut content, mut finish, mut use_) = (String::new(), Value::Null, Value::Null);
    let mut calls: Vec<Value> = Vec::new();
    for data in text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
    {
        let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
        if !v["usage"].is_null() {
            use_ = usage(&v["usage"]);
        }
        let Some(c) = v["choices"].get(0) else { continue };
        content.push_str(c["delta"]["content"].as_str().or(c["text"].as_str()).unwrap_or(""));
        if let Some(parts) = c["delta"]["tool_calls"].as_array() {
            calls.extend(parts.iter().cloned());
        }
        if !c["finish_reason"].is_null() {
            finish = c["finish_reason"].clone();
        }
    }
    json!({"text": content, "tool_calls": calls, "finish_reason": finish, "usage": use_})
}

#[test]
fn llama_orch_answers_exactly_as_the_real_engine_does_and_json_schemas_hold() {
    let rt = Runtime::docker();
    let model = require_fixtures(&rt);
    let d = Daemon::start(rt);
    d.write_manifest("smol.yaml", &stack(&model));
    let s = d.wait_for("pool smol Ready", READY_WITHIN, |s| pool_ready(s, "smol", 1));
    let engine = s.serving("smol").unwrap().replicas[0].endpoint.as_str().to_owned();
    let weather = json!([{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let chat = json!({"messages": [{"role": "user", "content": "Tell me a short story about a cat."}],
        "max_tokens": 16, "seed": 7, "temperature": 0.8});
    let with_tools = {
        let mut b = chat.clone();
        b["tools"] = weather;
        b
    };
    let completion = json!({"prompt": "Once upon a time", "max_tokens": 16, "seed": 7, "temperature": 0.8});
    let cases = [
        ("chat", "/v1/chat/completions", chat),
        ("chat with tools", "/v1/chat/completions", with_tools),
        ("completions", "/v1/completions", completion),
    ];
    for (what, path, body) in cases {
        for stream in [false, true] {
            let mut body = body.clone();
            if stream {
                body["stream"] = json!(true);
                body["stream_options"] = json!({"include_usage": true});
            }
            let direct = answer(&format!("{engine}{path}"), &body);
            body["model"] = json!("smol");
            let through = answer(&format!("{}{path}", d.url), &body);
            eprintln!("{what} (stream {stream}): {through}");
            assert!(!through["text"].as_str().unwrap_or("").is_empty(), "{what}: {through}");
            assert_eq!(
                through, direct,
                "{what}, stream {stream}: llama-orch vs the engine directly"
            );
        }
    }

    let schema = json!({"type": "object", "additionalProperties": false, "required": ["name", "age"],
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 99}}});
    let body = json!({"model": "smol", "max_tokens": 64, "seed": 7,
        "messages": [{"role": "user", "content": "Describe a pet as JSON."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "pet", "schema": schema}}});
    let v = answer(&format!("{}/v1/chat/completions", d.url), &body);
    let pet: Value =
        serde_json::from_str(v["text"].as_str().unwrap()).unwrap_or_else(|e| panic!("not JSON ({e}): {v}"));
    let obj = pet.as_object().unwrap_or_else(|| panic!("not an object: {pet}"));
    assert_eq!(obj.len(), 2, "{pet}");
    assert!(pet["name"].as_str().is_some_and(|n| n.chars().count() <= 12), "{pet}");
    assert!(pet["age"].as_u64().is_some_and(|a| a <= 99), "{pet}");
}
