//! The OpenAI chat layout (`messages` + `tools`), which transformers' `apply_chat_template`
//! renders and TRL's `SFTTrainer` trains on.
//!
//! A trajectory becomes a training conversation by [`training_messages`]: the policy as the
//! system message, then from the user's first message to the agent's last text answer. The
//! simulator-only greeting and `###STOP###` never appear, and a conversation that does not
//! alternate properly is refused with the reason rather than written.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::{Message, Role, ToolCall};
use crate::trajectory::user::STOP;

/// One OpenAI message: `arguments` of tool calls is a JSON string, as the API sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAiMessage {
    pub role: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OpenAiToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAiToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: OpenAiFunction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAiFunction {
    pub name: String,
    /// The arguments object, encoded as a JSON string.
    pub arguments: String,
}

/// The trajectory's messages as a training conversation: system first, then from the first
/// user message to the last assistant text answer, checked to alternate (user or tool results,
/// then the assistant), with every tool result answering a call of the message before it.
pub fn training_messages(messages: &[Message]) -> Result<Vec<Message>> {
    let system = messages.iter().find(|m| m.role == Role::System);
    let Some(first_user) = messages.iter().position(|m| m.role == Role::User) else {
        bail!("the conversation has no user message");
    };
    let body: Vec<&Message> =
        messages[first_user..].iter().filter(|m| m.role != Role::System && !(m.role == Role::User && m.content.contains(STOP))).collect();
    let Some(last) = body.iter().rposition(|m| m.role == Role::Assistant && m.tool_calls.is_empty()) else {
        bail!("the agent never answered in text");
    };
    let body = &body[..=last];
    let mut open_calls: Vec<&str> = Vec::new();
    let mut previous = Role::System;
    for (i, m) in body.iter().enumerate() {
        match m.role {
            Role::User if matches!(previous, Role::System | Role::Assistant) && open_calls.is_empty() => {}
            Role::Assistant if previous == Role::User || (previous == Role::Tool && open_calls.is_empty()) => {
                open_calls = m.tool_calls.iter().map(|c| c.id.as_str()).collect();
            }
            Role::Tool => match (m.tool_call_id.as_deref(), open_calls.first()) {
                (Some(id), Some(&expected)) if id == expected => {
                    open_calls.remove(0);
                }
                _ => bail!("message {i}: a tool result that answers no pending call"),
            },
            role => bail!("message {i}: a {} message cannot follow a {} message here", role.as_str(), previous.as_str()),
        }
        if m.role == Role::Assistant && m.tool_calls.is_empty() && m.content.trim().is_empty() {
            bail!("message {i}: an empty assistant answer");
        }
        previous = m.role;
    }
    Ok(system.into_iter().chain(body.iter().copied()).cloned().collect())
}

/// Messages in the OpenAI layout.
pub fn to_openai(messages: &[Message]) -> Vec<OpenAiMessage> {
    messages
        .iter()
        .map(|m| OpenAiMessage {
            role: m.role.as_str().to_string(),
            content: m.content.clone(),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| OpenAiToolCall {
                    id: c.id.clone(),
                    kind: "function".into(),
                    function: OpenAiFunction { name: c.name.clone(), arguments: Value::Object(c.arguments.clone()).to_string() },
                })
                .collect(),
            tool_call_id: m.tool_call_id.clone(),
        })
        .collect()
}

/// OpenAI messages back into the crate's messages (for rendering through a chat template);
/// arguments that are not a JSON object are an error naming the call.
pub fn from_openai(messages: &[OpenAiMessage]) -> Result<Vec<Message>> {
    let mut names = std::collections::HashMap::new();
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "tool" => Role::Tool,
                other => bail!("message {i}: unknown role {other:?}"),
            };
            let mut calls = Vec::new();
            for c in &m.tool_calls {
                let arguments = match serde_json::from_str::<Value>(&c.function.arguments) {
                    Ok(Value::Object(map)) => map,
                    _ => bail!("message {i}: the arguments of call {} are not a JSON object", c.id),
                };
                names.insert(c.id.clone(), c.function.name.clone());
                calls.push(ToolCall { id: c.id.clone(), name: c.function.name.clone(), arguments });
            }
            let name = m.tool_call_id.as_ref().and_then(|id| names.get(id).cloned());
            Ok(Message { role, content: m.content.clone(), tool_calls: calls, tool_call_id: m.tool_call_id.clone(), name })
        })
        .collect()
}
