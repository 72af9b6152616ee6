//! `apigen-mt chat`: talk to a model, once or interactively.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use clap::Args;

use super::load::ModelArgs;
use crate::chat::Message;
use crate::engine::sequential::SequentialEngine;
use crate::engine::{Completion, EngineHandle, FinishReason, Prompt, Request, SamplingParams};

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
  echo 'Say hi' | apigen-mt chat -m qwen2.5-0.5b-instruct > reply.txt")]
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
}

impl ChatArgs {
    fn request(&self, messages: &[Message]) -> Request {
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            ..SamplingParams::default()
        };
        Request::new(Prompt::chat(messages.to_vec()))
            .sampling(sampling)
            .max_tokens(self.max_tokens)
            .stop(self.stop.clone())
    }
}

pub fn run(args: ChatArgs) -> Result<()> {
    validate(&args)?;
    let engine = SequentialEngine::start(args.model.load()?)?;
    let mut history: Vec<Message> = args.system.iter().map(Message::system).collect();
    if let Some(prompt) = &args.prompt {
        history.push(Message::user(prompt));
        reply(&engine, &args, &history)?;
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
        let completion = reply(&engine, &args, &history)?;
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

/// Generates one reply: streamed to a terminal, printed whole to a pipe.
fn reply(engine: &EngineHandle, args: &ChatArgs, history: &[Message]) -> Result<Completion> {
    let request = args.request(history);
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    let completion = if terminal {
        let completion = engine.generate_streaming(request, &mut |piece| {
            // A closed terminal is not worth failing generation over.
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        })?;
        writeln!(stdout)?;
        completion
    } else {
        let completion = engine.generate(request)?;
        writeln!(stdout, "{}", completion.text)?;
        completion
    };
    match completion.finish_reason {
        FinishReason::Error => bail!("generation failed: {}", completion.error.as_deref().unwrap_or("unknown error")),
        // Refused at admission: the prompt leaves no room in the context.
        FinishReason::Length if completion.error.is_some() => {
            bail!("{}", completion.error.as_deref().unwrap_or_default())
        }
        _ => {}
    }
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
