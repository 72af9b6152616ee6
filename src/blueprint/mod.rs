//! Task blueprints: what they are, the schema the generator writes them under, and the
//! generate → validate → feedback → revise loop that produces them, and reverse recombination.

pub mod attempt;
pub mod caller;
pub mod recombine;
pub mod run;
pub mod schema;

use serde::{Deserialize, Serialize};

use crate::env::Action;

/// A task blueprint: the generator's reasoning, the user's goal, the ground-truth actions and
/// the facts the agent must tell the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blueprint {
    pub thought: String,
    pub instruction: String,
    pub actions: Vec<Action>,
    pub outputs: Vec<String>,
}
