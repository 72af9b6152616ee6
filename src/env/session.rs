//! A live environment: one domain's tools acting on one database.

use super::{Action, Db, Domain, ToolResult};

/// A domain with its current database; every tool call goes through [`Env::step`].
#[derive(Debug, Clone)]
pub struct Env {
    pub domain: &'static Domain,
    pub db: Db,
}

impl Env {
    pub fn new(domain: &'static Domain, db: Db) -> Self {
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
