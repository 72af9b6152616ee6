//! What constrained decoding needs to force a well-formed call to an offered tool.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::ToolFormat;
use crate::chat::generic::{CALL_CLOSE, CALL_OPEN};
use crate::constrain::Constraint;

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
            let mut parameters = function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}));
            bound_arguments(&mut parameters);
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

/// Longest free-text argument a forced call may write, in characters. Tool arguments are ids,
/// names and short phrases; without a bound, a small model sampling at temperature 1 can fill its
/// whole token budget inside one string, and the call never closes.
pub const MAX_FREE_STRING: u64 = 128;

/// Tightens a tool's parameter schema for constrained calls: objects name only their declared
/// properties (tools reject unknown arguments), and strings with no enum, pattern or length
/// bound of their own get [`MAX_FREE_STRING`].
fn bound_arguments(schema: &mut Value) {
    let Some(fields) = schema.as_object_mut() else { return };
    if fields.contains_key("properties") {
        fields.entry("additionalProperties").or_insert(json!(false));
    }
    let free_string = fields.get("type").and_then(Value::as_str) == Some("string")
        && !["enum", "const", "pattern", "maxLength", "format"].iter().any(|k| fields.contains_key(*k));
    if free_string {
        fields.insert("maxLength".into(), json!(MAX_FREE_STRING));
    }
    if let Some(Value::Object(props)) = fields.get_mut("properties") {
        props.values_mut().for_each(bound_arguments);
    }
    if let Some(items) = fields.get_mut("items") {
        bound_arguments(items);
    }
}

impl CallGrammar {
    /// A Lark grammar (llguidance's dialect) whose every sentence is a complete call turn: the
    /// trigger, JSON that matches `schema`, and the closing text. With `parallel`, several calls
    /// follow each other, one per line, as the formats that allow them write them.
    ///
    /// This is how `required` and named tool choice are enforced: the reply cannot be anything
    /// but a well-formed call to an offered tool.
    pub fn lark(&self, parallel: bool) -> String {
        let block = self.block();
        let start = if parallel { "start: block (\"\\n\" block)*" } else { "start: block" };
        format!("{start}\nblock: {block}\ncall: %json {}\n", self.compact_schema())
    }

    /// A Lark grammar for `auto` tool choice: the model may answer in free text, but once its
    /// output shows the format's call trigger, the rest must be well-formed calls to offered
    /// tools. Where the trigger is text before the JSON (`<tool_call>`, `[TOOL_CALLS]`), a lazy
    /// rule lets any text run up to the first trigger. Where the JSON itself is the trigger
    /// (Llama 3's `{`, xLAM's `[`), the reply is a call when it starts with that character and
    /// free text otherwise, as the parsers read these formats.
    pub fn lark_auto(&self, parallel: bool) -> String {
        let more = if parallel { " (\"\\n\" block)*" } else { "" };
        let schema = self.compact_schema();
        if self.trigger_in_json {
            let first = regex_escape(&self.trigger);
            format!("start: TEXT | block{more}\nblock: call\ncall: %json {schema}\nTEXT: /([^{first}](?s:.)*)?/\n")
        } else {
            let literal = |text: &str| crate::pyjson::dumps(&Value::String(text.to_string()));
            let close = if self.close.is_empty() { String::new() } else { format!(" {}", literal(&self.close)) };
            // Plain text may not contain the trigger: once it appears, only a call can follow.
            format!(
                "start: PLAIN | head call{close}{more}\nhead[lazy]: TEXT {trigger}\nblock: {block}\ncall: %json {schema}\n\
                 TEXT: /(?s:.)*/\nPLAIN: TEXT & ~/(?s:.)*{escaped}(?s:.)*/\n",
                trigger = literal(&self.trigger),
                escaped = regex_escape(&self.trigger),
                block = self.block(),
            )
        }
    }

