//! Environments: a database, the tools that read or change it, and a policy, behind one
//! interface ([`Environment`], in `environment.rs`).
//!
//! The built-in domains keep everything of theirs in their own folder, as τ-bench keeps a
//! domain together: `retail/` and `airline/` each hold their tools (one per file), data
//! generator, policy document and rules, graph hints and sampler description, and describe
//! themselves with one [`Builtin`] (`builtin.rs` lists them). The rest of this folder is
//! shared: data files, the canonical state hash and diff, the API dependency graph, and the tools
//! every domain offers (`common.rs`). Python's number and JSON semantics, which the tools follow,
//! are [`crate::pynum`] and [`crate::pyjson`] (the chat templates share the latter).
//!
//! A built-in tool is a plain function of `(database, arguments)` that returns the observation
//! text the agent sees, or an error string. Tools never panic: arguments are checked against
//! the tool's JSON Schema before the tool runs, and every lookup inside a tool is fallible.

pub mod airline;
mod builtin;
pub mod common;
pub mod data;
mod environment;
mod expr;
pub mod generate;
pub mod graph;
pub mod lookup;
pub mod package;
pub mod policy;
pub mod retail;
mod session;
pub mod state;
pub mod subjects;

pub use builtin::{builtins, domain, resolve, Builtin, Parts};
pub use environment::{EnvError, Environment, Session, ToolInfo};
pub use package::{Package, PackageRef};
pub use session::Env;
pub use subjects::Subjects;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A domain's data: one JSON object per table (`users`, `orders`, ...), in insertion order.
pub type Db = Map<String, Value>;
/// A tool call's keyword arguments.
pub type Args = Map<String, Value>;

/// What a tool does to the world, which decides how the pipeline treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolKind {
    /// Reads the database and changes nothing.
    Read,
    /// Changes the database.
    Write,
    /// Lets the agent reason aloud; no effect.
    Think,
    /// Ends the conversation (a transfer to a human agent).
    Terminate,
}

/// The result of one tool call: the observation text, or the error text the agent is shown.
pub type ToolResult = Result<String, String>;

/// One built-in tool: its model-facing description and schema, and the function that runs it.
/// The pipeline sees it as a [`ToolInfo`], as it sees any environment's tools.
pub struct Tool {
    pub name: &'static str,
    pub kind: ToolKind,
    /// Written for models: what the tool does and when to use it.
    pub description: &'static str,
    /// JSON Schema of the keyword arguments (an object schema).
    pub parameters: fn() -> Value,
    pub run: fn(&mut Db, &Args) -> ToolResult,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

impl Tool {
    /// The OpenAI function-tool schema: `{"type": "function", "function": {...}}`.
    pub fn openai_schema(&self) -> Value {
        serde_json::json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": (self.parameters)(),
            }
        })
    }

    /// Checks the arguments against the schema, then runs the tool.
    pub fn call(&self, db: &mut Db, args: &Args) -> ToolResult {
        check_args(self.name, &(self.parameters)(), args)?;
        (self.run)(db, args)
    }
}

/// One recorded action: the shape of `a_gt` and of `env replay` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub name: String,
    #[serde(default)]
    pub kwargs: Args,
}

/// A task blueprint, what Phase 1 writes ([`crate::blueprint`]): the generator's reasoning, the
/// user's goal, the ground-truth actions and the facts the agent must tell the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blueprint {
    pub thought: String,
    pub instruction: String,
    pub actions: Vec<Action>,
    pub outputs: Vec<String>,
}

/// Checks keyword arguments against an object schema: every required argument is present, no
/// argument is unknown, and each value has the declared JSON type (recursively for arrays and
/// objects). τ-bench would raise a Python exception for these cases; we return a documented
/// error string instead, always starting with `Error: `.
pub fn check_args(tool: &str, schema: &Value, args: &Args) -> Result<(), String> {
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !args.contains_key(name) {
                return Err(format!("Error: {tool}() missing required argument '{name}'"));
            }
        }
    }
    for (name, value) in args {
        let Some(prop) = props.and_then(|p| p.get(name)) else {
            return Err(format!("Error: {tool}() got an unexpected argument '{name}'"));
        };
        check_type(prop, value).map_err(|want| format!("Error: {tool}() argument '{name}' must be {want}, got {}", type_name(value)))?;
    }
    Ok(())
}

fn check_type(schema: &Value, value: &Value) -> Result<(), String> {
    let Some(ty) = schema.get("type").and_then(Value::as_str) else { return Ok(()) };
    let ok = match ty {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    };
    if !ok {
        return Err(match ty {
            "integer" => "an integer".to_string(),
            "array" | "object" => format!("an {ty}"),
            _ => format!("a {ty}"),
        });
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for item in arr {
            check_type(items, item).map_err(|want| format!("an array of items that are each {want}"))?;
        }
    }
    if let (Some(props), Some(obj)) = (schema.get("properties").and_then(Value::as_object), value.as_object()) {
        for (k, v) in obj {
            if let Some(p) = props.get(k) {
                check_type(p, v).map_err(|want| format!("an object whose '{k}' is {want}"))?;
            }
        }
    }
    Ok(())
}

/// The JSON type of a value, in the words of error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "order_id": {"type": "string"},
            "item_ids": {"type": "array", "items": {"type": "string"}},
            "amount": {"type": "number"}
        }, "required": ["order_id"]})
    }

    fn args(v: Value) -> Args {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let s = schema();
        assert!(check_args("t", &s, &args(json!({"order_id": "#W1", "amount": 3}))).is_ok());
        assert_eq!(check_args("t", &s, &args(json!({}))).unwrap_err(), "Error: t() missing required argument 'order_id'");
        assert_eq!(
            check_args("t", &s, &args(json!({"order_id": "#W1", "x": 1}))).unwrap_err(),
            "Error: t() got an unexpected argument 'x'"
        );
        assert_eq!(
            check_args("t", &s, &args(json!({"order_id": 5}))).unwrap_err(),
            "Error: t() argument 'order_id' must be a string, got an integer"
        );
        assert!(check_args("t", &s, &args(json!({"order_id": "a", "item_ids": ["1", 2]}))).is_err());
    }
}
