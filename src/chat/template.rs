//! A model's own Jinja chat template, rendered exactly as transformers' `apply_chat_template`
//! renders it.
//!
//! The prompt a model sees during data generation must be the prompt it was trained on, byte
//! for byte, so this module reproduces transformers' Jinja setup on minijinja: `trim_blocks`
//! and `lstrip_blocks`, Python string methods (minijinja-contrib's pycompat), Python's printing
//! of `None`/`True`/`False`, `raise_exception`, `tojson` as `json.dumps(ensure_ascii=False)`
//! and `strftime_now` pinned to a caller-chosen date. The context is transformers' too:
//! `messages` in the OpenAI shape (see [`template_message`]), `tools` (`None` when there are
//! none), `add_generation_prompt`, `bos_token` and `eos_token`.
//!
//! Templates that never read `tools` cannot show tool schemas, calls or results; for those the
//! conversation is first rewritten into the [generic tool format](super::generic).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use minijinja::value::{Kwargs, Value as JinjaValue, ValueKind};
use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde_json::{json, Value};

use super::generic;
use super::strftime::CalendarDate;
use super::Message;
use crate::pyjson::{dumps_with, DumpOptions};

const DEFAULT: &str = "default";
/// transformers picks a template of this name, when the tokenizer has one, for requests with tools.
const TOOL_USE: &str = "tool_use";

/// What a render may depend on beyond the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// The date `strftime_now` reports, so that a run renders the same prompts on any day.
    pub date: CalendarDate,
}

impl Default for RenderOptions {
    /// 2025-01-01: an arbitrary fixed day, chosen once so that default runs are reproducible.
    fn default() -> Self {
        Self { date: CalendarDate { year: 2025, month: 1, day: 1 } }
    }
}

/// A compiled chat template with the special-token strings it refers to.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Where the template came from (a file and key), for error messages.
    source: String,
    /// The Jinja text of each named template, for format detection.
    texts: Vec<String>,
    has_tool_use: bool,
    bos_token: String,
    eos_token: String,
    supports_tools: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("source", &self.source).field("supports_tools", &self.supports_tools).finish()
    }
}

/// A minijinja environment set up the way transformers sets up Jinja: `trim_blocks`,
/// `lstrip_blocks`, Python string methods, Python's printing of values, `tojson` as
/// `json.dumps(ensure_ascii=False)`, and `raise_exception`. Prompt templates use it too, so that
/// every template in the project follows one set of rules.
pub fn python_environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| anyhow!("cannot configure Jinja syntax: {e}"))?;
    env.set_syntax(syntax);
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python_formatter);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", raise_exception);
    Ok(env)
}

