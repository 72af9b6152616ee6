//! What a caller asks a model for: the prompt, how to sample, the output's shape, when to stop.
//!
//! These are plain values that the pipeline, the configuration, the server and every backend
//! share; they live outside [`crate::engine`] so that modules the engine itself builds on (the
//! configuration, constrained decoding) can name them without importing it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::Message;
use crate::constrain::Constraint;

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
/// [`EngineError::Cancelled`](crate::response::EngineError::Cancelled). Clones share the flag.
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
