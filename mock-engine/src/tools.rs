//! Tool calls: when a chat request offers `tools` (and `tool_choice` is not `"none"`) and its
//! last message is the user's, the mock answers with one call to the function `tool_choice`
//! names, else to the first tool, with every required parameter set to a placeholder of its
//! declared type. Decides the call and renders its JSON; it does not generate text or do I/O.

use serde_json::{Map, Value, json};

use crate::api_error::ApiError;
use crate::tokens::{fnv1a64, splitmix64};

/// The longest argument fragment a stream sends in one chunk.
const FRAGMENT_CHARS: usize = 8;

/// The one call a reply makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// `call_` + 24 hex digits from the seed, the prompt and the function name.
    pub id: String,
    pub name: String,
    /// A JSON object, as a string (OpenAI's `function.arguments`).
    pub arguments: String,
}

/// The call to make, or `None` when the request's tools do not ask for one.
/// `tools` and `tool_choice` are the request's fields; `seed` and `prompt` make the id.
pub fn plan(
    tools: Option<&Value>,
    tool_choice: Option<&Value>,
    seed: u64,
    prompt: &str,
) -> Result<Option<ToolCall>, ApiError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(tools)) if tools.is_empty() => return Ok(None),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(ApiError::invalid_request("tools: must be an array of tools")),
    };
    if tool_choice.and_then(Value::as_str) == Some("none") {
        return Ok(None);
    }
    for (i, tool) in tools.iter().enumerate() {
        if function_name(tool).is_none() {
            return Err(ApiError::invalid_request(format!(
                "tools[{i}].function.name: is required and must be a string"
            )));
        }
    }
    let wanted = tool_choice
        .and_then(|choice| choice.get("function"))
        .and_then(|function| function.get("name"))
        .and_then(Value::as_str);
    let tool = match wanted {
        Some(name) => tools
            .iter()
            .find(|tool| function_name(tool) == Some(name))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "tool_choice.function.name: '{name}' is not one of the request's tools"
                ))
            })?,
        None => &tools[0],
    };
    let name = function_name(tool).unwrap_or_default().to_owned();
    let arguments = placeholder_arguments(tool.get("function").and_then(|f| f.get("parameters")));
    Ok(Some(ToolCall {
        id: call_id(seed, prompt, &name),
        name,
        arguments,
    }))
}

fn function_name(tool: &Value) -> Option<&str> {
    tool.get("function")?.get("name")?.as_str()
}

/// A JSON object with each `required` property set by its declared `type`.
fn placeholder_arguments(parameters: Option<&Value>) -> String {
    let properties = parameters.and_then(|p| p.get("properties"));
    let required = parameters
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut arguments = Map::new();
    for name in required.iter().filter_map(Value::as_str) {
        let declared = properties.and_then(|p| p.get(name)).and_then(|p| p.get("type"));
        // `"type": ["string", "null"]` counts as its first type.
        let declared = match declared {
            Some(Value::Array(types)) => types.first().and_then(Value::as_str),
            other => other.and_then(Value::as_str),
        };
        let value = match declared {
            Some("string") => json!("mock"),
            Some("integer" | "number") => json!(1),
            Some("boolean") => json!(true),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => Value::Null,
        };
        arguments.insert(name.to_owned(), value);
    }
    Value::Object(arguments).to_string()
}

fn call_id(seed: u64, prompt: &str, name: &str) -> String {
    let base = fnv1a64(format!("tool-call\0{prompt}\0{name}").as_bytes()) ^ seed;
    let a = splitmix64(base);
    let b = splitmix64(a);
    format!("call_{a:016x}{:08x}", b >> 32)
}

impl ToolCall {
    /// The arguments in the pieces a stream sends: at least two, each at most
    /// [`FRAGMENT_CHARS`] characters.
    pub fn fragments(&self) -> Vec<String> {
        let chars: Vec<char> = self.arguments.chars().collect();
        let size = chars.len().div_ceil(2).clamp(1, FRAGMENT_CHARS);
        chars.chunks(size).map(|chunk| chunk.iter().collect()).collect()
    }

