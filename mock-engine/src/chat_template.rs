//! The mock's chat template: how a list of chat messages becomes one prompt text.
//!
//! `"{role}: {content}\n"` per message, then `"assistant:"`. An assistant message's tool calls
//! are rendered after its content as ` [tool_call {name} {arguments}]`. Chat replies,
//! `/apply-template` and the prompt token count all use this one rendering. Pure: no I/O.

use serde::Deserialize;
use serde_json::Value;

use crate::api_error::ApiError;

/// One message of a chat request. Fields the template does not use (`name`, …) are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Value>,
    /// An assistant message's calls: `[{"id","type":"function","function":{"name","arguments"}}]`.
    #[serde(default)]
    pub tool_calls: Option<Value>,
    /// A `tool` message's answer to this call id.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// The whole conversation as the prompt text the mock "model" reads.
pub fn render(messages: &[ChatMessage]) -> Result<String, ApiError> {
    let mut prompt = String::new();
    for (i, message) in messages.iter().enumerate() {
        let content = content_text(i, message)?;
        prompt.push_str(&message.role);
        prompt.push_str(": ");
        prompt.push_str(&content);
        for (name, arguments) in tool_calls(i, message)? {
            prompt.push_str(&format!(" [tool_call {name} {arguments}]"));
        }
        prompt.push('\n');
    }
    prompt.push_str("assistant:");
    Ok(prompt)
}

/// A message's text: its string content, or its text parts joined; empty when null or absent.
/// `index` is the message's place in the request, for error messages.
pub fn content_text(index: usize, message: &ChatMessage) -> Result<String, ApiError> {
    match &message.content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => text_parts(index, parts),
        Some(_) => Err(ApiError::invalid_request(format!(
            "messages[{index}].content: must be a string or an array of text parts"
        ))),
    }
}

fn text_parts(message: usize, parts: &[Value]) -> Result<String, ApiError> {
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
            (Some("text"), Some(text)) => Ok(text),
            _ => Err(ApiError::invalid_request(format!(
                "messages[{message}].content[{j}]: only {{\"type\":\"text\",\"text\":\"…\"}} parts are supported by mock-engine"
            ))),
        })
        .collect()
}

/// (name, arguments) of each call an assistant message carries.
fn tool_calls(index: usize, message: &ChatMessage) -> Result<Vec<(String, String)>, ApiError> {
    let calls = match &message.tool_calls {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(ApiError::invalid_request(format!(
                "messages[{index}].tool_calls: must be an array"
            )));
        }
    };
    calls
        .iter()
        .enumerate()
        .map(|(j, call)| {
            let function = call.get("function");
            let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
            let arguments = function.and_then(|f| f.get("arguments"));
            match (name, arguments) {
                (Some(name), Some(Value::String(arguments))) => Ok((name.to_owned(), arguments.clone())),
                (Some(name), Some(arguments)) => Ok((name.to_owned(), arguments.to_string())),
                (Some(name), None) => Ok((name.to_owned(), String::new())),
                (None, _) => Err(ApiError::invalid_request(format!(
                    "messages[{index}].tool_calls[{j}].function.name: is required"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(value: Value) -> Vec<ChatMessage> {
        serde_json::from_value(value).unwrap_or_default()
    }

    #[test]
    fn messages_render_as_role_colon_content_lines_then_assistant() {
        let m = messages(serde_json::json!([
            {"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":" there"}]}
        ]));
        assert_eq!(
            render(&m).ok().as_deref(),
            Some("system: Be brief.\nuser: Hi there\nassistant:")
        );
    }

    #[test]
    fn tool_calls_and_tool_answers_render_in_the_prompt() {
        let m = messages(serde_json::json!([
            {"role":"user","content":"Weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"get_weather","arguments":"{\"city\":\"mock\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"}
        ]));
        assert_eq!(
            render(&m).ok().as_deref(),
            Some("user: Weather?\nassistant:  [tool_call get_weather {\"city\":\"mock\"}]\ntool: sunny\nassistant:")
        );
    }
}
