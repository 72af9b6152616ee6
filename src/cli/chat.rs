//! `apigen-mt chat`: talk to a model, once or interactively.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use super::load::ModelArgs;
use crate::chat::thinking::Part;
use crate::chat::tools::{parse, tool_choice_constraint, CallContext, ToolFormat};
use crate::chat::Message;
use crate::engine::{Completion, Constraint, EngineHandle, FinishReason, Prompt, Request, SamplingParams};

/// Chat with a model through its own chat template.
#[derive(Debug, Args)]
#[command(long_about = "Chat with a model through its own chat template.

With --prompt, prints the reply and exits: streamed as it is generated on a terminal, only the
reply's text when the output is piped. Without --prompt, starts an interactive chat that keeps
the conversation's history: type a message and press Enter; /reset starts over; end of input
(Ctrl-D) quits.

Examples:
  apigen-mt chat --model smollm2-135m-instruct --prompt 'Name three primes.'
  apigen-mt chat -m ./models/my-model --temperature 0 --max-tokens 64 --prompt 'Hi'
  apigen-mt chat -m Qwen/Qwen2.5-0.5B-Instruct-GGUF:qwen2.5-0.5b-instruct-q4_k_m.gguf --offline
  echo 'Say hi' | apigen-mt chat -m qwen2.5-0.5b-instruct > reply.txt

Structured output: --json-schema, --regex or --grammar constrain every token, so the reply is
valid by construction (it ends with finish reason `constraint`; one cut off by --max-tokens is an
error). With --tools, the model sees the tools in its own format; the parsed calls are printed as
a JSON array of {name, arguments}, and any text besides them goes to stderr:
  apigen-mt chat -m smollm2-135m-instruct --json-schema verdict.schema.json --prompt 'Judge: ...'
  apigen-mt env tools retail > tools.json
  apigen-mt chat -m smollm2-135m-instruct --tools tools.json --tool-choice required \\
      --prompt 'Cancel order #W0000001, I ordered it by mistake.'")]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The user message; without it, chat interactively.
    #[arg(long, short = 'p')]
    pub prompt: Option<String>,
    /// A system message to start the conversation with.
    #[arg(long)]
    pub system: Option<String>,
    /// Sampling temperature; 0 picks the most likely token every time.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens whose probabilities add up to this.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Drop tokens less likely than this fraction of the most likely one (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Penalise tokens from the last 64 (1: no penalty).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Seed of the sampler's random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most tokens to generate per reply.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// End the reply at this text (not printed); repeatable.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Constrain the reply to JSON that validates against this JSON Schema file.
    #[arg(long, value_name = "FILE", group = "constraint")]
    pub json_schema: Option<PathBuf>,
    /// Constrain the reply to match this regular expression.
    #[arg(long, value_name = "RE", group = "constraint")]
    pub regex: Option<String>,
    /// Constrain the reply to this Lark grammar (llguidance's dialect, which allows `%json {...}`).
    #[arg(long, value_name = "FILE.lark", group = "constraint")]
    pub grammar: Option<PathBuf>,
    /// Offer these tools (an OpenAI `tools` JSON list, as `apigen-mt env tools` prints) and print
    /// the calls the model makes as a JSON array of {name, arguments}. Needs --prompt.
    #[arg(long, value_name = "FILE", conflicts_with = "constraint", requires = "prompt")]
    pub tools: Option<PathBuf>,
    /// With --tools: `auto` (the model answers in text or calls; a call it starts must be
    /// well-formed, to an offered tool, with valid arguments), `required` (the reply must
    /// be a call to one of the tools) or a tool's name (the reply must call that tool).
    #[arg(long, default_value = "auto", value_name = "auto|required|NAME")]
    pub tool_choice: String,
    /// Let a reasoning model (Qwen3) think before it answers, or not: the chat template's
    /// `enable_thinking`. Without the flag, the model's own default. Its reasoning is printed to
    /// stderr, the answer to stdout.
    #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
    pub thinking: Option<bool>,
}

