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

pub use batch::{start, EngineConfig};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::thinking::{self, Part, ReasoningSplitter};
use crate::chat::Message;

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Rendered through the model's own chat template, with `tools` (OpenAI function schemas)
    /// when the list is non-empty. `thinking` is the template's `enable_thinking` (Qwen3's switch
    /// for its reasoning); `None` leaves the model's default.
    Chat { messages: Vec<Message>, tools: Vec<Value>, add_generation_prompt: bool, thinking: Option<bool> },
    /// Raw text, tokenized as is (special-token text is recognised).
    Text(String),
    /// Token ids, used as they are.
    Tokens(Vec<u32>),
}

impl Prompt {
    /// A chat prompt that ends with the assistant's turn opened.
    pub fn chat(messages: Vec<Message>) -> Self {
        Prompt::Chat { messages, tools: Vec::new(), add_generation_prompt: true, thinking: None }
    }
}

/// How the next token is picked. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Nucleus sampling; 1.0 disables it.
    pub top_p: f32,
    /// 0 disables it.
    pub top_k: usize,
    /// Drop tokens whose probability is below `min_p` times the best one's; 0 disables it.
    pub min_p: f32,
    /// 1.0 disables it.
    pub repeat_penalty: f32,
    /// How many of the most recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    /// Seeds this request's own random stream, so that its output does not depend on what else
    /// the engine is serving.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 0.7, top_p: 1.0, top_k: 0, min_p: 0.0, repeat_penalty: 1.0, repeat_last_n: 64, seed: 0 }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }
}

/// A constraint on the shape of the output, enforced token by token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum Constraint {
    JsonSchema(Value),
    Regex(String),
    Lark(String),
}

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub prompt: Prompt,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    /// Generation ends when the text contains one of these; the stop string is not returned.
    pub stop: Vec<String>,
    pub constraint: Option<Constraint>,
    /// Pins a conversation's cached prefix while the session lives; never needed for correctness.
    pub session: Option<String>,
    /// Never end on an end-of-sequence token (it is masked out): benchmarks use it to generate
    /// exactly `max_tokens`.
    pub ignore_eos: bool,
    /// Lets the caller give up on the request (a server's client that hung up); `None` for
    /// requests that always run to the end.
    pub cancel: Option<CancelToken>,
}

/// A flag a caller sets to abandon a request: the engine drops it at its next step and returns
/// [`EngineError::Cancelled`]. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Tokens never make two requests different: only what is asked for does.
impl PartialEq for CancelToken {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Request {
    pub fn new(prompt: Prompt) -> Self {
        Self {
            prompt,
            sampling: SamplingParams::default(),
            max_tokens: 512,
            stop: Vec::new(),
            constraint: None,
            session: None,
            ignore_eos: false,
            cancel: None,
        }
    }
    pub fn sampling(mut self, sampling: SamplingParams) -> Self {
        self.sampling = sampling;
        self
    }
    pub fn max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n;
        self
    }
    pub fn stop(mut self, stop: Vec<String>) -> Self {
        self.stop = stop;
        self
    }
    pub fn constraint(mut self, constraint: Constraint) -> Self {
        self.constraint = Some(constraint);
        self
    }
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.session = Some(id.into());
        self
    }
    pub fn ignore_eos(mut self) -> Self {
        self.ignore_eos = true;
        self
    }
    pub fn cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }
    /// Whether the caller has given up on this request.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens`, or the model's context length. A constrained output that ends this way is
    /// incomplete and must not be treated as valid.
    Length,
    /// The constraint's grammar is complete.
    Constraint,
    /// Generation failed; `Completion::error` says why.
    Error,
}

/// The result of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The answer: for a chat prompt, the reply without its reasoning block.
    pub text: String,
    /// What a reasoning model wrote inside `<think>…</think>` before answering (see
    /// [`crate::chat::thinking`]); `None` when it wrote none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The generated token ids; empty where a server returned none and no local tokenizer
    /// could count the text (then `generated_count` says how many there were).
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    /// How many tokens were generated, where a server counted them (`usage.completion_tokens`)
    /// but `tokens` could not hold their ids; `None` when `tokens` is the whole answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_count: Option<usize>,
    /// Prompt tokens served from the prefix cache rather than computed.
    pub cached_tokens: usize,
    pub finish_reason: FinishReason,
    /// Why generation failed (`FinishReason::Error`), or why the prompt was refused before
    /// generating anything (`FinishReason::Length`: it does not fit in the context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Completion {
    /// Tokens generated: the ids held, or the server's count where it returned none.
    pub fn completion_tokens(&self) -> usize {
        self.generated_count.unwrap_or(self.tokens.len())
    }
}

/// A request the engine refused before generating anything.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot render the prompt: {0}")]
    Template(String),
    #[error("cannot build the constraint: {0}")]
    Constraint(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the engine has shut down")]
    Closed,
    #[error("model failure: {0}")]
    Model(String),
    /// The caller cancelled the request (see [`CancelToken`]).
    #[error("the request was cancelled")]
    Cancelled,
    /// A model server answered that this request cannot be served (a 4xx about the request
    /// itself, or output that never met a constraint the server cannot enforce). The attempt that
    /// made it fails as `backend_error`; the run goes on.
    #[error("{0}")]
    Backend(String),
    /// A model server stayed unreachable (connection errors, timeouts, 429 or 5xx) through every
    /// retry. The run stops without committing the attempts that needed it; re-running resumes.
    #[error("{0}")]
    Unavailable(String),
}

impl EngineError {
    /// The [`EngineError`] inside an error chain, if there is one.
    pub fn find(error: &anyhow::Error) -> Option<&EngineError> {
        error.chain().find_map(|e| e.downcast_ref::<EngineError>())
    }
}

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
    fn generate_streaming(
        &self,
        request: Request,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, EngineError>;

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
    pub fn generate_streaming(
        &self,
        request: Request,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, EngineError> {
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
    pub fn generate_streaming_parts(
        &self,
        request: Request,
        on_piece: &mut dyn FnMut(Part, &str),
    ) -> Result<Completion, EngineError> {
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
