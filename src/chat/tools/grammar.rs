//! What constrained decoding needs to force a well-formed call to an offered tool.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::ToolFormat;
use crate::chat::generic::{CALL_CLOSE, CALL_OPEN};

/// A call in one format, as text around a JSON value: `trigger`, then JSON matching `schema`
/// (whitespace may surround it), then `close`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallGrammar {
    /// In `auto` mode the model writes freely until its output ends with this text; from there
    /// on the call is constrained. In `required` mode the output starts with it.
    pub trigger: String,
    /// The trigger is the JSON value's own first character (`{` or `[`), so the constrained
    /// JSON begins with it rather than after it.
    pub trigger_in_json: bool,
    /// JSON Schema of the call's JSON: one call object, or an array of them for formats that
    /// write calls as an array.
    pub schema: Value,
    /// Text that closes the call after the JSON; empty when the end of the turn closes it.
    pub close: String,
}

/// The grammar pieces for calling one of `tools` (OpenAI function schemas) in `format`. Each
/// call object allows exactly the keys the format writes, in its order: the tool's name (an
/// enum of one) and its arguments under that tool's parameters schema, one `anyOf` branch per
/// tool.
pub fn call_grammar(format: ToolFormat, tools: &[Value]) -> Result<CallGrammar> {
    if tools.is_empty() {
        bail!("a tool-call grammar needs at least one tool");
    }
    let arguments_key = if format == ToolFormat::Llama3 { "parameters" } else { "arguments" };
    let branches = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let function = tool.get("function").unwrap_or(tool);
            let Some(name) = function.get("name").and_then(Value::as_str) else {
                bail!("tool {i} has no name: {}", crate::chat::generic::to_json(tool));
            };
            let parameters = function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}));
            Ok(json!({
                "type": "object",
                "properties": {"name": {"enum": [name]}, arguments_key: parameters},
                "required": ["name", arguments_key],
                "additionalProperties": false,
            }))
        })
        .collect::<Result<Vec<Value>>>()?;
    let one_call = match <[Value; 1]>::try_from(branches) {
        Ok([only]) => only,
        Err(branches) => json!({"anyOf": branches}),
    };
    let array = |items: Value| json!({"type": "array", "items": items, "minItems": 1});
    let grammar = |trigger: &str, trigger_in_json: bool, schema: Value, close: &str| CallGrammar {
        trigger: trigger.to_string(),
        trigger_in_json,
        schema,
        close: close.to_string(),
    };
    Ok(match format {
        ToolFormat::Hermes | ToolFormat::Generic => grammar(CALL_OPEN, false, one_call, CALL_CLOSE),
        ToolFormat::Llama3 => grammar("{", true, one_call, ""),
        ToolFormat::Xlam => grammar("[", true, array(one_call), ""),
        ToolFormat::Mistral => grammar("[TOOL_CALLS]", false, array(one_call), ""),
    })
}
