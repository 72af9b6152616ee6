//! What a model returns for a request: the completion and why it ended, or why it was refused.
//!
//! Like [`crate::request`], these live outside [`crate::engine`], so that constrained decoding
//! and the backends report outcomes in the engine's terms without importing the engine.

use serde::{Deserialize, Serialize};

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
    /// The caller cancelled the request (see [`CancelToken`](crate::request::CancelToken)).
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
