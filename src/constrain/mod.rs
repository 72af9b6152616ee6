//! Constrained decoding: JSON Schema, regex and Lark grammars enforced token by token with
//! llguidance.
//!
//! The engine builds one [`ConstraintCompiler`] per model from the model's own tokenizer, then
//! per request compiles the request's `Constraint` into a [`SeqConstraint`]. Each decode step:
//!
//! 1. [`compute_masks`] for every constrained sequence in the batch (in parallel, ideally while
//!    the forward pass runs);
//! 2. [`SeqConstraint::apply_mask`] on the sequence's logits, then sample;
//! 3. [`SeqConstraint::commit`] the sampled token;
//! 4. [`SeqConstraint::take_forced_tokens`]: tokens the grammar dictates, to append as one
//!    prefill chunk rather than one step each;
//! 5. stop with `FinishReason::Constraint` once [`SeqConstraint::is_complete`].
//!
//! [`generate`] is that loop for one sequence over any next-token function.

mod compiler;
mod generate;
mod sequence;
pub mod validate;
mod vocab;

pub use compiler::ConstraintCompiler;
pub use generate::{generate, Generation, Sampler};
pub use sequence::{compute_masks, ConstraintError, MaskStats, SeqConstraint};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A constraint on the shape of the output, enforced token by token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum Constraint {
    JsonSchema(Value),
    Regex(String),
    Lark(String),
}
