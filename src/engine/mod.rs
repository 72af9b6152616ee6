//! The engine interface: the one door through which every role reaches a model.
//!
//! Pipeline code holds a cheap, cloneable [`EngineHandle`] and calls [`EngineHandle::generate`]
//! from as many threads as it likes; each call reads as plain sequential logic ("ask the
//! generator"). Behind the handle, the engine owns the model, the tokenizer and the KV cache and
//! decides how requests share forward passes ([`batch`]: continuous batching with a prefix
//! cache); none of that shows on this side of the door.
//!
//! Unit tests of pipeline control flow may implement [`LanguageModel`] with a scripted model;
//! the product only ever uses the real engine.

pub mod batch;
pub mod loaded;
pub mod meter;
pub mod prefix;
pub mod remote;
pub mod sampling;
mod sequence;
pub mod stop;

pub use crate::constrain::Constraint;
pub use crate::request::{CancelToken, Prompt, Request, SamplingParams};
pub use crate::response::{Completion, EngineError, FinishReason};
pub use batch::{start, EngineConfig};

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chat::thinking::{self, Part, ReasoningSplitter};

/// What callers may know about the model behind a handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name the user gave (preset, path or hub id).
    pub name: String,
    pub architecture: String,
    pub context_length: usize,
    /// The tool-call format this model speaks (see `chat::tools`), e.g. "hermes", "generic".
    pub tool_format: String,
    /// Whether the model's own chat template renders `tools`.
    pub template_supports_tools: bool,
}

/// What an engine has done since it started, for progress lines, reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineMetrics {
    /// Requests finished (including failed ones).
    pub requests: u64,
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    /// Prompt tokens served from the prefix cache instead of computed (preempted sequences
    /// resuming count too).
    pub prefix_hit_tokens: u64,
    /// Forward passes.
    pub steps: u64,
    /// Sequences summed over steps: `step_sequences / steps` is the mean batch occupancy.
    pub step_sequences: u64,
    /// Tokens summed over steps.
    pub step_tokens: u64,
    /// Sequences whose cache was dropped for memory and recomputed later.
    pub preemptions: u64,
    /// The most KV cache bytes held at once (live sequences and cached prefixes).
    pub peak_kv_bytes: u64,
    /// Time spent inside the model's forward passes.
    pub forward_time: Duration,
    /// Forward passes that computed prompt tokens (a prompt chunk, or a preempted sequence's
    /// recompute, whose last chunk counts only when longer than one token), alone or beside
    /// decoding sequences.
    pub prefill_steps: u64,
    /// The part of `forward_time` spent in those passes. With one sequence at a time
    /// (`--concurrency 1`) no pass mixes the two, so this and the rest of `forward_time` are the
    /// run's prefill and decode times, which bound what batching can buy (see
    /// `scripts/bench-workload.sh`).
    pub prefill_time: Duration,
    /// Floating-point operations of the forward passes (see `Decoder::pass_flops`), failed
    /// passes included: `flops / forward_time` is the arithmetic rate the engine sustained.
    pub flops: u64,
    /// The part of `flops` done in prefill passes.
    pub prefill_flops: u64,
    /// Time spent computing constraint masks and advancing grammars.
    pub mask_time: Duration,
    /// Tokens generated under a constraint: `mask_time / masked_tokens` is the cost per token.
    pub masked_tokens: u64,
    /// Wall time the engine spent serving requests (forward passes, sampling, decoding).
    pub busy_time: Duration,
    /// Tokens sampled so far, counted as they are sampled (`generated_tokens` counts the tokens
    /// of finished requests).
    #[serde(skip)]
    pub sampled_tokens: u64,
    /// When a request last received its first token, and `sampled_tokens` at that moment: for
    /// requests sent together, where their prefill ends and their decoding begins (`bench`).
    #[serde(skip)]
    pub last_first_token: Option<(Instant, u64)>,
}

impl EngineMetrics {
    /// Share of prompt tokens the prefix cache supplied.
    pub fn prefix_hit_rate(&self) -> f64 {
        if self.prompt_tokens == 0 {
            0.0
        } else {
            self.prefix_hit_tokens as f64 / self.prompt_tokens as f64
        }
    }

    /// Mean sequences per forward pass.
    pub fn mean_batch(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.step_sequences as f64 / self.steps as f64
        }
    }
}

