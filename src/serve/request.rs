//! OpenAI request bodies read into engine requests. Reading is lenient where clients differ
//! (content as a string, `null` or text parts; arguments as a JSON string or an object) and
//! strict where a silent default would change the answer: a parameter this server does not
//! implement is refused by name rather than ignored.

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::chat::{Message, Role, ToolCall};
use crate::engine::{Constraint, SamplingParams};

/// Most choices one request may ask for (`n` times the prompts of a completions request).
pub const MAX_CHOICES: usize = 64;

/// What both endpoints take.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub model: Option<String>,
    /// `None`: until the context is full.
    pub max_tokens: Option<usize>,
    /// The seed of choice 0; choice `i` samples with `seed + i`.
    pub sampling: SamplingParams,
    pub n: usize,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub constraint: Option<Constraint>,
    pub ignore_eos: bool,
    pub return_token_ids: bool,
}

/// The fields of a JSON object body, or a 400.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::bad_request(format!("the request body must be a JSON object, not {}", kind(&other)))),
        Err(e) => Err(ApiError::bad_request(format!("the request body is not valid JSON: {e}"))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A parameter, absent when missing or `null`.
fn get<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

fn number(body: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match get(body, key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| ApiError::invalid(key, format!("`{key}` must be a number, not {}", kind(v)))),
    }
}

fn count(body: &Map<String, Value>, key: &str) -> Result<Option<usize>, ApiError> {
    match get(body, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| ApiError::invalid(key, format!("`{key}` must be a non-negative integer, not {v}"))),
    }
}

fn flag(body: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match get(body, key) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or_else(|| ApiError::invalid(key, format!("`{key}` must be true or false, not {v}"))),
    }
}

/// Reads the parameters both endpoints share. `default_max_tokens` is the endpoint's default.
pub fn common(body: &Map<String, Value>, default_max_tokens: Option<usize>) -> Result<Common, ApiError> {
    // Parameters that would change the answer and are not implemented: refused, never ignored.
    for key in ["logit_bias", "suffix", "best_of", "functions", "function_call", "audio", "prediction"] {
        if get(body, key).is_some_and(|v| !(v.as_object().is_some_and(Map::is_empty) || (key == "best_of" && v.as_u64() == Some(1)))) {
            return Err(ApiError::invalid(key, format!("`{key}` is not supported by this server")));
        }
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if number(body, key)?.is_some_and(|v| v != 0.0) {
            return Err(ApiError::invalid(key, format!("`{key}` is not supported by this server; use `repetition_penalty`")));
        }
    }
    for key in ["logprobs", "top_logprobs", "echo"] {
        let set = match get(body, key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => key != "top_logprobs" || n.as_u64() != Some(0),
            Some(_) => true,
        };
        if set {
            return Err(ApiError::invalid(key, format!("`{key}` is not supported by this server")));
        }
    }
    let defaults = SamplingParams::default();
    let temperature = number(body, "temperature")?.unwrap_or(1.0) as f32;
    let top_p = number(body, "top_p")?.unwrap_or(1.0) as f32;
    let min_p = number(body, "min_p")?.unwrap_or(0.0) as f32;
    let repeat_penalty = match (number(body, "repeat_penalty")?, number(body, "repetition_penalty")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid("repetition_penalty", "`repeat_penalty` and `repetition_penalty` disagree"))
        }
        (a, b) => a.or(b).unwrap_or(1.0) as f32,
    };
    let top_k = match get(body, "top_k") {
        None => 0,
        // vLLM's and SGLang's spelling of "off".
        Some(v) if v.as_i64() == Some(-1) => 0,
        Some(_) => count(body, "top_k")?.unwrap_or(0),
    };
    if !(temperature >= 0.0) || !(top_p > 0.0 && top_p <= 1.0) || !(0.0..=1.0).contains(&min_p) || !(repeat_penalty > 0.0) {
        return Err(ApiError::bad_request("sampling out of range: temperature ≥ 0, 0 < top_p ≤ 1, 0 ≤ min_p ≤ 1, repetition_penalty > 0"));
    }
    let seed = match get(body, "seed") {
        None => rand::random::<u64>(),
        // Any integer: a negative one is the same 64 bits, as clients of signed-seed servers send.
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_i64().map(|s| s as u64))
            .ok_or_else(|| ApiError::invalid("seed", format!("`seed` must be an integer, not {v}")))?,
    };
    let sampling = SamplingParams {
        temperature,
        top_p,
        top_k,
        min_p,
        repeat_penalty,
        repeat_last_n: count(body, "repeat_last_n")?.unwrap_or(defaults.repeat_last_n),
        seed,
    };
    let n = count(body, "n")?.unwrap_or(1);
    if n == 0 || n > MAX_CHOICES {
        return Err(ApiError::invalid("n", format!("`n` must be between 1 and {MAX_CHOICES}")));
    }
    let max_tokens = match count(body, "max_completion_tokens")?.or(count(body, "max_tokens")?) {
        Some(0) => return Err(ApiError::invalid("max_tokens", "`max_tokens` must be at least 1")),
        Some(n) => Some(n),
        None => default_max_tokens,
    };
    let stop = match get(body, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str().map(str::to_string).ok_or_else(|| ApiError::invalid("stop", "`stop` must be a string or a list of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::invalid("stop", "`stop` must be a string or a list of strings")),
    };
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", "stop strings must not be empty"));
    }
    let include_usage = get(body, "stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    Ok(Common {
        model: get(body, "model").and_then(Value::as_str).map(str::to_string),
        max_tokens,
        sampling,
        n,
        stop,
        stream: flag(body, "stream")?,
        include_usage,
        constraint: constraint(body)?,
        ignore_eos: flag(body, "ignore_eos")?,
        return_token_ids: flag(body, "return_token_ids")?,
    })
}

