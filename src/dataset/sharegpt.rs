//! The ShareGPT layout of Salesforce's APIGen-MT-5k, which LLaMA-Factory's `sharegpt` loader
//! reads: `conversations` of `{from, value}` turns with the roles human, gpt, function_call and
//! observation; `system`, the policy; `tools`, a JSON string.
//!
//! LLaMA-Factory accepts a conversation only when, counting from 0, human or observation turns
//! sit at even positions and gpt or function_call turns at odd ones, and there is an even number
//! of turns. ShareGPT has no parallel calls, so an assistant message with k calls becomes k
//! consecutive function_call/observation pairs, which keeps that alternation.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::openai::{OpenAiFunction, OpenAiMessage, OpenAiToolCall};

/// One turn: `from` is human, gpt, function_call or observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub from: String,
    pub value: String,
}

impl Turn {
    fn new(from: &str, value: impl Into<String>) -> Self {
        Self { from: from.into(), value: value.into() }
    }
}

/// A conversation in the ShareGPT layout (the record adds `metadata`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareGpt {
    pub conversations: Vec<Turn>,
    pub system: String,
    /// The tool schemas (`{name, description, parameters}`), as a JSON string.
    pub tools: String,
}

/// Converts a training conversation (see [`super::openai::training_messages`]) with its tools
/// (OpenAI function schemas). Each call's value is `{"name", "arguments"}` as JSON, the
/// arguments an object; a call's own text, if any, is dropped (ShareGPT has no place for it).
pub fn from_openai(messages: &[OpenAiMessage], tools: &[Value]) -> Result<ShareGpt> {
    let mut system = String::new();
    let mut turns = Vec::new();
    let mut results: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for m in messages.iter().filter(|m| m.role == "tool") {
        if let Some(id) = &m.tool_call_id {
            results.insert(id.as_str(), m.content.as_str());
        }
    }
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_str() {
            "system" => system = m.content.clone(),
            "user" => turns.push(Turn::new("human", &m.content)),
            "assistant" if m.tool_calls.is_empty() => turns.push(Turn::new("gpt", &m.content)),
            "assistant" => {
                for call in &m.tool_calls {
                    let arguments: Value = serde_json::from_str(&call.function.arguments)
                        .map_err(|e| anyhow::anyhow!("message {i}: the arguments of call {} are not JSON: {e}", call.id))?;
                    let Some(result) = results.get(call.id.as_str()) else {
                        bail!("message {i}: call {} has no result", call.id);
                    };
                    turns.push(Turn::new("function_call", json!({"name": call.function.name, "arguments": arguments}).to_string()));
                    turns.push(Turn::new("observation", *result));
                }
            }
            "tool" => {}
            other => bail!("message {i}: unknown role {other:?}"),
        }
    }
    let functions: Vec<&Value> = tools.iter().map(|t| t.get("function").unwrap_or(t)).collect();
    let record = ShareGpt { conversations: turns, system, tools: serde_json::to_string(&functions)? };
    check(&record)?;
    Ok(record)
}

/// Back to OpenAI messages: each function_call becomes an assistant message with one call,
/// whose id (`call_<n>`, counted through the conversation) its observation answers.
pub fn to_openai(record: &ShareGpt) -> Result<Vec<OpenAiMessage>> {
    check(record)?;
    let message = |role: &str, content: &str| OpenAiMessage {
        role: role.into(),
        content: content.into(),
        tool_calls: Vec::new(),
        tool_call_id: None,
    };
    let mut out = Vec::new();
    if !record.system.is_empty() {
        out.push(message("system", &record.system));
    }
    let mut calls = 0;
    for (i, turn) in record.conversations.iter().enumerate() {
        match turn.from.as_str() {
            "human" => out.push(message("user", &turn.value)),
            "gpt" => out.push(message("assistant", &turn.value)),
            "function_call" => {
                let call: Value = serde_json::from_str(&turn.value).map_err(|e| anyhow::anyhow!("turn {i}: the call is not JSON: {e}"))?;
                let (Some(name), Some(arguments)) = (call["name"].as_str(), call.get("arguments")) else {
                    bail!("turn {i}: a call needs `name` and `arguments`");
                };
                calls += 1;
                let function = OpenAiFunction { name: name.into(), arguments: arguments.to_string() };
                out.push(OpenAiMessage {
                    tool_calls: vec![OpenAiToolCall { id: format!("call_{calls}"), kind: "function".into(), function }],
                    ..message("assistant", "")
                });
            }
            "observation" => out.push(OpenAiMessage { tool_call_id: Some(format!("call_{calls}")), ..message("tool", &turn.value) }),
            other => bail!("turn {i}: unknown role {other:?}"),
        }
    }
    Ok(out)
}

/// LLaMA-Factory's rules for a sharegpt conversation, plus ours: it starts with the user,
/// ends on a gpt answer, every observation follows a function_call, and `tools` is a JSON list.
pub fn check(record: &ShareGpt) -> Result<()> {
    let turns = &record.conversations;
    if turns.is_empty() {
        bail!("an empty conversation");
    }
    for (i, turn) in turns.iter().enumerate() {
        let allowed: &[&str] = if i % 2 == 0 { &["human", "observation"] } else { &["gpt", "function_call"] };
        if !allowed.contains(&turn.from.as_str()) {
            bail!("turn {i} is {:?}, but position {i} takes {}", turn.from, allowed.join(" or "));
        }
        if turn.from == "observation" && (i == 0 || turns[i - 1].from != "function_call") {
            bail!("turn {i}: an observation that follows no function_call");
        }
    }
    if turns[0].from != "human" {
        bail!("the conversation starts with {:?}, not human", turns[0].from);
    }
    if turns.last().map(|t| t.from.as_str()) != Some("gpt") {
        bail!("the conversation does not end on a gpt turn");
    }
    match serde_json::from_str::<Value>(&record.tools) {
        Ok(Value::Array(_)) => Ok(()),
        _ => bail!("`tools` is not a JSON list"),
    }
}
