//! Tool calls in each model family's own format.
//!
//! A model calls tools in the format it was trained on, and its chat template renders past
//! calls and results in that same format. This module names the formats ([`ToolFormat`]),
//! tells which one a template speaks ([`ToolFormat::detect`]), parses a completion into text and
//! calls ([`parse`]), derives deterministic call ids ([`call_id`]) and describes a call for
//! constrained decoding ([`call_grammar`]). Rendering goes through the model's own template
//! ([`super::ChatTemplate::render`]): assistant messages carry [`ToolCall`]s and results are
//! `Role::Tool` messages, which Llama 3 templates show as `ipython` turns.
//!
//! Parsing never panics: output that is not a well-formed call to an offered tool gives a
//! [`ToolCallError`] whose text is written to be handed back to the model.

mod grammar;
mod json;
mod parsers;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ChatTemplate, ToolCall};

pub use grammar::{call_grammar, tool_choice_constraint, CallGrammar};

/// The tool-call formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolFormat {
    /// Qwen 2.5 / Hermes: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks
    /// after optional text.
    Hermes,
    /// Llama 3.x: the whole answer is `{"name": ..., "parameters": {...}}`, optionally after
    /// `<|python_tag|>` (where several calls may be separated by `;`).
    Llama3,
    /// xLAM-2: the whole answer is a JSON array of `{"name", "arguments"}`.
    Xlam,
    /// Mistral: optional text, then `[TOOL_CALLS]` and a JSON array of `{"name", "arguments"}`;
    /// call ids are 9 letters and digits.
    Mistral,
    /// This crate's format for templates without tool support (see [`super::generic`]).
    Generic,
}

impl ToolFormat {
    pub const ALL: [ToolFormat; 5] = [ToolFormat::Hermes, ToolFormat::Llama3, ToolFormat::Xlam, ToolFormat::Mistral, ToolFormat::Generic];

    pub fn name(self) -> &'static str {
        match self {
            ToolFormat::Hermes => "hermes",
            ToolFormat::Llama3 => "llama3",
            ToolFormat::Xlam => "xlam",
            ToolFormat::Mistral => "mistral",
            ToolFormat::Generic => "generic",
        }
    }

    pub fn from_name(name: &str) -> anyhow::Result<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
            anyhow::anyhow!("unknown tool-call format `{name}` (known: {})", known.join(", "))
        })
    }

    /// The format a template speaks. A preset's `hint` (a format name) wins; a template that
    /// never reads `tools` gets the generic format; otherwise the template's own markers decide.
    pub fn detect(template: &ChatTemplate, hint: Option<&str>) -> anyhow::Result<Self> {
        if let Some(hint) = hint {
            return Self::from_name(hint);
        }
        if !template.supports_tools() {
            return Ok(ToolFormat::Generic);
        }
        let text: String = template.sources().collect();
        let has = |marker: &str| text.contains(marker);
        Ok(if has("[TOOL_CALLS]") {
            ToolFormat::Mistral
        } else if has("<tool_call>") {
            ToolFormat::Hermes
        } else if has("[{\"name\"") || has("[{\\\"name\\\"") {
            ToolFormat::Xlam
        } else if has("<|python_tag|>") || has("ipython") {
            ToolFormat::Llama3
        } else {
            anyhow::bail!(
                "the chat template {} renders tools in a format this crate does not recognise; \
                 name one (hermes, llama3, xlam, mistral) in the model preset",
                template.source()
            )
        })
    }

    /// Whether the model may make several calls in one turn. Llama 3 templates accept one.
    pub fn parallel_calls(self) -> bool {
        self != ToolFormat::Llama3
    }
}

/// What a parse needs besides the text.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The offered tools, as OpenAI function schemas.
    pub tools: &'a [Value],
    /// Whether several calls in one turn are acceptable here.
    pub parallel: bool,
    /// Identifies the conversation, for call ids.
    pub conversation_seed: &'a str,
    /// The assistant turn being parsed, for call ids.
    pub turn: usize,
}

/// A completion split into its text and its calls.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCompletion {
    /// What the model said besides the calls, trimmed.
    pub text: String,
    pub calls: Vec<ToolCall>,
}

impl ParsedCompletion {
    /// The assistant message to append to the conversation.
    pub fn into_message(self) -> super::Message {
        super::Message::assistant_calls(self.text, self.calls)
    }
}

/// Why a completion is not a valid tool call. The text is meant for the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolCallError {
    #[error("the tool call ends before it is complete: {0:?}")]
    Truncated(String),
    #[error("the tool call is not valid JSON ({detail}) in: {text:?}")]
    InvalidJson { detail: String, text: String },
    #[error("a tool call must be {expected}, but got: {found}")]
    Shape { expected: &'static str, found: String },
    #[error("`{name}` is not one of the offered tools ({known})")]
    UnknownTool { name: String, known: String },
    #[error("unexpected text after the tool call: {0:?}")]
    TrailingText(String),
    #[error("{found} tool calls in one turn, but at most one is allowed")]
    TooManyCalls { found: usize },
}

/// Splits a completion in `format` into text and calls, checked against the offered tools.
pub fn parse(format: ToolFormat, completion: &str, context: &CallContext) -> Result<ParsedCompletion, ToolCallError> {
    let raw = match format {
        ToolFormat::Hermes | ToolFormat::Generic => parsers::tagged_blocks(completion)?,
        ToolFormat::Llama3 => parsers::llama3(completion)?,
        ToolFormat::Xlam => parsers::xlam(completion)?,
        ToolFormat::Mistral => parsers::mistral(completion)?,
    };
    if raw.calls.len() > 1 && !(context.parallel && format.parallel_calls()) {
        return Err(ToolCallError::TooManyCalls { found: raw.calls.len() });
    }
    let known = tool_names(context.tools);
    let calls = raw
        .calls
        .into_iter()
        .enumerate()
        .map(|(index, (name, arguments))| {
            if !known.iter().any(|k| *k == name) {
                return Err(ToolCallError::UnknownTool { name, known: known.join(", ") });
            }
            Ok(ToolCall { id: call_id(format, context.conversation_seed, context.turn, index), name, arguments })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedCompletion { text: raw.text, calls })
}

/// The names of OpenAI function schemas (`{"type": "function", "function": {"name": ...}}`),
/// or of bare `{"name": ...}` schemas.
pub fn tool_names(tools: &[Value]) -> Vec<&str> {
    tools.iter().filter_map(|t| t.get("function").unwrap_or(t).get("name").and_then(Value::as_str)).collect()
}

/// A call id that depends only on the format, the conversation, the turn and the call's index,
/// so that regenerating a conversation reproduces its ids. Mistral's templates require exactly
/// 9 letters or digits; the others get `call_` and 24 hex digits.
pub fn call_id(format: ToolFormat, conversation_seed: &str, turn: usize, index: usize) -> String {
    let digest = Sha256::new()
        .chain_update(format.name())
        .chain_update([0])
        .chain_update(conversation_seed)
        .chain_update([0])
        .chain_update(turn.to_le_bytes())
        .chain_update(index.to_le_bytes())
        .finalize();
    match format {
        ToolFormat::Mistral => {
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            digest.iter().take(9).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
        }
        _ => {
            let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
            format!("call_{hex}")
        }
    }
}
