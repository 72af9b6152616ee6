//! Replays call sequences whose observations and effects were recorded from τ-bench itself.
//!
//! `testdata/tau_bench_golden.json` was produced by `testdata/golden_tool/golden.py`, which runs
//! τ-bench's own Python airline tools (exported from its repository into /tmp, not committed)
//! with Python 3.11 on our `tests/fixtures/airline/`: for each sequence, the observation of every
//! call (with an exception shown as `Error: {e}`, as τ-bench's environment does) and every table
//! the sequence changed. Comparison is on `json.dumps` text, so key order counts too. The
//! `random` group holds seeded random well-typed sequences, stored as SHA-256 digests of each
//! observation and of the final database.

use crate::seeds::sha256_hex;
use serde_json::Value;

use super::fixture;
use crate::pyjson::dumps;

fn golden() -> Value {
    serde_json::from_str(include_str!("testdata/tau_bench_golden.json")).expect("golden file is JSON")
}

/// Replays every recorded sequence for `tool` and asserts byte-identical observations, the
/// Ok/Err split (`Err` exactly when τ-bench answered `Error: ...`) and identical tables after.
pub fn check(tool: &str) {
    let golden = golden();
    let cases = golden[tool].as_array().unwrap_or_else(|| panic!("no golden cases for {tool}"));
    assert!(!cases.is_empty());
    let tools = super::domain().tools;
    for (index, case) in cases.iter().enumerate() {
        let mut db = fixture::db();
        let calls = case["calls"].as_array().expect("calls");
        let outputs = case["outputs"].as_array().expect("outputs");
        assert_eq!(calls.len(), outputs.len());
        for (call, expected) in calls.iter().zip(outputs) {
            let name = call["name"].as_str().expect("name");
            let tool = tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tool {name}"));
            let expected = expected.as_str().expect("observation text");
            let got = tool.call(&mut db, &fixture::args(call["kwargs"].clone()));
            assert_eq!(got.is_err(), expected.starts_with("Error: "), "case {index} of {tool:?}: {got:?}");
            let text = got.unwrap_or_else(|e| e);
            assert_eq!(text, expected, "case {index} of {tool:?}, call {call}");
        }
        let fresh = fixture::db();
        for (table, before) in &fresh {
            let after = &db[table];
            match case["changed"].get(table) {
                Some(expected) => assert_eq!(dumps(after), dumps(expected), "case {index} of {tool}: table {table}"),
                None => assert_eq!(dumps(after), dumps(before), "case {index} of {tool}: table {table} changed"),
            }
        }
    }
}

#[test]
fn random_sequences_match_tau_bench() {
    let golden = golden();
    let cases = golden["random"].as_array().expect("random cases");
    assert!(cases.len() > 100);
    let tools = super::domain().tools;
    for (index, case) in cases.iter().enumerate() {
        let mut db = fixture::db();
        let calls = case["calls"].as_array().expect("calls");
        for (i, call) in calls.iter().enumerate() {
            let name = call["name"].as_str().expect("name");
            let tool = tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tool {name}"));
            let got = tool.call(&mut db, &fixture::args(call["kwargs"].clone()));
            assert_eq!(Value::Bool(got.is_err()), case["errors"][i], "random case {index}, call {i}: {got:?}");
            let text = got.unwrap_or_else(|e| e);
            assert_eq!(Value::from(sha256_hex(text.as_bytes())), case["output_sha256"][i], "random case {index}, call {call}: {text}");
        }
        let data = dumps(&Value::Object(db));
        assert_eq!(Value::from(sha256_hex(data.as_bytes())), case["data_sha256"], "random case {index}: final database differs");
    }
}