/// A model that answers requests. The product implements it with the engine; tests of pipeline
/// control flow may implement it with a script.
pub trait LanguageModel: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// Generates a completion, calling `on_text` with each new piece of text as it is decoded.
    fn generate_streaming(&self, request: Request, on_text: &mut dyn FnMut(&str)) -> Result<Completion, EngineError>;

    /// Token count of a prompt as this model would see it, for context-budget decisions.
    fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError>;

    /// Tells the engine a conversation is over, so its cached prefixes need no longer be kept
    /// ahead of others. Only a hint: the default does nothing.
    fn end_session(&self, _session: &str) {}

    /// Whether `prompt`, as this model's template renders it, ends inside an open `<think>`
    /// block, so that the reply starts with reasoning (templates of models that always think).
    /// The handle needs to know before the first piece streams; models whose templates never
    /// open one keep the default.
    fn opens_reasoning(&self, _prompt: &Prompt) -> Result<bool, EngineError> {
        Ok(false)
    }

    /// The prompt's text exactly as the model is given it (for a chat prompt, what its chat
    /// template renders), for traces; `None` where it cannot be known (a scripted model, a
    /// token-id prompt).
    fn render_prompt(&self, _prompt: &Prompt) -> Result<Option<String>, EngineError> {
        Ok(None)
    }

    /// Totals so far; a scripted model has none to report.
    fn metrics(&self) -> EngineMetrics {
        EngineMetrics::default()
    }

    /// How many requests of `context_tokens` tokens each (prompt and completion) this model can
    /// serve at once without queueing: for the in-process engine, what its KV budget holds; for
    /// a server, its most requests in flight. `None` when it cannot say (a scripted model).
    /// Pipelines size their default concurrency from it.
    fn capacity(&self, _context_tokens: usize) -> Option<usize> {
        None
    }

    /// What a model on a server reports of its requests; `None` in process.
    fn server_report(&self) -> Option<remote::ServerReport> {
        None
    }
}

/// A cheap, cloneable handle to a model that any number of threads may call at once.
#[derive(Clone)]
pub struct EngineHandle(Arc<dyn LanguageModel>);

impl EngineHandle {
    pub fn new(model: Arc<dyn LanguageModel>) -> Self {
        Self(model)
    }
    pub fn info(&self) -> &ModelInfo {
        self.0.info()
    }
    /// Blocks this thread until the completion is ready; other threads' requests proceed.
    pub fn generate(&self, request: Request) -> Result<Completion, EngineError> {
        self.generate_streaming_parts(request, &mut |_, _| {})
    }

    /// Like [`Self::generate`], calling `on_text` with each new piece of the answer as it is
    /// decoded (reasoning is not streamed).
    pub fn generate_streaming(&self, request: Request, on_text: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        self.generate_streaming_parts(request, &mut |part, piece| {
            if part == Part::Answer {
                on_text(piece)
            }
        })
    }

    /// Like [`Self::generate`], streaming both the reasoning and the answer, each piece tagged
    /// with its part.
    ///
    /// The reasoning of a chat reply is split off here, above every engine, so that any
    /// implementation of [`LanguageModel`] returns the same shape: `text` holds the answer (what
    /// tool-call parsing and the conversation history see) and `reasoning` the thought. Raw
    /// text and token prompts, and constrained requests (whose output shape the constraint
    /// fixes from the first token), are returned as generated.
    pub fn generate_streaming_parts(&self, request: Request, on_piece: &mut dyn FnMut(Part, &str)) -> Result<Completion, EngineError> {
        let is_chat = matches!(request.prompt, Prompt::Chat { .. });
        if !is_chat || request.constraint.is_some() {
            return self.0.generate_streaming(request, &mut |piece| on_piece(Part::Answer, piece));
        }
        let opened = self.0.opens_reasoning(&request.prompt)?;
        let mut splitter = ReasoningSplitter::new(opened);
        let mut completion = self.0.generate_streaming(request, &mut |piece| splitter.push(piece, on_piece))?;
        splitter.finish(on_piece);
        // The completion's text, not the stream, is authoritative: an engine need not stream.
        let split = thinking::split(&completion.text, opened);
        completion.text = split.answer;
        completion.reasoning = split.reasoning;
        Ok(completion)
    }
    pub fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError> {
        self.0.count_tokens(prompt)
    }
    /// See [`LanguageModel::render_prompt`].
    pub fn render_prompt(&self, prompt: &Prompt) -> Result<Option<String>, EngineError> {
        self.0.render_prompt(prompt)
    }
    pub fn metrics(&self) -> EngineMetrics {
        self.0.metrics()
    }
    /// See [`LanguageModel::capacity`].
    pub fn capacity(&self, context_tokens: usize) -> Option<usize> {
        self.0.capacity(context_tokens)
    }
    /// See [`LanguageModel::server_report`].
    pub fn server_report(&self) -> Option<remote::ServerReport> {
        self.0.server_report()
    }
    /// See [`LanguageModel::end_session`].
    pub fn end_session(&self, session: &str) {
        self.0.end_session(session)
    }
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EngineHandle").field(&self.0.info().name).finish()
    }
}