impl ChatArgs {
    fn request(&self, messages: &[Message], tools: &[Value], constraint: Option<&Constraint>) -> Request {
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            ..SamplingParams::default()
        };
        let prompt =
            Prompt::Chat { messages: messages.to_vec(), tools: tools.to_vec(), add_generation_prompt: true, thinking: self.thinking };
        let mut request = Request::new(prompt).sampling(sampling).max_tokens(self.max_tokens).stop(self.stop.clone());
        request.constraint = constraint.cloned();
        request
    }

    /// The constraint the flags ask for, read before the model loads so that a bad file fails fast.
    fn constraint(&self) -> Result<Option<Constraint>> {
        Ok(if let Some(path) = &self.json_schema {
            Some(Constraint::JsonSchema(read_json(path)?))
        } else if let Some(re) = &self.regex {
            Some(Constraint::Regex(re.clone()))
        } else if let Some(path) = &self.grammar {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading grammar {}", path.display()))?;
            Some(Constraint::Lark(text))
        } else {
            None
        })
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))
}

/// The tools of `--tools`: a JSON list of OpenAI function schemas (or bare function objects).
fn read_tools(path: &Path) -> Result<Vec<Value>> {
    let Value::Array(tools) = read_json(path)? else {
        bail!("{}: expected a JSON list of tools", path.display());
    };
    for (i, tool) in tools.iter().enumerate() {
        let function = tool.get("function").unwrap_or(tool);
        if function.get("name").and_then(Value::as_str).is_none() {
            bail!("{}: tool {i} has no \"name\"", path.display());
        }
    }
    Ok(tools)
}

pub fn run(args: ChatArgs) -> Result<()> {
    validate(&args)?;
    let constraint = args.constraint()?;
    let tools = args.tools.as_deref().map(read_tools).transpose()?;
    let engine = args.model.start()?;
    let mut history: Vec<Message> = args.system.iter().map(Message::system).collect();
    if let (Some(prompt), Some(tools)) = (&args.prompt, &tools) {
        history.push(Message::user(prompt));
        return call_tools(&engine, &args, &history, tools);
    }
    if let Some(prompt) = &args.prompt {
        history.push(Message::user(prompt));
        reply(&engine, &args, &history, constraint.as_ref())?;
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal();
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/reset" {
            history.truncate(usize::from(args.system.is_some()));
            eprintln!("(conversation reset)");
            continue;
        }
        history.push(Message::user(line));
        let completion = reply(&engine, &args, &history, constraint.as_ref())?;
        history.push(Message::assistant(completion.text));
    }
    Ok(())
}

fn validate(args: &ChatArgs) -> Result<()> {
    if !(args.temperature >= 0.0) {
        bail!("--temperature must be 0 or more, not {}", args.temperature);
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], not {}", args.top_p);
    }
    if !(0.0..=1.0).contains(&args.min_p) {
        bail!("--min-p must be in [0, 1], not {}", args.min_p);
    }
    if !(args.repeat_penalty > 0.0) {
        bail!("--repeat-penalty must be positive, not {}", args.repeat_penalty);
    }
    Ok(())
}

/// One turn with tools: prints the calls as a JSON array on stdout and any other text on stderr.
fn call_tools(engine: &EngineHandle, args: &ChatArgs, history: &[Message], tools: &[Value]) -> Result<()> {
    let format = ToolFormat::from_name(&engine.info().tool_format)?;
    let constraint = tool_choice_constraint(&args.tool_choice, format, tools).context("--tool-choice")?;
    let completion = engine.generate(args.request(history, tools, constraint.as_ref()))?;
    if let Some(reasoning) = &completion.reasoning {
        let mut shown = ReasoningOnStderr::new();
        shown.piece(reasoning);
        shown.end();
    }
    // In `auto` mode a plain-text reply cut short is still text; a cut call fails to parse below.
    check_finish(&completion, constraint.is_some() && args.tool_choice != "auto")?;
    let context = CallContext { tools, parallel: format.parallel_calls(), conversation_seed: "chat", turn: 0 };
    let parsed = parse(format, &completion.text, &context)
        .map_err(|e| anyhow::anyhow!("the model's reply is not a valid tool call: {e}\nreply: {}", completion.text))?;
    let calls: Vec<Value> = parsed.calls.iter().map(|c| json!({"name": c.name, "arguments": c.arguments})).collect();
    println!("{}", serde_json::to_string(&calls)?);
    if !parsed.text.is_empty() {
        eprintln!("{}", parsed.text);
    }
    Ok(())
}

