//! Stage 2, execution: the ground-truth actions replayed on a fresh copy of the database.
//!
//! Any tool error fails, and so does a write action that changes nothing (it would make the
//! task's final-state check vacuous). The diff of the whole replay is what reviewers see.

use crate::blueprint::Blueprint;
use crate::env::state::{diff, hash, PatchOp};
use crate::env::{Db, Domain, Env, ToolKind};

use super::{Failure, Stage};

/// A successful replay: each action's observation and the changes to the database.
#[derive(Debug, Clone)]
pub struct Executed {
    pub observations: Vec<String>,
    pub diff: Vec<PatchOp>,
}

pub fn check(domain: &'static Domain, db: &Db, bp: &Blueprint) -> Result<Executed, Failure> {
    let mut env = Env::new(domain, db.clone());
    let mut observations = Vec::new();
    for (i, action) in bp.actions.iter().enumerate() {
        let before = hash(&env.db);
        let out = env.step(action).map_err(|e| Failure::new(Stage::Execution, format!("action {i} {}: {e}", action.name)))?;
        let is_write = domain.tool(&action.name).is_some_and(|t| t.kind == ToolKind::Write);
        if is_write && hash(&env.db) == before {
            return Err(Failure::new(Stage::Execution, format!("action {i} {} changed nothing in the database", action.name)));
        }
        observations.push(out);
    }
    Ok(Executed { observations, diff: diff(db, &env.db) })
}
