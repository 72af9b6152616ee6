//! The generic tool format, for chat templates that have no tool support of their own
//! (SmolLM2's, for one).
//!
//! Such a template only knows roles and text, so tools are written into the conversation as
//! text before it is rendered:
//!
//! * **Tools.** The system message (one is added if the conversation has none) gains a section
//!   that lists each tool as one line of JSON, the OpenAI function schema exactly as offered,
//!   inside `<tools></tools>`, and tells the model how to call one.
//! * **Calls.** The model answers a call, alone on its line, as
//!   `<tool_call>{"name": "get_order", "arguments": {"order_id": "A1"}}</tool_call>`, one line per
//!   call. An assistant message that made calls is rendered back the same way, after its text.
//! * **Results.** Tool results become a user message (the template may not know a `tool` role),
//!   one `<tool_response>{result}</tool_response>` line per result, in call order; results of
//!   consecutive tool messages share one user message.
//!
//! JSON here is written as Python's `json.dumps(ensure_ascii=False)` writes it, like `tojson`.

use serde_json::Value;

use super::{Message, Role, ToolCall};
use crate::pyjson::{dumps_with, DumpOptions};

pub const CALL_OPEN: &str = "<tool_call>";
pub const CALL_CLOSE: &str = "</tool_call>";
pub const RESPONSE_OPEN: &str = "<tool_response>";
pub const RESPONSE_CLOSE: &str = "</tool_response>";

/// JSON as `tojson` writes it.
pub(crate) fn to_json(value: &Value) -> String {
    dumps_with(value, &DumpOptions { ensure_ascii: false, ..DumpOptions::default() })
}

/// The system-prompt section that offers `tools`.
pub fn tools_section(tools: &[Value]) -> String {
    let listed: Vec<String> = tools.iter().map(to_json).collect();
    format!(
        "# Tools\n\n\
         You may call one or more of the tools below to help with the request. Each is given as a \
         JSON function schema:\n<tools>\n{}\n</tools>\n\n\
         To call a tool, write a line of this form for each call, and nothing else on that line:\n\
         {CALL_OPEN}{{\"name\": <tool name>, \"arguments\": <arguments as a JSON object>}}{CALL_CLOSE}\n\
         The results come back in {RESPONSE_OPEN}{RESPONSE_CLOSE} blocks.",
        listed.join("\n")
    )
}

/// One call as the model writes it.
pub fn call_text(call: &ToolCall) -> String {
    let body = serde_json::json!({"name": call.name, "arguments": call.arguments});
    format!("{CALL_OPEN}{}{CALL_CLOSE}", to_json(&body))
}

/// Rewrites a conversation so that a template with no tool support shows the tools, the calls
/// and the results. Messages without tool content pass through unchanged.
pub fn adapt(messages: &[Message], tools: &[Value]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len() + 1);
    if !tools.is_empty() {
        let section = tools_section(tools);
        match messages.first() {
            Some(first) if first.role == Role::System => {
                let content = if first.content.is_empty() { section } else { format!("{}\n\n{section}", first.content) };
                out.push(Message::system(content));
            }
            _ => out.push(Message::system(section)),
        }
    }
    let rest = if !tools.is_empty() && messages.first().is_some_and(|m| m.role == Role::System) { &messages[1..] } else { messages };
    for message in rest {
        match message.role {
            Role::Assistant if !message.tool_calls.is_empty() => {
                let mut lines: Vec<String> = Vec::new();
                if !message.content.is_empty() {
                    lines.push(message.content.clone());
                }
                lines.extend(message.tool_calls.iter().map(call_text));
                out.push(Message::assistant(lines.join("\n")));
            }
            Role::Tool => {
                let block = format!("{RESPONSE_OPEN}{}{RESPONSE_CLOSE}", message.content);
                match out.last_mut() {
                    Some(previous) if previous.role == Role::User && previous.content.starts_with(RESPONSE_OPEN) => {
                        previous.content.push('\n');
                        previous.content.push_str(&block);
                    }
                    _ => out.push(Message::user(block)),
                }
            }
            _ => out.push(message.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call() -> ToolCall {
        let arguments = json!({"order_id": "A1", "note": "été"}).as_object().cloned().unwrap_or_default();
        ToolCall { id: "call_1".into(), name: "get_order".into(), arguments }
    }

    #[test]
    fn tools_go_into_the_system_message() {
        let tools = [json!({"type": "function", "function": {"name": "get_order", "parameters": {}}})];
        let out = adapt(&[Message::system("Be brief."), Message::user("hi")], &tools);
        assert_eq!(out.len(), 2);
        assert!(out[0].content.starts_with("Be brief.\n\n# Tools"));
        assert!(out[0].content.contains(r#"{"type": "function", "function": {"name": "get_order", "parameters": {}}}"#));
        let out = adapt(&[Message::user("hi")], &tools);
        assert_eq!(out[0].role, Role::System);
        assert_eq!(out[1], Message::user("hi"));
    }

    #[test]
    fn calls_and_results_become_text() {
        let c = call();
        let messages = [
            Message::user("where is A1?"),
            Message::assistant_calls("Let me look.", vec![c.clone(), c.clone()]),
            Message::tool_result(&c, "{\"status\": \"shipped\"}"),
            Message::tool_result(&c, "second"),
            Message::assistant("It shipped."),
        ];
        let out = adapt(&messages, &[]);
        assert_eq!(out.len(), 4);
        let line = r#"<tool_call>{"name": "get_order", "arguments": {"order_id": "A1", "note": "été"}}</tool_call>"#;
        assert_eq!(out[1].content, format!("Let me look.\n{line}\n{line}"));
        assert!(out[1].tool_calls.is_empty());
        assert_eq!(
            out[2],
            Message::user("<tool_response>{\"status\": \"shipped\"}</tool_response>\n<tool_response>second</tool_response>")
        );
        assert_eq!(out[3], Message::assistant("It shipped."));
    }
}
