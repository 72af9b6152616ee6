//! A built-in domain's live session: its tools acting on one in-memory database.

use super::{Action, Builtin, Db, ToolResult};

/// A built-in domain with its current database. Every tool call goes through [`Env::step`];
/// the pipeline reaches it through [`super::Session`], like any environment's session.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    pub domain: &'a Builtin,
    pub db: Db,
}

impl<'a> Env<'a> {
    pub fn new(domain: &'a Builtin, db: Db) -> Self {
        Self { domain, db }
    }

    /// Runs one action. An unknown tool, or arguments that do not fit the tool's schema,
    /// give an `Error: ...` observation and leave the database as it was.
    pub fn step(&mut self, action: &Action) -> ToolResult {
        match self.domain.tool(&action.name) {
            Some(tool) => tool.call(&mut self.db, &action.kwargs),
            None => Err(format!("Error: unknown tool '{}'", action.name)),
        }
    }

    /// Runs actions in order, returning each with its observation.
    pub fn replay(&mut self, actions: &[Action]) -> Vec<(Action, ToolResult)> {
        actions.iter().map(|a| (a.clone(), self.step(a))).collect()
    }
}
