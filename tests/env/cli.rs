//! `apigen-mt env ...` end to end, through the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apigen-mt")).args(args).output().expect("the binary runs")
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/retail")
}

fn stdout_lines(out: &Output) -> Vec<Value> {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[test]
fn list_and_tools() {
    let out = bin(&["env", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("retail\ttables: orders, products, users\ttools: calculate, cancel_pending_order,"), "{text}");

    let out = bin(&["env", "tools", "retail"]);
    assert!(out.status.success());
    let tools: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tools = tools.as_array().unwrap();
    assert_eq!(tools.len(), 16);
    for tool in tools {
        assert_eq!(tool["type"], "function");
        // Each parameter schema is itself a valid JSON Schema.
        jsonschema::meta::validate(&tool["function"]["parameters"]).unwrap();
    }

    let out = bin(&["env", "tools", "bakery"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown domain 'bakery' (known: retail"));
}

#[test]
fn replay_prints_outputs_diff_and_hash_and_dumps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let actions = dir.path().join("actions.json");
    let dump = dir.path().join("final.json");
    let list = json!([
        {"name": "find_user_id_by_email", "kwargs": {"email": "mokafor@example.com"}},
        {"name": "modify_user_address", "kwargs": {"user_id": "mira_okafor_3301", "address1": "1 Elm St",
            "address2": "", "city": "Harlow", "state": "NY", "country": "USA", "zip": "10004"}},
        {"name": "cancel_pending_order", "kwargs": {"order_id": "#R8800101", "reason": "no longer needed"}},
        {"name": "no_such_tool", "kwargs": {}}
    ]);
    std::fs::write(&actions, list.to_string()).unwrap();
    let data_dir = fixture_dir();
    let args = ["env", "replay", "retail", "--actions", actions.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()];
    let out = bin(&[&args[..], &["--dump-db", dump.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0], json!({"name": "find_user_id_by_email", "output": "mira_okafor_3301"}));
    assert!(lines[2]["output"].as_str().unwrap().contains(r#""status": "cancelled""#));
    assert_eq!(lines[3], json!({"name": "no_such_tool", "output": "Error: unknown tool 'no_such_tool'"}));
    let diff: Vec<(String, String)> = lines[4]["diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| (op["op"].as_str().unwrap().to_string(), op["path"].as_str().unwrap().to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = diff.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("add", "/orders/#R8800101/cancel_reason"),
            ("add", "/orders/#R8800101/payment_history/1"),
            ("replace", "/orders/#R8800101/status"),
            ("replace", "/users/mira_okafor_1187/payment_methods/gift_card_9920113/balance"),
            ("replace", "/users/mira_okafor_3301/address/address1"),
            ("replace", "/users/mira_okafor_3301/address/zip"),
        ]
    );
    let hash = lines[5]["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);

    // The dump is a database again: replaying nothing on it gives the same hash.
    let dumped: Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let reload = dir.path().join("reload");
    std::fs::create_dir(&reload).unwrap();
    for table in ["orders", "products", "users"] {
        std::fs::write(reload.join(format!("{table}.json")), dumped[table].to_string()).unwrap();
    }
    std::fs::write(&actions, "[]").unwrap();
    let again = bin(&["env", "replay", "retail", "--actions", actions.to_str().unwrap(), "--data-dir", reload.to_str().unwrap()]);
    let lines = stdout_lines(&again);
    assert_eq!(lines, [json!({"diff": []}), json!({"hash": hash})]);
}

#[test]
fn replay_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let actions = dir.path().join("actions.json");
    std::fs::write(&actions, "[]").unwrap();
    let a = actions.to_str().unwrap();

    // A data directory and a generated world's seed are alternatives.
    let out = bin(&["env", "replay", "retail", "--actions", a, "--seed", "1", "--data-dir", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--seed") && err.contains("cannot be used with"), "{err}");

    std::fs::write(&actions, r#"[{"kwargs": {}}]"#).unwrap();
    let fixture = fixture_dir();
    let out = bin(&["env", "replay", "retail", "--actions", a, "--data-dir", fixture.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("actions.json must be a JSON list of {\"name\", \"kwargs\"} objects; line 1"), "{err}");

    std::fs::write(&actions, "[]").unwrap();
    let out = bin(&["env", "replay", "retail", "--actions", a, "--data-dir", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("orders.json"), "{err}");
}
