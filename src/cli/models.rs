//! `apigen-mt models`: the presets, and what a model is made of.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::load::ModelArgs;
use crate::chat::{Message, Role, ToolCall};
use crate::engine::loaded::TextModel;
use crate::engine::Prompt;
use crate::model::presets;

/// List model presets or inspect a model.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show the model presets.
    #[command(long_about = "Show the model presets: short names for models with a known hub location,
tool-call format and context length. Built-in presets come from the repository's models/ folder;
add your own (or override one) as <name>.toml files in $APIGEN_MT_MODELS or
~/.config/apigen-mt/models, with the keys description, model, tool_format and context_length,
and optionally license (the hub's licence id, for dataset cards) and a [shape] table (the
architecture, for `bench --random-weights`; see models/*.toml).

Examples:
  apigen-mt models list
  apigen-mt models list --json | jq '.[].name'")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Load a model and describe it.
    #[command(long_about = "Load a model and describe it: architecture, parameter count, weight dtype or
quantization, context length, special tokens, and whether its chat template renders tools itself
(otherwise apigen-mt describes tools to it in a generic format).

Examples:
  apigen-mt models inspect --model ../shared/models/smollm2-135m-instruct/model-q4_1.gguf
  apigen-mt models inspect --model qwen2.5-0.5b-instruct --offline --json")]
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the exact prompt text a model's chat template makes of a conversation.
    #[command(long_about = "Print the exact prompt text a model is given for a conversation: the messages (and tools)
rendered through the model's own chat template, as the engine renders every request. For a model
whose template does not render tools, the tools and calls are first written in apigen-mt's generic
format, as in a run. Only the tokenizer and template are loaded, not the weights.

--messages takes a JSON file: a list of OpenAI-style messages, or an object with `messages` and
optionally `tools` (a line of dataset.openai.jsonl, saved as a file, works). A call's `arguments`
may be an object or a JSON string. The text is printed as it is, with no newline added.

Examples:
  apigen-mt models render -m qwen2.5-0.5b-instruct --messages chat.json --add-generation-prompt
  apigen-mt models render -m ./my-model --messages chat.json --tools tools.json --tokens
  apigen-mt models render -m qwen3-0.6b --messages chat.json --thinking false --json")]
    Render {
        #[command(flatten)]
        model: ModelArgs,
        /// The conversation (JSON: a list of messages, or an object with `messages` and `tools`).
        #[arg(long, value_name = "FILE")]
        messages: PathBuf,
        /// Tools offered, a JSON list of OpenAI function schemas (instead of the file's `tools`).
        #[arg(long, value_name = "FILE")]
        tools: Option<PathBuf>,
        /// End with the assistant's turn opened, as every request for a reply does.
        #[arg(long)]
        add_generation_prompt: bool,
        /// The template's `enable_thinking` (Qwen3's reasoning switch); unset leaves its default.
        #[arg(long, value_name = "BOOL")]
        thinking: Option<bool>,
        /// Also print the token ids the text becomes (after the text, one JSON list on its own line).
        #[arg(long)]
        tokens: bool,
        /// Print one JSON object {"prompt", "tokens"} instead.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ModelsArgs) -> Result<()> {
    match args.command {
        ModelsCommand::List { json } => list(json),
        ModelsCommand::Inspect { model, json } => inspect(&model, json),
        ModelsCommand::Render { model, messages, tools, add_generation_prompt, thinking, tokens, json } => {
            let (messages, file_tools) = read_conversation(&messages)?;
            let tools = match tools {
                Some(path) => read_tools(&path)?,
                None => file_tools,
            };
            let prompt = Prompt::Chat { messages, tools, add_generation_prompt, thinking };
            render(&model, &prompt, tokens, json)
        }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// A conversation file: a list of messages, or an object with `messages` and `tools`.
fn read_conversation(path: &Path) -> Result<(Vec<Message>, Vec<Value>)> {
    let value = read_json(path)?;
    let (messages, tools) = match &value {
        Value::Array(list) => (list.as_slice(), Vec::new()),
        Value::Object(map) => match map.get("messages") {
            Some(Value::Array(list)) => (list.as_slice(), map.get("tools").and_then(Value::as_array).cloned().unwrap_or_default()),
            _ => bail!("{}: an object needs a `messages` list", path.display()),
        },
        _ => bail!("{}: expected a list of messages or an object with `messages`", path.display()),
    };
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(m).with_context(|| format!("{}: message {i}", path.display())))
        .collect::<Result<_>>()?;
    Ok((messages, tools))
}

fn read_tools(path: &Path) -> Result<Vec<Value>> {
    match read_json(path)? {
        Value::Array(list) => Ok(list),
        _ => bail!("{}: expected a JSON list of tool schemas", path.display()),
    }
}

/// One OpenAI-style message (`tool_calls` with `function.arguments` as an object or a JSON
/// string), or one as the crate stores them (`{id, name, arguments}` calls).
pub fn message(m: &Value) -> Result<Message> {
    let role = match m["role"].as_str() {
        Some("system") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        other => bail!("unknown role {other:?}: expected system, user, assistant or tool"),
    };
    let content = match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => bail!("`content` is {other}, not a string"),
    };
    let mut tool_calls = Vec::new();
    for (k, c) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let function = if c["function"].is_object() { &c["function"] } else { c };
        let name = function["name"].as_str().with_context(|| format!("call {k} has no name"))?;
        let arguments = match &function["arguments"] {
            Value::Object(map) => map.clone(),
            Value::String(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => map,
                _ => bail!("the arguments of call {k} ({name}) are not a JSON object"),
            },
            Value::Null => Default::default(),
            other => bail!("the arguments of call {k} ({name}) are {other}, not an object"),
        };
        tool_calls.push(ToolCall { id: c["id"].as_str().unwrap_or_default().to_string(), name: name.to_string(), arguments });
    }
    let text = |key: &str| m[key].as_str().map(str::to_string);
    Ok(Message { role, content, tool_calls, tool_call_id: text("tool_call_id"), name: text("name") })
}

fn render(args: &ModelArgs, prompt: &Prompt, tokens: bool, json: bool) -> Result<()> {
    let options = args.load_options()?;
    let model =
        TextModel::load(&args.model, &options).with_context(|| format!("loading the tokenizer and chat template of {}", args.model))?;
    let text = model.render(prompt)?.unwrap_or_default();
    let ids = if tokens || json { Some(model.encode(&text)?) } else { None };
    if json {
        println!("{}", serde_json::json!({"prompt": text, "tokens": ids}));
        return Ok(());
    }
    print!("{text}");
    if let Some(ids) = ids {
        if !text.ends_with('\n') {
            println!();
        }
        println!("{}", serde_json::to_string(&ids)?);
    }
    Ok(())
}

fn list(json: bool) -> Result<()> {
    let presets = presets::load_all(&presets::user_dirs())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&presets)?);
        return Ok(());
    }
    let name_width = presets.iter().map(|p| p.name.len()).max().unwrap_or(4).max(4);
    println!("{:<name_width$}  {:<8}  {:>8}  MODEL", "NAME", "TOOLS", "CONTEXT");
    for p in &presets {
        println!("{:<name_width$}  {:<8}  {:>8}  {}", p.name, p.tool_format.name(), p.context_length, p.model);
    }
    Ok(())
}

fn inspect(args: &ModelArgs, json: bool) -> Result<()> {
    let d = args.load()?.describe();
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    println!("name:            {}", d.name);
    println!("architecture:    {}", d.architecture);
    println!("parameters:      {} ({:.1}M)", d.parameters, d.parameters as f64 / 1e6);
    println!("weights:         {}", d.weights);
    println!("context length:  {}", d.context_length);
    println!("vocabulary:      {}", d.vocab_size);
    println!("bos token:       {}", d.bos_token.as_deref().unwrap_or("(none)"));
    println!("eos tokens:      {}", d.eos_tokens.join(" "));
    println!("template tools:  {}", if d.template_supports_tools { "yes" } else { "no (generic tool prompt)" });
    println!("tool format:     {}", d.tool_format);
    Ok(())
}
