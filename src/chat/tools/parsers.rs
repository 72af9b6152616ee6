//! One parser per format: completion text → text and unchecked calls.

use super::json::{call, call_list, leading_value, whole_value, RawCall};
use super::ToolCallError;
use crate::chat::generic::{CALL_CLOSE, CALL_OPEN};

/// Llama 3's marker for a code or tool call (a special token, present when the engine decodes
/// special tokens).
const PYTHON_TAG: &str = "<|python_tag|>";
/// Mistral's marker before its array of calls (a special token).
const MISTRAL_CALLS: &str = "[TOOL_CALLS]";

pub(super) struct RawCompletion {
    pub text: String,
    pub calls: Vec<RawCall>,
}

impl RawCompletion {
    fn text_only(text: &str) -> Self {
        Self { text: text.trim().to_string(), calls: Vec::new() }
    }
}

/// Hermes and generic: text, then `<tool_call>JSON</tool_call>` blocks and nothing else. A last
/// block whose closing tag is missing (generation stopped on it) counts if its JSON is whole.
pub(super) fn tagged_blocks(completion: &str) -> Result<RawCompletion, ToolCallError> {
    let Some(first) = completion.find(CALL_OPEN) else { return Ok(RawCompletion::text_only(completion)) };
    let text = completion[..first].trim().to_string();
    let mut calls = Vec::new();
    let mut rest = &completion[first..];
    while !rest.trim().is_empty() {
        let Some(body) = rest.trim_start().strip_prefix(CALL_OPEN) else {
            return Err(ToolCallError::TrailingText(rest.trim().to_string()));
        };
        let (json, after) = match body.find(CALL_CLOSE) {
            Some(end) => (&body[..end], &body[end + CALL_CLOSE.len()..]),
            None => (body, ""),
        };
        calls.push(call(whole_value(json)?)?);
        rest = after;
    }
    Ok(RawCompletion { text, calls })
}

/// Llama 3: a call is the whole answer, one JSON object, or after `<|python_tag|>` one or more
/// objects separated by `;`. Anything else is a text answer.
pub(super) fn llama3(completion: &str) -> Result<RawCompletion, ToolCallError> {
    let trimmed = completion.trim();
    let (mut rest, tagged) = match trimmed.strip_prefix(PYTHON_TAG) {
        Some(body) => (body, true),
        None if trimmed.starts_with('{') => (trimmed, false),
        None => return Ok(RawCompletion::text_only(completion)),
    };
    let mut calls = Vec::new();
    loop {
        let (value, after) = leading_value(rest)?;
        calls.push(call(value)?);
        let after = after.trim_start();
        match after.strip_prefix(';') {
            Some(next) if tagged => {
                if next.trim().is_empty() {
                    break;
                }
                rest = next;
            }
            _ if after.is_empty() => break,
            _ => return Err(ToolCallError::TrailingText(after.to_string())),
        }
    }
    Ok(RawCompletion { text: String::new(), calls })
}

/// xLAM-2: a call is the whole answer, a JSON array of calls. Anything else is a text answer.
pub(super) fn xlam(completion: &str) -> Result<RawCompletion, ToolCallError> {
    let trimmed = completion.trim();
    if !trimmed.starts_with('[') {
        return Ok(RawCompletion::text_only(completion));
    }
    Ok(RawCompletion { text: String::new(), calls: call_list(whole_value(trimmed)?)? })
}

/// Mistral: text, then `[TOOL_CALLS]` and a JSON array of calls. Where the marker was decoded
/// away, an answer that is a JSON array of objects is taken as the calls.
pub(super) fn mistral(completion: &str) -> Result<RawCompletion, ToolCallError> {
    let (text, calls) = match completion.find(MISTRAL_CALLS) {
        Some(at) => (&completion[..at], &completion[at + MISTRAL_CALLS.len()..]),
        None if completion.trim_start().starts_with("[{") => ("", completion),
        None => return Ok(RawCompletion::text_only(completion)),
    };
    Ok(RawCompletion { text: text.trim().to_string(), calls: call_list(whole_value(calls)?)? })
}