    /// Tokens the call costs: one per fragment.
    pub fn completion_tokens(&self) -> u32 {
        u32::try_from(self.fragments().len()).unwrap_or(u32::MAX).max(1)
    }

    /// The non-streamed `message`.
    pub fn message_json(&self) -> Value {
        json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": self.id,
                "type": "function",
                "function": { "name": self.name, "arguments": self.arguments },
            }],
        })
    }

    /// The streamed `delta`s: the call's id and name with empty arguments, then one per fragment.
    pub fn deltas(&self) -> Vec<Value> {
        let header = json!({ "tool_calls": [{
            "index": 0,
            "id": self.id,
            "type": "function",
            "function": { "name": self.name, "arguments": "" },
        }]});
        std::iter::once(header)
            .chain(
                self.fragments()
                    .into_iter()
                    .map(|fragment| json!({ "tool_calls": [{ "index": 0, "function": { "arguments": fragment } }] })),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather_tools() -> Value {
        json!([
            {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}},
            {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
                "properties":{"city":{"type":"string"},"days":{"type":"integer"},"metric":{"type":"boolean"},
                    "tags":{"type":"array"},"extra":{"type":"object"},"any":{},"note":{"type":"string"}},
                "required":["city","days","metric","tags","extra","any"]}}}
        ])
    }

    fn call(choice: Option<Value>) -> Option<ToolCall> {
        plan(Some(&weather_tools()), choice.as_ref(), 1, "user: hi\nassistant:")
            .ok()
            .flatten()
    }

    #[test]
    fn the_first_tool_is_called_unless_tool_choice_names_one() {
        assert_eq!(call(None).map(|c| c.name).as_deref(), Some("get_time"));
        assert_eq!(call(Some(json!("auto"))).map(|c| c.name).as_deref(), Some("get_time"));
        let named = call(Some(json!({"type":"function","function":{"name":"get_weather"}})));
        assert_eq!(named.map(|c| c.name).as_deref(), Some("get_weather"));
    }

    #[test]
    fn tool_choice_none_or_no_tools_means_no_call() {
        assert_eq!(call(Some(json!("none"))), None);
        assert_eq!(plan(Some(&json!([])), None, 1, "p").ok().flatten(), None);
        assert_eq!(plan(None, None, 1, "p").ok().flatten(), None);
    }

    #[test]
    fn required_parameters_get_placeholders_of_their_type() {
        let c =
            call(Some(json!({"type":"function","function":{"name":"get_weather"}}))).unwrap_or_else(|| unreachable!());
        let arguments: Value = serde_json::from_str(&c.arguments).unwrap_or_default();
        assert_eq!(
            arguments,
            json!({"city":"mock","days":1,"metric":true,"tags":[],"extra":{},"any":null})
        );
    }

    #[test]
    fn ids_are_deterministic_and_depend_on_the_seed() {
        let a = call(None).map(|c| c.id).unwrap_or_default();
        assert_eq!(Some(a.clone()), call(None).map(|c| c.id));
        assert!(a.starts_with("call_") && a.len() == 29, "{a}");
        let other_seed = plan(Some(&weather_tools()), None, 2, "user: hi\nassistant:")
            .ok()
            .flatten();
        assert_ne!(Some(a), other_seed.map(|c| c.id));
    }

    #[test]
    fn arguments_stream_in_at_least_two_fragments_that_join_to_the_whole() {
        for arguments in ["{}", r#"{"city":"mock","days":1}"#] {
            let c = ToolCall {
                id: "call_x".into(),
                name: "f".into(),
                arguments: arguments.into(),
            };
            let fragments = c.fragments();
            assert!(fragments.len() >= 2, "{fragments:?}");
            assert_eq!(fragments.concat(), arguments);
            assert_eq!(c.completion_tokens() as usize, fragments.len());
        }
    }

    #[test]
    fn an_unknown_tool_choice_is_refused() {
        let choice = json!({"type":"function","function":{"name":"nope"}});
        assert!(plan(Some(&weather_tools()), Some(&choice), 1, "p").is_err());
    }
}