/// Turns a failed or cut-off completion into an error. A constrained reply cut off by
/// --max-tokens is incomplete, so it is never presented as valid output.
fn check_finish(completion: &Completion, constrained: bool) -> Result<()> {
    match completion.finish_reason {
        FinishReason::Error => bail!("generation failed: {}", completion.error.as_deref().unwrap_or("unknown error")),
        // Refused at admission: the prompt leaves no room in the context.
        FinishReason::Length if completion.error.is_some() => bail!("{}", completion.error.as_deref().unwrap_or_default()),
        FinishReason::Length if constrained => {
            bail!(
                "the constrained reply reached --max-tokens {} before it was complete: {:?}",
                completion.completion_tokens(),
                completion.text
            )
        }
        _ => Ok(()),
    }
}

/// Generates one reply: streamed to a terminal, printed whole to a pipe.
fn reply(engine: &EngineHandle, args: &ChatArgs, history: &[Message], constraint: Option<&Constraint>) -> Result<Completion> {
    let request = args.request(history, &[], constraint);
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    let mut reasoning = ReasoningOnStderr::new();
    let completion = if terminal {
        let completion = engine.generate_streaming_parts(request, &mut |part, piece| match part {
            Part::Reasoning => reasoning.piece(piece),
            Part::Answer => {
                reasoning.end();
                // A closed terminal is not worth failing generation over.
                let _ = stdout.write_all(piece.as_bytes());
                let _ = stdout.flush();
            }
        })?;
        reasoning.end();
        writeln!(stdout)?;
        completion
    } else {
        let completion = engine.generate(request)?;
        if let Some(text) = &completion.reasoning {
            reasoning.piece(text);
            reasoning.end();
        }
        writeln!(stdout, "{}", completion.text)?;
        completion
    };
    if completion.finish_reason == FinishReason::Length && completion.text.is_empty() && completion.reasoning.is_some() {
        eprintln!("warning: the reply reached --max-tokens while still reasoning; raise --max-tokens or pass --thinking off");
    }
    check_finish(&completion, constraint.is_some())?;
    if terminal {
        let m = engine.metrics();
        let secs = m.busy_time.as_secs_f64();
        eprintln!(
            "[{} prompt + {} generated tokens, {:.1} tokens/s, finish: {:?}]",
            completion.prompt_tokens,
            completion.completion_tokens(),
            if secs > 0.0 { m.generated_tokens as f64 / secs } else { 0.0 },
            completion.finish_reason
        );
    }
    Ok(completion)
}

/// Prints a model's reasoning to stderr, dimmed when stderr is a terminal, so that stdout carries
/// the answer alone.
struct ReasoningOnStderr {
    dim: bool,
    open: bool,
}

impl ReasoningOnStderr {
    fn new() -> Self {
        Self { dim: std::io::stderr().is_terminal(), open: false }
    }

    fn piece(&mut self, text: &str) {
        let mut stderr = std::io::stderr().lock();
        if !self.open && self.dim {
            let _ = stderr.write_all(b"\x1b[2m");
        }
        self.open = true;
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
    }

    /// Closes the reasoning, if any was printed, before the answer starts.
    fn end(&mut self) {
        if std::mem::take(&mut self.open) {
            let reset = if self.dim { "\x1b[0m" } else { "" };
            eprintln!("{reset}");
        }
    }
}
