//! Phase 1, task blueprints: the schema the generator writes them under, the
//! generate → validate → feedback → revise loop that produces them, and reverse recombination.

pub mod attempt;
pub mod recombine;
pub mod run;
pub mod schema;

/// Defined beside [`crate::env::Action`], as τ-bench keeps its task beside its action: the
/// validators and Phase 2 read blueprints without depending on the phase that writes them.
pub use crate::env::Blueprint;
