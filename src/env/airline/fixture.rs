//! Test data of our own in τ-bench's airline schema, and helpers for tool tests.
//!
//! `tests/fixtures/airline/` (one file per table) was written by hand for these tests; the
//! integration tests and the golden generator (`testdata/golden_tool/`) read the same files.

use std::path::Path;

use serde_json::Value;

use crate::env::{data, Args, Db, Tool};

/// A fresh copy of the fixture database, loaded like any `--data-dir`.
pub fn db() -> Db {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/airline");
    data::load_dir(&super::domain(), &dir).unwrap_or_else(|e| panic!("airline fixture: {e:#}"))
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