impl ChatTemplate {
    /// Compiles `templates` (name → Jinja source; one must be named `default`). `source` says
    /// where they came from in error messages.
    pub fn new(
        source: impl Into<String>,
        templates: Vec<(String, String)>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self> {
        let source = source.into();
        let env = python_environment()?;
        let mut template = Self {
            env,
            source: source.clone(),
            texts: templates.iter().map(|(_, text)| text.clone()).collect(),
            has_tool_use: false,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            supports_tools: false,
        };
        template.set_options(RenderOptions::default());
        for (name, text) in templates {
            template.env.add_template_owned(name.clone(), text).map_err(|e| describe(&source, &name, &e))?;
        }
        let read_tools = |name: &str| -> Option<bool> {
            let t = template.env.get_template(name).ok()?;
            Some(t.undeclared_variables(true).iter().any(|v| v == "tools" || v.starts_with("tools.")))
        };
        template.supports_tools = match read_tools(DEFAULT) {
            Some(reads) => reads || read_tools(TOOL_USE).unwrap_or(false),
            None => bail!("{source} has no chat template named `{DEFAULT}`"),
        };
        template.has_tool_use = read_tools(TOOL_USE).is_some();
        Ok(template)
    }

    /// Reads `chat_template` (a string, or a list of `{name, template}`), `bos_token` and
    /// `eos_token` from a `tokenizer_config.json`. Newer checkpoints keep the template in a
    /// `chat_template.jinja` beside it instead; that file is used when the key is absent.
    pub fn from_tokenizer_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let config: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        let token = |key: &str| -> String {
            match &config[key] {
                Value::String(s) => s.clone(),
                // The AddedToken form: {"content": "<s>", "lstrip": false, ...}
                Value::Object(o) => o.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
                _ => String::new(),
            }
        };
        let source = format!("{} (chat_template)", path.display());
        let templates = match &config["chat_template"] {
            Value::String(s) => vec![(DEFAULT.to_string(), s.clone())],
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match (item["name"].as_str(), item["template"].as_str()) {
                    (Some(name), Some(text)) => Ok((name.to_string(), text.to_string())),
                    _ => bail!("{source}: entry {i} is not an object with string `name` and `template`"),
                })
                .collect::<Result<Vec<_>>>()?,
            Value::Null => {
                let jinja = path.with_file_name("chat_template.jinja");
                if !jinja.exists() {
                    bail!("{} has no `chat_template` and there is no {} beside it", path.display(), jinja.display());
                }
                return Self::from_jinja_file(&jinja, token("bos_token"), token("eos_token"));
            }
            other => bail!("{source} is neither a string nor a list but {other}"),
        };
        Self::new(source, templates, token("bos_token"), token("eos_token"))
    }

    /// A template kept in its own file, such as `chat_template.jinja`.
    pub fn from_jinja_file(path: &Path, bos_token: impl Into<String>, eos_token: impl Into<String>) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::new(path.display().to_string(), vec![(DEFAULT.to_string(), text)], bos_token, eos_token)
    }

    /// `tokenizer.chat_template` (and `tokenizer.chat_template.<name>`) from a GGUF file, with
    /// the BOS and EOS token strings its token ids name. `path` names the file in errors.
    pub fn from_gguf(content: &candle_core::quantized::gguf_file::Content, path: &Path) -> Result<Self> {
        use crate::tokenizer::gguf::{metadata_str, metadata_strings};
        let source = format!("{} (tokenizer.chat_template)", path.display());
        let mut templates = vec![(
            DEFAULT.to_string(),
            metadata_str(content, "tokenizer.chat_template")
                .with_context(|| format!("{} carries no chat template", path.display()))?
                .to_string(),
        )];
        for (key, value) in &content.metadata {
            if let (Some(name), candle_core::quantized::gguf_file::Value::String(text)) =
                (key.strip_prefix("tokenizer.chat_template."), value)
            {
                templates.push((name.to_string(), text.clone()));
            }
        }
        let tokens = metadata_strings(content, "tokenizer.ggml.tokens").with_context(|| path.display().to_string())?;
        let token = |key: &str| -> String {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_u32().ok())
                .and_then(|id| tokens.get(id as usize))
                .map_or_else(String::new, |t| t.to_string())
        };
        Self::new(source, templates, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"))
    }

    /// Pins what the render depends on besides the conversation.
    pub fn with_options(mut self, options: RenderOptions) -> Self {
        self.set_options(options);
        self
    }

    fn set_options(&mut self, options: RenderOptions) {
        let date = options.date;
        self.env.add_function("strftime_now", move |format: String| {
            date.strftime(&format).map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, e.to_string()))
        });
    }

    /// Whether the template itself renders tool schemas, calls and results. When it does not,
    /// [`Self::render`] uses the generic format.
    pub fn supports_tools(&self) -> bool {
        self.supports_tools
    }

    /// Where the template came from (a file and key).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The Jinja text of every named template.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.texts.iter().map(String::as_str)
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// The prompt text for `messages`, offering `tools` (OpenAI function schemas:
    /// `{"type": "function", "function": {"name", "description", "parameters"}}`).
    pub fn render(&self, messages: &[Message], tools: &[Value], add_generation_prompt: bool) -> Result<String> {
        self.render_with_thinking(messages, tools, add_generation_prompt, None)
    }

    /// [`Self::render`], with `enable_thinking` set for templates that read it (Qwen3's turn the
    /// model's reasoning on or off with it). `None` leaves it undefined, so the template decides.
    pub fn render_with_thinking(
        &self,
        messages: &[Message],
        tools: &[Value],
        add_generation_prompt: bool,
        thinking: Option<bool>,
    ) -> Result<String> {
        let adapted;
        let (messages, tools) = if self.supports_tools {
            (messages, tools)
        } else {
            adapted = generic::adapt(messages, tools);
            (adapted.as_slice(), &[][..])
        };
        let name = if !tools.is_empty() && self.has_tool_use { TOOL_USE } else { DEFAULT };
        let template = self.env.get_template(name).map_err(|e| describe(&self.source, name, &e))?;
        let messages: Vec<Value> = messages.iter().map(template_message).collect();
        let tools = if tools.is_empty() { Value::Null } else { Value::Array(tools.to_vec()) };
        let mut context = json!({
            "messages": messages,
            "tools": tools,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        });
        if let Some(thinking) = thinking {
            context["enable_thinking"] = Value::Bool(thinking);
        }
        template.render(minijinja::value::Serde(&context)).map_err(|e| describe(&self.source, name, &e))
    }
}