/// The output constraint, from whichever spelling the client used: OpenAI's `response_format`,
/// vLLM's `structured_outputs` (and its older `guided_json`, `guided_regex`, `guided_grammar`),
/// or `grammar`. Grammars are Lark in llguidance's dialect.
fn constraint(body: &Map<String, Value>) -> Result<Option<Constraint>, ApiError> {
    let mut found: Vec<(&str, Constraint)> = Vec::new();
    if let Some(format) = get(body, "response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => found.push(("response_format", Constraint::JsonSchema(serde_json::json!({"type": "object"})))),
            Some("json_schema") => {
                let schema = format.get("json_schema").and_then(|s| s.get("schema")).filter(|s| s.is_object()).ok_or_else(|| {
                    ApiError::invalid("response_format", "`response_format.json_schema.schema` must be a JSON schema object")
                })?;
                found.push(("response_format", Constraint::JsonSchema(schema.clone())));
            }
            _ => return Err(ApiError::invalid("response_format", "`response_format.type` must be text, json_object or json_schema")),
        }
    }
    let string = |key: &str, value: &Value| -> Result<String, ApiError> {
        value.as_str().map(str::to_string).ok_or_else(|| ApiError::invalid(key, format!("`{key}` must be a string")))
    };
    let schema = |key: &str, value: &Value| -> Result<Constraint, ApiError> {
        match value {
            Value::Object(_) => Ok(Constraint::JsonSchema(value.clone())),
            Value::String(text) => serde_json::from_str::<Value>(text)
                .ok()
                .filter(Value::is_object)
                .map(Constraint::JsonSchema)
                .ok_or_else(|| ApiError::invalid(key, format!("`{key}` must be a JSON schema object"))),
            _ => Err(ApiError::invalid(key, format!("`{key}` must be a JSON schema object"))),
        }
    };
    if let Some(outputs) = get(body, "structured_outputs") {
        let outputs =
            outputs.as_object().ok_or_else(|| ApiError::invalid("structured_outputs", "`structured_outputs` must be an object"))?;
        for (key, value) in outputs.iter().filter(|(_, v)| !v.is_null()) {
            let param = "structured_outputs";
            match key.as_str() {
                "json" => found.push((param, schema(param, value)?)),
                "regex" => found.push((param, Constraint::Regex(string(param, value)?))),
                "grammar" => found.push((param, Constraint::Lark(string(param, value)?))),
                other => {
                    return Err(ApiError::invalid(param, format!("`structured_outputs.{other}` is not supported (json, regex, grammar)")))
                }
            }
        }
    }
    for key in ["guided_json", "json_schema"] {
        if let Some(value) = get(body, key) {
            found.push((key, schema(key, value)?));
        }
    }
    for key in ["guided_regex", "regex"] {
        if let Some(value) = get(body, key) {
            found.push((key, Constraint::Regex(string(key, value)?)));
        }
    }
    for key in ["guided_grammar", "grammar"] {
        if let Some(value) = get(body, key) {
            found.push((key, Constraint::Lark(string(key, value)?)));
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop().map(|(_, c)| c)),
        _ => {
            let names: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
            Err(ApiError::bad_request(format!("give one output constraint, not several ({})", names.join(", "))))
        }
    }
}

