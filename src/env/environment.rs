//! The environment interface: the one place the pipeline learns about a domain.
//!
//! Everything the pipeline needs from a domain goes through [`Environment`]: its tools, its
//! data (loaded from a directory or generated from a seed), its policy as a document and as
//! rules over an action trace, the hints that build the API dependency graph, the description
//! the data sampler follows, its default revision rounds and its few-shot examples. Live tool
//! calls go through a [`Session`] the environment opens on a database.
//!
//! Why a trait, with descriptions as plain data: the built-in domains implement it in-process
//! ([`super::Builtin`], their code in `env/<domain>/`), and an environment served by another
//! program implements it over a pipe. So everything the pipeline reads is owned data that can
//! come from a file or a server at run time (tool names and schemas are `String`s and `Value`s,
//! never `&'static`), the calls that may reach another process are fallible, and a session's
//! state is read back explicitly ([`Session::state`]) instead of being a field. Hashing and
//! diffing states stay with the project (`env/state.rs`), so every environment is judged alike.
//!
//! The pipeline holds environments as `&'static dyn Environment`: one is resolved per process
//! ([`super::resolve`]) and lives for all of it, and the names it hands out (tool names in a
//! sampled walk) can be kept for as long.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::graph::GraphHints;
use super::policy::Violation;
use super::subjects::Subjects;
use super::{Action, Db, ToolKind, ToolResult};

/// One tool as the pipeline sees it: offered to models, checked against, recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub kind: ToolKind,
    /// Written for models: what the tool does and when to use it.
    pub description: String,
    /// JSON Schema of the keyword arguments (an object schema).
    pub parameters: Value,
}

impl ToolInfo {
    /// The OpenAI function-tool schema: `{"type": "function", "function": {...}}`.
    pub fn openai_schema(&self) -> Value {
        serde_json::json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
    }
}

/// The environment itself failed (not a tool refusing a call, which is an observation): a tool
/// server that crashed, hung or answered garbage. The pipeline fails the affected attempt with
/// `env_error`; when the environment cannot work at all (`fatal`: its server does not start),
/// the run stops instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment error: {message}")]
pub struct EnvError {
    /// What failed, naming the call (`tools/call cancel_loan: ...`).
    pub message: String,
    pub fatal: bool,
}

impl EnvError {
    /// A failure of one call: the attempt fails, the run goes on.
    pub fn call(message: impl Into<String>) -> Self {
        Self { message: message.into(), fatal: false }
    }

    /// The environment cannot be used at all: the run stops.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self { message: message.into(), fatal: true }
    }
}

/// A domain: data, tools and policy behind one interface.
pub trait Environment: fmt::Debug + Send + Sync {
    /// The name runs, ids and metadata use (`<name>-<seed>-<task>` blueprint ids).
    fn name(&self) -> &str;
    /// One paragraph on what the domain is.
    fn description(&self) -> &str;
    /// The tables a database holds, in the order they are loaded.
    fn tables(&self) -> Vec<&str>;
    /// The tools, in the order they are offered to models.
    fn tools(&self) -> &[ToolInfo];

    /// The tool called `name`.
    fn tool(&self, name: &str) -> Option<&ToolInfo> {
        self.tools().iter().find(|t| t.name == name)
    }

    /// The tools as an OpenAI `tools` list.
    fn openai_tools(&self) -> Vec<Value> {
        self.tools().iter().map(ToolInfo::openai_schema).collect()
    }

    /// The tables in `dir`, one `<table>.json` each (τ-bench's layout). Errors name the file.
    fn load(&self, dir: &Path) -> anyhow::Result<Db> {
        super::data::load_tables(&self.tables(), dir)
    }

    /// A fresh database entirely determined by `seed`: the same seed gives the same bytes.
    fn generate(&self, seed: u64) -> anyhow::Result<Db>;

    /// The policy the agent follows, in markdown; `## ` headings split it into the sections the
    /// policy sampler picks from.
    fn policy(&self) -> &str;

    /// Every rule of the policy that `trace` breaks when it runs on `initial`, in trace order.
    fn check(&self, initial: &Db, trace: &[Action]) -> anyhow::Result<Vec<Violation>>;

    /// What the API dependency graph is built from.
    fn graph(&self) -> &GraphHints;

    /// How the data sampler finds the person a task is about and their records.
    fn subjects(&self) -> &Subjects;

    /// Revision rounds after a failed draft when the run does not set them.
    fn default_rounds(&self) -> usize;

    /// Few-shot example blueprints, one JSON object per line (`instruction`, `actions`,
    /// `outputs`); empty when there are none.
    fn examples(&self) -> &str;

    /// A live session whose state starts as `tables`.
    fn open(&self, tables: Db) -> Result<Box<dyn Session + '_>, EnvError>;

    /// Sets the arguments of `action` that follow from its other arguments on `state`. The
    /// grounded sampler fills every argument from values seen in the data, and a few cannot be
    /// found there: a booking's payment must add up to the fare of the flights, cabin and
    /// passengers the sampler chose. It calls this before it runs a sampled action. The default
    /// computes nothing; an action it cannot complete is left as it is, and the tool refuses it.
    fn complete(&self, _state: &Db, _action: &mut Action) {}

    /// For an environment package, what identifies its content (never its location); `None`
    /// for a built-in domain, which the program's version identifies.
    fn package(&self) -> Option<super::package::PackageRef> {
        None
    }

    /// Keeps the environment's own log (a tool server's stderr) in the run directory `dir`.
    fn log_to(&self, _dir: &Path) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A live environment: tools acting on one database. Made to be implementable by another
/// process: load the tables, call tools, read the state back.
pub trait Session: Send {
    /// Replaces the whole state with `tables`.
    fn reset(&mut self, tables: Db) -> Result<(), EnvError>;

    /// Runs one action. `Ok(Err(text))` is a tool's refusal (`Error: ...`), which the agent sees
    /// like any observation; `Err` is the environment failing.
    fn call(&mut self, action: &Action) -> Result<ToolResult, EnvError>;

    /// The current state, every table.
    fn state(&mut self) -> Result<Cow<'_, Db>, EnvError>;
}