/// A message as transformers' templates read it: the OpenAI chat shape, with `tool_calls` as
/// `[{"id", "type": "function", "function": {"name", "arguments"}}]` where `arguments` is an
/// object (not the JSON string of the OpenAI API), and keys present only when they have a value
/// (templates test `'tool_calls' in message` and `message.name is defined`).
pub fn template_message(message: &Message) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("role".into(), Value::from(message.role.as_str()));
    object.insert("content".into(), Value::from(message.content.as_str()));
    if !message.tool_calls.is_empty() {
        let calls = message
            .tool_calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        object.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &message.tool_call_id {
        object.insert("tool_call_id".into(), Value::from(id.as_str()));
    }
    if let Some(name) = &message.name {
        object.insert("name".into(), Value::from(name.as_str()));
    }
    Value::Object(object)
}

/// A template error with the template's source, name and line.
fn describe(source: &str, name: &str, error: &JinjaError) -> anyhow::Error {
    let line = error.line().map_or_else(String::new, |l| format!(", line {l}"));
    anyhow!("chat template {source} [template `{name}`{line}]: {error}")
}

/// Prints values as Jinja2 does under Python: `None`, `True`, `False`.
fn python_formatter(out: &mut minijinja::Output, state: &mut minijinja::State, value: &JinjaValue) -> Result<(), JinjaError> {
    let text = match value.kind() {
        ValueKind::None => "None",
        ValueKind::Bool if value.is_true() => "True",
        ValueKind::Bool => "False",
        _ => return minijinja::escape_formatter(out, state, value),
    };
    out.write_str(text).map_err(JinjaError::from)
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)`.
fn tojson(value: &JinjaValue, kwargs: Kwargs) -> Result<JinjaValue, JinjaError> {
    let bad = |what: String| JinjaError::new(ErrorKind::InvalidOperation, what);
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let separators = match separators {
        Some(pair) if pair.len() == 2 => Some((pair[0].clone(), pair[1].clone())),
        Some(other) => return Err(bad(format!("tojson separators must be two strings, not {other:?}"))),
        None => None,
    };
    let json = serde_json::to_value(value).map_err(|e| bad(format!("tojson cannot serialize {value}: {e}")))?;
    let options = DumpOptions { ensure_ascii: ensure_ascii.unwrap_or(false), indent, sort_keys: sort_keys.unwrap_or(false), separators };
    // Marked safe, as transformers' filter returns Markup.
    Ok(JinjaValue::from_safe_string(dumps_with(&json, &options)))
}

fn raise_exception(message: String) -> Result<JinjaValue, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_inline(source: &str) -> Result<String> {
        let template = ChatTemplate::new("inline", vec![(DEFAULT.into(), source.into())], "<s>", "</s>")?
            .with_options(RenderOptions { date: CalendarDate::new(2024, 2, 29)? });
        template.render(&[Message::user("hi")], &[], true)
    }

    #[test]
    fn prints_and_filters_like_python() {
        // Each expectation is what jinja2 under transformers prints.
        assert_eq!(render_inline("{{ none }} {{ true }} {{ false }} {{ undefined_name }}.").unwrap(), "None True False .");
        assert_eq!(render_inline(r#"{{ {"b": 1, "a": [1.0, "é<"]} | tojson }}"#).unwrap(), r#"{"b": 1, "a": [1.0, "é<"]}"#);
        assert_eq!(render_inline(r#"{{ {"b": 1, "a": 2} | tojson(separators=[",", ":"], sort_keys=true) }}"#).unwrap(), r#"{"a":2,"b":1}"#);
        assert_eq!(render_inline(r#"{{ "  x  ".strip() }}|{{ "a,b".split(",") | length }}"#).unwrap(), "x|2");
        assert_eq!(render_inline(r#"{{ strftime_now("%d %B %Y") }}"#).unwrap(), "29 February 2024");
        assert_eq!(render_inline("{{ bos_token }}{{ messages[0].content }}{{ eos_token }}").unwrap(), "<s>hi</s>");
    }

    #[test]
    fn errors_name_the_source_and_line() {
        let err = format!("{:#}", render_inline("line one\n{{ raise_exception('no system message') }}").unwrap_err());
        assert!(err.contains("inline") && err.contains("line 2") && err.contains("no system message"), "{err}");
        let err = format!("{:#}", render_inline("{{ strftime_now('%Q') }}").unwrap_err());
        assert!(err.contains("%Q"), "{err}");
        let err = ChatTemplate::new("inline", vec![("other".into(), "x".into())], "", "").unwrap_err().to_string();
        assert!(err.contains("no chat template named `default`"), "{err}");
    }
}
