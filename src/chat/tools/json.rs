//! The JSON pieces every format shares: one value at the head of some text, and a call object.

use serde_json::{Map, Value};

use super::ToolCallError;
use crate::chat::generic::to_json;

/// A call before it is checked against the offered tools: name and arguments.
pub(super) type RawCall = (String, Map<String, Value>);

/// Reads one JSON value at the start of `text` (after whitespace); returns it and the rest.
pub(super) fn leading_value(text: &str) -> Result<(Value, &str), ToolCallError> {
    let trimmed = text.trim_start();
    let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => Ok((value, &trimmed[stream.byte_offset()..])),
        Some(Err(e)) if e.is_eof() => Err(ToolCallError::Truncated(trimmed.to_string())),
        Some(Err(e)) => Err(ToolCallError::InvalidJson { detail: e.to_string(), text: trimmed.to_string() }),
        None => Err(ToolCallError::Truncated(trimmed.to_string())),
    }
}

/// Reads a whole text as exactly one JSON value.
pub(super) fn whole_value(text: &str) -> Result<Value, ToolCallError> {
    let (value, rest) = leading_value(text)?;
    if rest.trim().is_empty() {
        Ok(value)
    } else {
        Err(ToolCallError::TrailingText(rest.trim().to_string()))
    }
}

/// `{"name": ..., "arguments": {...}}`; Llama 3 says `parameters`. Arguments written as a
/// JSON string holding an object are accepted, since some models quote them as the OpenAI API
/// does; a call without arguments has none.
pub(super) fn call(value: Value) -> Result<RawCall, ToolCallError> {
    const EXPECTED: &str = r#"a JSON object {"name": <tool name>, "arguments": <object>}"#;
    let shape = |found: &Value| ToolCallError::Shape { expected: EXPECTED, found: to_json(found) };
    let Value::Object(mut object) = value else { return Err(shape(&value)) };
    let name = match object.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => return Err(shape(&Value::Object(object))),
    };
    let arguments = object.remove("arguments").or_else(|| object.remove("parameters"));
    let arguments = match arguments {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(ToolCallError::Shape { expected: "arguments that are a JSON object", found: text }),
        },
        Some(other) => return Err(ToolCallError::Shape { expected: "arguments that are a JSON object", found: to_json(&other) }),
    };
    Ok((name, arguments))
}

/// A JSON array of call objects.
pub(super) fn call_list(value: Value) -> Result<Vec<RawCall>, ToolCallError> {
    match value {
        Value::Array(items) if !items.is_empty() => items.into_iter().map(call).collect(),
        other => Err(ToolCallError::Shape {
            expected: r#"a non-empty JSON array of {"name": <tool name>, "arguments": <object>}"#,
            found: to_json(&other),
        }),
    }
}
