//! Test data of our own in τ-bench's airline schema, and helpers for tool tests.
//!
//! `testdata/fixture.json` was written by hand for these tests. Expected outputs that tests call
//! "checked against τ-bench" were produced by running τ-bench's Python tool (exported with
//! `git archive` into /tmp, never committed) on this same fixture with Python 3.11.

use serde_json::Value;

use crate::env::{Args, Db, Tool};

/// A fresh copy of the fixture database.
pub fn db() -> Db {
    match serde_json::from_str(include_str!("testdata/fixture.json")) {
        Ok(Value::Object(db)) => db,
        other => panic!("fixture.json must hold a JSON object: {other:?}"),
    }
}

/// Arguments from a JSON object literal.
pub fn args(value: Value) -> Args {
    match value {
        Value::Object(map) => map,
        other => panic!("tool arguments must be an object, got {other}"),
    }
}

/// Runs `tool` through its schema check on `db`.
pub fn call(tool: &Tool, db: &mut Db, value: Value) -> Result<String, String> {
    tool.call(db, &args(value))
}
