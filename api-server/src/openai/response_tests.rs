//! Unit tests of the response encoders: chunk sequences, usage, finish reasons, error frames and
//! the non-streaming collector.

use llorch_manifests::task::{End, ErrorCode, FinishReason, Metrics, Started, TaskError, Token};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::*;
use crate::openai::reply::{Collected, Collector, Reply};

fn env(endpoint: Endpoint, include_usage: bool) -> Envelope {
    Envelope {
        created: 1_700_000_000,
        fingerprint: Some("mock@0.1.0".into()),
        include_usage,
        ..Envelope::new(endpoint, "task-1", "chat".into())
    }
}

fn token(t: &str, i: u32) -> TaskEvent {
    TaskEvent::Tokens(vec![Token { t: t.into(), i }])
}

/// The end of a reply of `tokens_out` tokens after a 5-token prompt; `length` at 3.
fn end(tokens_out: u32) -> TaskEvent {
    let finish_reason = if tokens_out >= 3 {
        FinishReason::Length
    } else {
        FinishReason::Stop
    };
    TaskEvent::End(End {
        tokens_out,
        decode_time_ms: 1,
        finish_reason,
        tokens_in: 5,
    })
}

fn text(t: &str) -> Reply {
    Reply {
        text: t.into(),
        ..Reply::default()
    }
}

/// Runs a whole stream through the encoder, as the SSE layer does.
fn encode(env: &Envelope, events: Vec<TaskEvent>) -> Vec<Value> {
    let mut frames = env.opening();
    for ev in &events {
        match frames_for(env, ev) {
            Step::More(f) => frames.extend(f),
            Step::Last(f) => {
                frames.extend(f);
                break;
            }
        }
    }
    frames
        .into_iter()
        .map(|f| serde_json::from_str(&f).unwrap_or(Value::String(f)))
        .collect()
}

fn started() -> TaskEvent {
    TaskEvent::Started(Started {
        queue_position: 0,
        predicted_start_ms: 0,
    })
}