/// A completions prompt: text, or token ids.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// `prompt`: a string, a list of strings, a list of token ids, or a list of those lists.
pub fn prompts(body: &Map<String, Value>) -> Result<Vec<PromptInput>, ApiError> {
    let bad = || ApiError::invalid("prompt", "`prompt` must be a string, a list of strings, a list of token ids or a list of such lists");
    let ids = |items: &[Value]| -> Option<Vec<u32>> { items.iter().map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok())).collect() };
    let prompts = match get(body, "prompt").ok_or_else(|| ApiError::invalid("prompt", "`prompt` is required"))? {
        Value::String(text) => vec![PromptInput::Text(text.clone())],
        Value::Array(items) if items.is_empty() => return Err(bad()),
        Value::Array(items) if items.iter().all(Value::is_number) => vec![PromptInput::Tokens(ids(items).ok_or_else(bad)?)],
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(PromptInput::Text(text.clone())),
                Value::Array(tokens) => ids(tokens).map(PromptInput::Tokens).ok_or_else(bad),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    if prompts.iter().any(|p| matches!(p, PromptInput::Text(t) if t.is_empty()) || matches!(p, PromptInput::Tokens(t) if t.is_empty())) {
        return Err(ApiError::invalid("prompt", "a prompt must not be empty"));
    }
    Ok(prompts)
}

/// `messages` in the OpenAI layout, as this crate's messages.
pub fn messages(body: &Map<String, Value>) -> Result<Vec<Message>, ApiError> {
    let items = get(body, "messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::invalid("messages", "`messages` must be a non-empty list"))?;
    let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let bad = |what: String| ApiError::invalid("messages", format!("messages[{i}]: {what}"));
            let role = match item.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("tool") => Role::Tool,
                Some(other) => return Err(bad(format!("unknown role {other:?}"))),
                None => return Err(bad("no `role`".into())),
            };
            let content = match item.get("content") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|part| match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(text)) => Ok(text),
                        (kind, _) => Err(bad(format!("content parts of type {} are not supported (text only)", kind.unwrap_or("?")))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
                Some(other) => return Err(bad(format!("`content` must be a string or a list of text parts, not {}", kind(other)))),
            };
            let mut calls = Vec::new();
            for (j, call) in item.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let function = call.get("function").ok_or_else(|| bad(format!("tool_calls[{j}] has no `function`")))?;
                let name =
                    function.get("name").and_then(Value::as_str).ok_or_else(|| bad(format!("tool_calls[{j}] has no function name")))?;
                let arguments = match function.get("arguments") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(map)) => map.clone(),
                    Some(Value::String(text)) if text.trim().is_empty() => Map::new(),
                    Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(map)) => map,
                        _ => return Err(bad(format!("tool_calls[{j}].function.arguments is not a JSON object"))),
                    },
                    Some(_) => return Err(bad(format!("tool_calls[{j}].function.arguments is not a JSON object"))),
                };
                let id = call.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                names.insert(id.clone(), name.to_string());
                calls.push(ToolCall { id, name: name.to_string(), arguments });
            }
            let tool_call_id = item.get("tool_call_id").and_then(Value::as_str).map(str::to_string);
            if role == Role::Tool && tool_call_id.is_none() {
                return Err(bad("a tool message needs `tool_call_id`".into()));
            }
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| tool_call_id.as_ref().and_then(|id| names.get(id).cloned()));
            Ok(Message { role, content, tool_calls: calls, tool_call_id, name: if role == Role::Tool { name } else { None } })
        })
        .collect()
}

/// How the model may use the offered tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