    /// One call as Lark: the trigger (unless the JSON opens with it), the call, the closing text.
    fn block(&self) -> String {
        let literal = |text: &str| crate::pyjson::dumps(&Value::String(text.to_string()));
        let mut block = Vec::new();
        if !self.trigger_in_json {
            block.push(literal(&self.trigger));
        }
        block.push("call".to_string());
        if !self.close.is_empty() {
            block.push(literal(&self.close));
        }
        block.join(" ")
    }

    /// The schema as `%json` takes it, compact: a small model left free to write blanks can
    /// spend its whole budget on them.
    fn compact_schema(&self) -> String {
        let mut schema = self.schema.clone();
        if let Value::Object(fields) = &mut schema {
            fields.insert("x-guidance".into(), json!({"whitespace_flexible": false}));
        }
        crate::pyjson::dumps(&schema)
    }
}

/// `text` as a regex that matches it literally (also inside a character class).
fn regex_escape(text: &str) -> String {
    text.chars().flat_map(|c| if "\\.+*?()|[]{}^$-/".contains(c) { vec!['\\', c] } else { vec![c] }).collect()
}

#[cfg(test)]
mod lark_tests {
    use super::*;

    #[test]
    fn forced_arguments_are_closed_and_free_strings_bounded() {
        let mut schema = json!({"type": "object", "properties": {
            "order_id": {"type": "string"},
            "reason": {"type": "string", "enum": ["a", "b"]},
            "items": {"type": "array", "items": {"type": "string"}},
            "address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}
        }});
        bound_arguments(&mut schema);
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["properties"]["order_id"]["maxLength"], json!(MAX_FREE_STRING));
        assert!(schema["properties"]["reason"].get("maxLength").is_none());
        assert_eq!(schema["properties"]["items"]["items"]["maxLength"], json!(MAX_FREE_STRING));
        assert_eq!(schema["properties"]["address"]["additionalProperties"], json!(false));
        assert!(schema["properties"]["address"]["properties"]["zip"].get("maxLength").is_none());
    }

    #[test]
    fn lark_wraps_the_schema_in_the_formats_call_text() {
        let tools = vec![json!({"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}})];
        let hermes = call_grammar(ToolFormat::Hermes, &tools).unwrap().lark(true);
        assert!(hermes.starts_with("start: block (\"\\n\" block)*\nblock: \"<tool_call>\" call \"</tool_call>\"\n"), "{hermes}");
        assert!(hermes.contains("call: %json {\"type\": \"object\", \"properties\": {\"name\": {\"enum\": [\"ping\"]}"), "{hermes}");
        let xlam = call_grammar(ToolFormat::Xlam, &tools).unwrap().lark(false);
        assert!(xlam.starts_with("start: block\nblock: call\n"), "{xlam}");
    }
}

/// The constraint that enforces a tool choice: for `auto`, free text or calls, constrained from
/// the format's trigger on; otherwise a grammar that admits exactly one call, in `format`, to one
/// of `tools` (`required`) or to the tool named `choice`. `None` when there are no tools.
pub fn tool_choice_constraint(choice: &str, format: ToolFormat, tools: &[Value]) -> Result<Option<Constraint>> {
    let name_of = |tool: &Value| tool.get("function").unwrap_or(tool).get("name").and_then(Value::as_str).map(str::to_string);
    let offered: Vec<Value> = match choice {
        "auto" if tools.is_empty() => return Ok(None),
        "auto" => return Ok(Some(Constraint::Lark(call_grammar(format, tools)?.lark_auto(true)))),
        "required" => tools.to_vec(),
        name => {
            let chosen: Vec<Value> = tools.iter().filter(|t| name_of(t).as_deref() == Some(name)).cloned().collect();
            if chosen.is_empty() {
                let names: Vec<String> = tools.iter().filter_map(name_of).collect();
                bail!("tool choice {name}: no such tool (offered: {})", names.join(", "));
            }
            chosen
        }
    };
    // One call: a forced reply has no natural place to stop between calls.
    Ok(Some(Constraint::Lark(call_grammar(format, &offered)?.lark(false))))
}