#[test]
fn a_chat_stream_is_role_then_content_deltas_then_finish_then_done() {
    let e = env(Endpoint::Chat, false);
    let frames = encode(&e, vec![started(), token("Hel", 0), token("lo", 1), end(2)]);
    assert_eq!(frames.len(), 5, "{frames:?}");
    for f in &frames[..4] {
        assert_eq!(f["object"], "chat.completion.chunk");
        assert_eq!(f["id"], "chatcmpl-task-1");
        assert_eq!(f["created"], 1_700_000_000);
        assert_eq!(f["model"], "chat");
        assert_eq!(f["system_fingerprint"], "mock@0.1.0");
        assert!(f.get("usage").is_none(), "no usage field unless asked");
    }
    assert_eq!(
        frames[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(frames[0]["choices"][0]["finish_reason"].is_null());
    assert_eq!(frames[1]["choices"][0]["delta"], json!({"content": "Hel"}));
    assert_eq!(frames[2]["choices"][0]["delta"], json!({"content": "lo"}));
    assert_eq!(frames[3]["choices"][0]["delta"], json!({}));
    assert_eq!(frames[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(frames[4], "[DONE]");
}

#[test]
fn include_usage_adds_null_usage_to_chunks_and_a_usage_chunk_before_done() {
    let e = env(Endpoint::Chat, true);
    let frames = encode(&e, vec![token("a", 0), token("b", 1), token("c", 2), end(3)]);
    assert!(
        frames[..4]
            .iter()
            .all(|f| f["usage"].is_null() && f.get("usage").is_some())
    );
    assert_eq!(frames[4]["choices"][0]["finish_reason"], "length", "3 of max 3");
    assert_eq!(frames[5]["choices"], json!([]));
    assert_eq!(
        frames[5]["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})
    );
    assert_eq!(frames[6], "[DONE]");
    assert_eq!(frames.len(), 7);
}

#[test]
fn a_completions_stream_has_text_chunks_and_no_role_chunk() {
    let e = env(Endpoint::Completions, true);
    let metrics = TaskEvent::Metrics(Metrics {
        queue_depth: 1,
        queue_position: Some(0),
        predicted_start_ms: Some(10),
        on_time_probability: 1.0,
        kv_warmth: true,
        budget_tokens_remaining: None,
    });
    let frames = encode(&e, vec![started(), metrics, token("Once", 0), end(1)]);
    assert_eq!(frames[0]["object"], "text_completion");
    assert_eq!(frames[0]["id"], "cmpl-task-1");
    assert_eq!(frames[0]["choices"][0]["text"], "Once");
    assert_eq!(frames[1]["choices"][0]["text"], "");
    assert_eq!(frames[1]["choices"][0]["finish_reason"], "stop");
    assert_eq!(frames[2]["usage"]["completion_tokens"], 1);
    assert_eq!(frames[3], "[DONE]");
    assert_eq!(frames.len(), 4);
}

#[test]
fn an_error_after_the_stream_began_is_an_error_line_then_done_and_nothing_else() {
    let e = env(Endpoint::Chat, true);
    let err = TaskEvent::Error(TaskError {
        code: ErrorCode::WorkerReset,
        message: "the engine dropped the connection".into(),
        retriable: true,
        retry_after_ms: Some(0),
        policy_label: None,
        engine: Some("mock".into()),
    });
    let frames = encode(&e, vec![token("a", 0), err, token("late", 1), end(2)]);
    assert_eq!(frames.len(), 4, "role, token, error, [DONE]: {frames:?}");
    assert_eq!(frames[2]["error"]["code"], "WORKER_RESET");
    assert_eq!(frames[2]["error"]["type"], "server_error");
    assert_eq!(frames[2]["error"]["message"], "the engine dropped the connection");
    assert_eq!(frames[2]["error"]["retriable"], true);
    assert_eq!(frames[3], "[DONE]");
}

#[test]
fn a_whole_chat_reply_carries_the_message_usage_and_finish_reason() {
    let e = env(Endpoint::Chat, false);
    let v = e.completion(
        text("Hello"),
        &End {
            tokens_out: 2,
            decode_time_ms: 3,
            finish_reason: FinishReason::Stop,
            tokens_in: 5,
        },
    );
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    );
}

#[test]
fn a_whole_text_completion_says_the_engines_finish_reason() {
    let e = env(Endpoint::Completions, false);
    let v = e.completion(
        text("abc"),
        &End {
            tokens_out: 3,
            decode_time_ms: 3,
            finish_reason: FinishReason::Length,
            tokens_in: 5,
        },
    );
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "abc");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["total_tokens"], 8);
}

#[test]
fn the_collector_joins_tokens_until_end_or_error() {
    let mut c = Collector::default();
    assert_eq!(c.push(started()), None);
    assert_eq!(c.push(token("a", 0)), None);
    assert_eq!(c.push(token("b", 1)), None);
    match c.push(end(2)) {
        Some(Collected::Done(reply, end)) => assert_eq!((reply.text.as_str(), end.tokens_out), ("ab", 2)),
        other => panic!("{other:?}"),
    }
    let mut c = Collector::default();
    let err = TaskError {
        code: ErrorCode::DecodeTimeout,
        message: "stalled".into(),
        retriable: true,
        retry_after_ms: None,
        policy_label: None,
        engine: None,
    };
    assert_eq!(c.push(TaskEvent::Error(err.clone())), Some(Collected::Failed(err)));
}

#[test]
fn usage_saturates() {
    assert_eq!(Usage::new(u32::MAX, 1).total_tokens, u32::MAX);
}

fn raw(s: &str) -> Option<Box<RawValue>> {
    Some(RawValue::from_string(s.to_owned()).unwrap())
}

#[test]
fn tool_call_and_reasoning_deltas_are_relayed_unchanged_and_finish_with_the_engines_reason() {
    let e = env(Endpoint::Chat, false);
    let call = r#"[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]"#;
    let reasoning = TaskEvent::Delta {
        index: 0,
        delta: Box::new(crate::engine::Delta {
            reasoning: Some("think".into()),
            ..Default::default()
        }),
    };
    let tool = TaskEvent::Delta {
        index: 0,
        delta: Box::new(crate::engine::Delta {
            tool_calls: raw(call),
            ..Default::default()
        }),
    };
    let finish = TaskEvent::End(End {
        tokens_out: 4,
        decode_time_ms: 1,
        finish_reason: FinishReason::ToolCalls,
        tokens_in: 9,
    });
    let frames = encode(&e, vec![reasoning, tool, finish]);
    assert_eq!(frames[1]["choices"][0]["delta"], json!({"reasoning_content": "think"}));
    assert_eq!(
        frames[2]["choices"][0]["delta"]["tool_calls"],
        serde_json::from_str::<Value>(call).unwrap()
    );
    assert_eq!(frames[3]["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn logprobs_ride_on_their_tokens_chunk() {
    let e = env(Endpoint::Completions, false);
    let lp = r#"{"tokens":["a"],"token_logprobs":[-0.5],"top_logprobs":[{"a":-0.5}],"text_offset":[0]}"#;
    let ev = TaskEvent::Delta {
        index: 0,
        delta: Box::new(crate::engine::Delta {
            content: Some("a".into()),
            logprobs: raw(lp),
            ..Default::default()
        }),
    };
    let frames = encode(&e, vec![ev, end(1)]);
    assert_eq!(frames[0]["choices"][0]["text"], "a");
    assert_eq!(
        frames[0]["choices"][0]["logprobs"],
        serde_json::from_str::<Value>(lp).unwrap()
    );
}
