//! A whole (non-streaming) reply, rebuilt from a task's events: engines are always asked to
//! stream, so `tool_calls` arrive as partial deltas and `logprobs` per chunk. [`Collector`]
//! joins them the way OpenAI's SDKs join a stream: text and reasoning concatenated, each tool
//! call's `arguments` appended by `index`, and each `logprobs` list extended.

use llorch_manifests::task::{End, TaskError};
use serde_json::{Map, Value, json};

use super::response::raw;
use crate::engine::Delta;
use crate::tasks::task::TaskEvent;

/// A collected reply's parts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    /// The text.
    pub text: String,
    /// Reasoning text, when the engine sent some.
    pub reasoning: Option<String>,
    /// Whole tool calls, in `index` order.
    pub tool_calls: Vec<Value>,
    /// The choice's `logprobs` (its lists joined), or null.
    pub logprobs: Value,
    /// An embeddings task's answer, as the engine gave it.
    pub embeddings: Option<Value>,
}

impl Reply {
    /// The chat `message`: `content` is null when the reply is only tool calls.
    pub fn message(&self) -> Value {
        let content = if self.text.is_empty() && !self.tool_calls.is_empty() {
            Value::Null
        } else {
            json!(self.text)
        };
        let mut m = json!({"role": "assistant", "content": content});
        if let Some(r) = &self.reasoning {
            m["reasoning_content"] = json!(r);
        }
        if !self.tool_calls.is_empty() {
            m["tool_calls"] = json!(self.tool_calls);
        }
        m
    }

    fn add(&mut self, d: &Delta) {
        if let Some(c) = &d.content {
            self.text.push_str(c);
        }
        if let Some(r) = &d.reasoning {
            self.reasoning.get_or_insert_with(String::new).push_str(r);
        }
        if let Some(Value::Array(calls)) = d.tool_calls.as_deref().map(raw) {
            calls.iter().for_each(|c| merge_call(&mut self.tool_calls, c));
        }
        if let Some(lp) = d.logprobs.as_deref().map(raw) {
            merge_logprobs(&mut self.logprobs, lp);
        }
    }
}

/// Adds one partial call (`{"index", "id"?, "type"?, "function": {"name"?, "arguments"?}}`)
/// to the whole calls: fields set once are kept, `arguments` fragments are appended.
fn merge_call(calls: &mut Vec<Value>, part: &Value) {
    let index = part.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
    while calls.len() <= index {
        calls.push(json!({"id": null, "type": "function", "function": {"name": null, "arguments": ""}}));
    }
    let call = &mut calls[index];
    for key in ["id", "type"] {
        if let Some(v) = part.get(key).filter(|v| !v.is_null()) {
            call[key] = v.clone();
        }
    }
    let Some(f) = part.get("function") else { return };
    if let Some(name) = f.get("name").filter(|v| !v.is_null()) {
        call["function"]["name"] = name.clone();
    }
    if let Some(args) = f.get("arguments").and_then(Value::as_str) {
        let joined = format!("{}{args}", call["function"]["arguments"].as_str().unwrap_or(""));
        call["function"]["arguments"] = json!(joined);
    }
}

/// Joins one chunk's `logprobs` into the reply's: lists under the same key are extended
/// (chat's `content`, the legacy `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`),
/// anything else is the latest.
fn merge_logprobs(acc: &mut Value, chunk: Value) {
    let Value::Object(chunk) = chunk else { return };
    if !acc.is_object() {
        *acc = Value::Object(Map::new());
    }
    let Value::Object(acc) = acc else { return };
    for (key, value) in chunk {
        match (acc.get_mut(&key), value) {
            (Some(Value::Array(have)), Value::Array(more)) => have.extend(more),
            (_, value) => {
                acc.insert(key, value);
            }
        }
    }
}

/// A non-streaming reply being collected.
#[derive(Debug, Default)]
pub struct Collector {
    reply: Reply,
}

/// How a collected reply ended.
#[derive(Debug, PartialEq)]
pub enum Collected {
    /// Completed: the reply and the `end` event.
    Done(Reply, End),
    /// Failed after admission.
    Failed(TaskError),
}

impl Collector {
    /// Takes one event; `Some` once the reply is over.
    pub fn push(&mut self, ev: TaskEvent) -> Option<Collected> {
        match ev {
            TaskEvent::Started(_) | TaskEvent::Metrics(_) => None,
            TaskEvent::Tokens(tokens) => {
                for t in tokens {
                    self.reply.text.push_str(&t.t);
                }
                None
            }
            TaskEvent::Delta { delta, .. } => {
                self.reply.add(&delta);
                None
            }
            TaskEvent::Embeddings(answer) => {
                self.reply.embeddings = Some(*answer);
                None
            }
            TaskEvent::End(end) => Some(Collected::Done(std::mem::take(&mut self.reply), end)),
            TaskEvent::Error(e) => Some(Collected::Failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    fn rawv(s: &str) -> Option<Box<RawValue>> {
        Some(RawValue::from_string(s.to_owned()).unwrap())
    }

    #[test]
    fn tool_call_deltas_join_into_whole_calls_by_index() {
        let mut r = Reply::default();
        r.add(&Delta {
            tool_calls: rawv(
                r#"[{"index":0,"id":"call_a","type":"function","function":{"name":"get","arguments":""}}]"#,
            ),
            ..Delta::default()
        });
        r.add(&Delta {
            tool_calls: rawv(r#"[{"index":0,"function":{"arguments":"{\"city\":"}}]"#),
            ..Delta::default()
        });
        r.add(&Delta {
            tool_calls: rawv(
                r#"[{"index":0,"function":{"arguments":"\"Oslo\"}"}},{"index":1,"id":"call_b","function":{"name":"put","arguments":"{}"}}]"#,
            ),
            ..Delta::default()
        });
        assert_eq!(
            r.message(),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "put", "arguments": "{}"}}
            ]})
        );
    }

    #[test]
    fn reasoning_and_text_are_joined_and_logprob_lists_extended() {
        let mut r = Reply::default();
        r.add(&Delta {
            reasoning: Some("hm".into()),
            ..Delta::default()
        });
        for (t, lp) in [("a", -0.5), ("b", -0.25)] {
            r.add(&Delta {
                content: Some(t.into()),
                logprobs: rawv(&format!(r#"{{"content":[{{"token":"{t}","logprob":{lp}}}]}}"#)),
                ..Delta::default()
            });
        }
        assert_eq!(
            r.message(),
            json!({"role": "assistant", "content": "ab", "reasoning_content": "hm"})
        );
        assert_eq!(
            r.logprobs,
            json!({"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -0.25}]})
        );
    }
}
