//! Stage 2, execution: the ground-truth actions replayed on a fresh copy of the database.
//!
//! Any tool error fails, and so does a write action that changes nothing (it would make the
//! task's final-state check vacuous). The diff of the whole replay is what reviewers see. An
//! environment that fails (rather than a tool that refuses) fails the attempt with `env_error`.

use crate::env::state::{diff, hash, PatchOp};
use crate::env::Blueprint;
use crate::env::{Db, EnvError, Environment, ToolKind};

use super::{Failure, Stage};

/// A successful replay: each action's observation and the changes to the database.
#[derive(Debug, Clone)]
pub struct Executed {
    pub observations: Vec<String>,
    pub diff: Vec<PatchOp>,
}

pub fn check(domain: &dyn Environment, db: &Db, bp: &Blueprint) -> Result<Executed, Failure> {
    let failed = |e: EnvError| Failure::env("env/state", &e);
    let mut session = domain.open(db.clone()).map_err(|e| Failure::env("env/reset", &e))?;
    let mut observations = Vec::new();
    for (i, action) in bp.actions.iter().enumerate() {
        let is_write = domain.tool(&action.name).is_some_and(|t| t.kind == ToolKind::Write);
        let before = if is_write { Some(hash(&*session.state().map_err(failed)?)) } else { None };
        let out = session
            .call(action)
            .map_err(|e| Failure::env(&format!("action {i} {}", action.name), &e))?
            .map_err(|e| Failure::new(Stage::Execution, format!("action {i} {}: {e}", action.name)))?;
        if let Some(before) = before {
            if hash(&*session.state().map_err(failed)?) == before {
                return Err(Failure::new(Stage::Execution, format!("action {i} {} changed nothing in the database", action.name)));
            }
        }
        observations.push(out);
    }
    let after = session.state().map_err(failed)?;
    Ok(Executed { observations, diff: diff(db, &after) })
}
