//! Unit tests of the request mapping: model resolution, field mapping, refusals, priority and
//! the default `max_tokens`.

use llorch_manifests::task::{ChatMessage, ErrorCode, Priority};
use serde_json::{Value, json};

use super::*;

fn body(v: Value) -> OpenAiRequest {
    serde_json::from_value(v).unwrap()
}

fn chat(v: Value) -> Result<Mapped, ApiError> {
    map_request(Endpoint::Chat, body(v), Target::Pool("chat".into()), None)
}

fn param_of(e: ApiError) -> Option<String> {
    assert_eq!(e.code(), ErrorCode::InvalidParams);
    assert_eq!(e.http_status().as_u16(), 400);
    e.field().map(String::from)
}

#[test]
fn model_names_a_pool_first_then_a_model_and_absent_means_the_only_pool() {
    let pools = ["chat", "batch"];
    assert_eq!(
        resolve_target(Some("chat"), pools.iter().copied()),
        Target::Pool("chat".into())
    );
    assert_eq!(
        resolve_target(Some("smollm2"), pools.iter().copied()),
        Target::Model("smollm2".into())
    );
    assert_eq!(resolve_target(None, pools.iter().copied()), Target::Any);
    assert_eq!(resolve_target(Some("  "), pools.iter().copied()), Target::Any);

    let m = map_request(
        Endpoint::Chat,
        body(json!({"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]})),
        Target::Model("smollm2".into()),
        None,
    )
    .unwrap();
    assert_eq!((m.task.pool, m.task.model), (None, Some("smollm2".to_string())));
    assert_eq!(m.model.as_deref(), Some("smollm2"));
}

#[test]
fn a_full_chat_body_maps_every_sampling_field_and_ignores_unknown_ones() {
    let m = chat(json!({
        "model": "chat",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "x"},
            {"role": "assistant", "content": null, "tool_calls": []},
        ],
        "max_completion_tokens": 7, "max_tokens": 99,
        "temperature": 0.5, "top_p": 0.9, "seed": 42, "stop": "\n",
        "stream": true, "stream_options": {"include_usage": true},
        "user": "u-1", "logprobs": false, "frequency_penalty": 0, "n": 1,
        "session_id": "s-1",
    }))
    .unwrap();
    assert_eq!(m.task.pool.as_deref(), Some("chat"));
    assert_eq!(
        m.task.messages.unwrap(),
        vec![
            ChatMessage {
                role: "system".into(),
                content: "be brief".into()
            },
            ChatMessage {
                role: "user".into(),
                content: "a\nb".into()
            },
            ChatMessage {
                role: "assistant".into(),
                content: String::new()
            },
        ]
    );
    assert_eq!(m.task.prompt, None);
    assert_eq!(m.task.max_tokens, 7, "max_completion_tokens wins");
    assert_eq!(
        (m.task.temperature, m.task.top_p, m.task.seed),
        (Some(0.5), Some(0.9), Some(42))
    );
    assert_eq!(m.task.stop, vec!["\n".to_string()]);
    assert_eq!(m.task.session_id.as_deref(), Some("s-1"));
    assert!(m.stream && m.include_usage);
}

#[test]
fn completions_take_a_string_prompt_or_a_list_of_one_and_stop_lists() {
    let map = |v| map_request(Endpoint::Completions, body(v), Target::Any, None);
    let m = map(json!({"prompt": "Once upon", "max_tokens": 5, "stop": ["a", "b"]})).unwrap();
    assert_eq!(m.task.prompt.as_deref(), Some("Once upon"));
    assert_eq!(m.task.messages, None);
    assert_eq!(m.task.stop, vec!["a".to_string(), "b".to_string()]);
    assert!(!m.stream && !m.include_usage);
    assert_eq!(m.model, None);
    let m = map(json!({"prompt": ["only one"]})).unwrap();
    assert_eq!(m.task.prompt.as_deref(), Some("only one"));
    assert_eq!(
        param_of(map(json!({"prompt": ["a", "b"]})).unwrap_err()).as_deref(),
        Some("prompt")
    );
    assert_eq!(
        param_of(map(json!({"prompt": [1, 2, 3]})).unwrap_err()).as_deref(),
        Some("prompt")
    );
    assert_eq!(param_of(map(json!({})).unwrap_err()).as_deref(), Some("prompt"));
    assert_eq!(
        param_of(map(json!({"prompt": "x", "stop": [1]})).unwrap_err()).as_deref(),
        Some("stop")
    );
}

#[test]
fn requests_the_data_plane_cannot_serve_are_refused_with_the_field_named() {
    let cases = [
        (json!({"messages": []}), "messages"),
        (json!({"prompt": "x"}), "messages"),
        (json!({"messages": [{"role": "user", "content": "x"}], "n": 2}), "n"),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "seed": -1}),
            "seed",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "priority": "urgent"}),
            "priority",
        ),
    ];
    for (v, param) in cases {
        let e = chat(v.clone()).unwrap_err();
        assert_eq!(param_of(e).as_deref(), Some(param), "{v}");
    }
}

#[test]
fn priority_comes_from_the_body_field_then_the_header_then_defaults_to_interactive() {
    let one = || body(json!({"messages": [{"role": "user", "content": "x"}]}));
    let with = |b, h| map_request(Endpoint::Chat, b, Target::Any, h).map(|m| m.task.priority);
    assert_eq!(with(one(), None).unwrap(), Priority::Interactive);
    assert_eq!(with(one(), Some("batch")).unwrap(), Priority::Batch);
    assert_eq!(with(one(), Some(" Batch ")).unwrap(), Priority::Batch);
    let mut b = one();
    b.priority = Some("interactive".into());
    assert_eq!(with(b, Some("batch")).unwrap(), Priority::Interactive, "body wins");
    let e = with(one(), Some("later")).unwrap_err();
    assert!(e.message().contains("X-Priority"), "{}", e.message());
}

#[test]
fn the_default_max_tokens_is_256_capped_by_what_the_context_leaves() {
    let mut m = chat(json!({"messages": [{"role": "user", "content": "x"}]})).unwrap();
    assert_eq!(m.task.max_tokens, 0, "unset until the pool is known");
    m.fill_default_max_tokens(4096, 10);
    assert_eq!(m.task.max_tokens, DEFAULT_MAX_TOKENS);

    let mut m = chat(json!({"messages": [{"role": "user", "content": "x"}]})).unwrap();
    m.fill_default_max_tokens(100, 60);
    assert_eq!(m.task.max_tokens, 40);

    let mut m = chat(json!({"messages": [{"role": "user", "content": "x"}]})).unwrap();
    m.fill_default_max_tokens(100, 500);
    assert_eq!(m.task.max_tokens, 1, "left for validation to refuse with its message");

    let mut m = chat(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 9})).unwrap();
    m.fill_default_max_tokens(100, 95);
    assert_eq!(m.task.max_tokens, 9, "an explicit value is kept");
}