/// `tools` (function schemas) and `tool_choice`.
pub fn tools(body: &Map<String, Value>) -> Result<(Vec<Value>, ToolChoice), ApiError> {
    let tools: Vec<Value> = match get(body, "tools") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(ApiError::invalid("tools", "`tools` must be a list")),
    };
    for (i, tool) in tools.iter().enumerate() {
        let named = tool.get("type").and_then(Value::as_str) == Some("function")
            && tool.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        if !named {
            return Err(ApiError::invalid(
                "tools",
                format!("tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"),
            ));
        }
    }
    let choice = match get(body, "tool_choice") {
        None if tools.is_empty() => ToolChoice::None,
        None => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    format!("unknown tool_choice {other:?} (none, auto, required, or a function)"),
                ))
            }
        },
        Some(Value::Object(o)) => match o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => ToolChoice::Named(name.to_string()),
            None => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    "`tool_choice` must name a function: {\"type\": \"function\", \"function\": {\"name\": ...}}",
                ))
            }
        },
        Some(_) => return Err(ApiError::invalid("tool_choice", "`tool_choice` must be a string or an object")),
    };
    if choice != ToolChoice::None && tools.is_empty() {
        return Err(ApiError::invalid("tool_choice", "`tool_choice` needs `tools`"));
    }
    Ok((tools, choice))
}

/// `chat_template_kwargs.enable_thinking`, Qwen3's switch.
pub fn thinking(body: &Map<String, Value>) -> Option<bool> {
    get(body, "chat_template_kwargs").and_then(|k| k.get("enable_thinking")).and_then(Value::as_bool)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn sampling_and_limits_are_read_and_checked() {
        let c = common(&map(json!({"temperature": 0, "seed": -1, "top_k": -1, "stop": "\n", "n": 2, "max_tokens": 5})), Some(16)).unwrap();
        assert_eq!((c.sampling.temperature, c.sampling.seed, c.sampling.top_k, c.n, c.max_tokens), (0.0, u64::MAX, 0, 2, Some(5)));
        assert_eq!(c.stop, vec!["\n"]);
        assert_eq!(common(&map(json!({})), Some(16)).unwrap().max_tokens, Some(16));
        for (body, param) in [
            (json!({"n": 0}), "n"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"presence_penalty": 0.5}), "presence_penalty"),
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"stop": [1]}), "stop"),
        ] {
            let err = common(&map(body.clone()), None).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{body}: {err:?}");
        }
        assert!(common(&map(json!({"logprobs": null, "presence_penalty": 0, "best_of": 1})), None).is_ok());
    }

    #[test]
    fn constraints_come_from_any_one_spelling() {
        let c = common(
            &map(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}})),
            None,
        );
        assert_eq!(c.unwrap().constraint, Some(Constraint::JsonSchema(json!({"type": "object"}))));
        let c = common(&map(json!({"structured_outputs": {"regex": "[0-9]+"}})), None).unwrap();
        assert_eq!(c.constraint, Some(Constraint::Regex("[0-9]+".into())));
        let c = common(&map(json!({"guided_json": "{\"type\": \"array\"}"})), None).unwrap();
        assert_eq!(c.constraint, Some(Constraint::JsonSchema(json!({"type": "array"}))));
        let err = common(&map(json!({"grammar": "start: \"a\"", "guided_regex": "a"})), None).unwrap_err();
        assert!(err.message.contains("one output constraint"), "{err:?}");
    }

    #[test]
    fn messages_and_tools_in_the_openai_layout() {
        let body = map(json!({
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "2"}
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}
        }));
        let m = messages(&body).unwrap();
        assert_eq!((m[0].role, m[0].content.as_str()), (Role::System, "be brief"));
        assert_eq!(m[2].tool_calls[0].arguments["a"], json!(1));
        assert_eq!(m[3].name.as_deref(), Some("f"));
        assert_eq!(tools(&body).unwrap().1, ToolChoice::Named("f".into()));
        assert!(messages(&map(json!({"messages": [{"role": "tool", "content": "x"}]}))).is_err());
        assert!(tools(&map(json!({"tool_choice": "required"}))).is_err());
        assert_eq!(prompts(&map(json!({"prompt": [[1, 2], "a"]}))).unwrap().len(), 2);
        assert!(prompts(&map(json!({"prompt": ""}))).is_err());
    }
}
