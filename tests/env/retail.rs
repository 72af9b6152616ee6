//! The retail tools against τ-bench's own implementation, byte for byte.
//!
//! `tests/fixtures/retail/expected.json` was produced by running τ-bench's Python retail tools
//! (commit HEAD of sierra-research/tau-bench, CPython 3.11) on our own fixture data with
//! `scripts/tau_reference.py TAU_BENCH_DIR tests/fixtures/retail tests/fixtures/retail/scenarios.json`.
//! For each scenario it holds every tool's result string and `json.dumps` of the final data, so
//! this test checks results, effects, key order and number formatting all at once.

use std::path::{Path, PathBuf};

use apigen_mt::env::{data, domain, state, Action, Env};
use apigen_mt::pyjson;
use serde::Deserialize;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/retail")
}

#[derive(Deserialize)]
struct Scenario {
    name: String,
    actions: Vec<Action>,
}

#[derive(Deserialize)]
struct Expected {
    name: String,
    outputs: Vec<String>,
    data: String,
}

fn read<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_scenario_matches_tau_bench_byte_for_byte() {
    let retail = domain("retail").unwrap();
    let scenarios: Vec<Scenario> = read("scenarios.json");
    let expected: Vec<Expected> = read("expected.json");
    assert_eq!(scenarios.len(), expected.len());
    let mut checked = 0;
    for (scenario, want) in scenarios.iter().zip(&expected) {
        assert_eq!(scenario.name, want.name);
        let mut env = Env::new(retail, data::load_dir(retail, &fixture_dir()).unwrap());
        for ((action, got), want_output) in env.replay(&scenario.actions).into_iter().zip(&want.outputs) {
            let got = got.unwrap_or_else(|e| e);
            assert_eq!(&got, want_output, "scenario {}: {} {:?}", scenario.name, action.name, action.kwargs);
            checked += 1;
        }
        assert_eq!(pyjson::dumps(&Value::Object(env.db.clone())), want.data, "final data of scenario {}", scenario.name);
    }
    assert_eq!(checked, expected.iter().map(|e| e.outputs.len()).sum::<usize>());
}

#[test]
fn every_tool_appears_in_the_scenarios() {
    let retail = domain("retail").unwrap();
    let scenarios: Vec<Scenario> = read("scenarios.json");
    for tool in &retail.tools {
        assert!(scenarios.iter().flat_map(|s| &s.actions).any(|a| a.name == tool.name), "{} is not exercised against τ-bench", tool.name);
    }
}

/// A tool's name, its parameters with their JSON types, and its required parameters.
type Signature = (&'static str, &'static [(&'static str, &'static str)], &'static [&'static str]);

#[test]
fn parameters_match_tau_bench_names_types_and_required() {
    // Name → (parameter, JSON type) in τ-bench's order, and the required list, as τ-bench
    // declares them; descriptions are ours and not compared.
    let want: &[Signature] = &[
        ("calculate", &[("expression", "string")], &["expression"]),
        ("cancel_pending_order", &[("order_id", "string"), ("reason", "string")], &["order_id", "reason"]),
        (
            "exchange_delivered_order_items",
            &[("order_id", "string"), ("item_ids", "array"), ("new_item_ids", "array"), ("payment_method_id", "string")],
            &["order_id", "item_ids", "new_item_ids", "payment_method_id"],
        ),
        ("find_user_id_by_email", &[("email", "string")], &["email"]),
        (
            "find_user_id_by_name_zip",
            &[("first_name", "string"), ("last_name", "string"), ("zip", "string")],
            &["first_name", "last_name", "zip"],
        ),
        ("get_order_details", &[("order_id", "string")], &["order_id"]),
        ("get_product_details", &[("product_id", "string")], &["product_id"]),
        ("get_user_details", &[("user_id", "string")], &["user_id"]),
        ("list_all_product_types", &[], &[]),
        (
            "modify_pending_order_address",
            &[
                ("order_id", "string"),
                ("address1", "string"),
                ("address2", "string"),
                ("city", "string"),
                ("state", "string"),
                ("country", "string"),
                ("zip", "string"),
            ],
            &["order_id", "address1", "address2", "city", "state", "country", "zip"],
        ),
        (
            "modify_pending_order_items",
            &[("order_id", "string"), ("item_ids", "array"), ("new_item_ids", "array"), ("payment_method_id", "string")],
            &["order_id", "item_ids", "new_item_ids", "payment_method_id"],
        ),
        ("modify_pending_order_payment", &[("order_id", "string"), ("payment_method_id", "string")], &["order_id", "payment_method_id"]),
        (
            "modify_user_address",
            &[
                ("user_id", "string"),
                ("address1", "string"),
                ("address2", "string"),
                ("city", "string"),
                ("state", "string"),
                ("country", "string"),
                ("zip", "string"),
            ],
            &["user_id", "address1", "address2", "city", "state", "country", "zip"],
        ),
        (
            "return_delivered_order_items",
            &[("order_id", "string"), ("item_ids", "array"), ("payment_method_id", "string")],
            &["order_id", "item_ids", "payment_method_id"],
        ),
        ("think", &[("thought", "string")], &["thought"]),
        ("transfer_to_human_agents", &[("summary", "string")], &["summary"]),
    ];
    let retail = domain("retail").unwrap();
    let names: Vec<&str> = retail.tools.iter().map(|t| t.name).collect();
    assert_eq!(names, want.iter().map(|w| w.0).collect::<Vec<_>>());
    for (tool, (name, params, required)) in retail.tools.iter().zip(want) {
        let schema = (tool.parameters)();
        let props = schema["properties"].as_object().unwrap();
        let got: Vec<(&str, &str)> = props.iter().map(|(k, v)| (k.as_str(), v["type"].as_str().unwrap())).collect();
        assert_eq!(&got, params, "{name}");
        for (k, v) in props {
            if v["type"] == "array" {
                assert_eq!(v["items"]["type"], "string", "{name}.{k}");
            }
        }
        let req: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(&req, required, "{name}");
    }
    let cancel = (retail.tool("cancel_pending_order").unwrap().parameters)();
    assert_eq!(cancel["properties"]["reason"]["enum"], serde_json::json!(["no longer needed", "ordered by mistake"]));
}

#[test]
fn replay_is_deterministic_and_the_final_hash_is_fixed() {
    let retail = domain("retail").unwrap();
    let scenarios: Vec<Scenario> = read("scenarios.json");
    let actions: Vec<Action> = scenarios.iter().flat_map(|s| s.actions.clone()).collect();
    let run = || {
        let mut env = Env::new(retail, data::load_dir(retail, &fixture_dir()).unwrap());
        let results = env.replay(&actions);
        (results, state::hash(&env.db))
    };
    let (first, hash) = run();
    let (second, hash_again) = run();
    assert_eq!(first, second);
    assert_eq!(hash, hash_again);
    assert_eq!(hash, FINAL_HASH, "the canonical form or a tool's effect changed");
    let fresh = data::load_dir(retail, &fixture_dir()).unwrap();
    assert_eq!(state::hash(&fresh), FIXTURE_HASH);
}

/// Canonical hashes (see `env::state`) of the fixture, and of the fixture after every scenario's
/// actions run in sequence on one database. Cross-checked with Python:
/// `sha256(json.dumps(data, sort_keys=True, separators=(",", ":")))`.
const FIXTURE_HASH: &str = "16c547c3019810c5545c247d7c612ea7eabc92af787329035183826a2b4441c4";
const FINAL_HASH: &str = "85507915946967c9c654007a547027e11fe9c82e8bc551ccaa6352a36a05f521";

#[test]
fn unknown_tools_and_bad_arguments_change_nothing() {
    let retail = domain("retail").unwrap();
    let mut env = Env::new(retail, data::load_dir(retail, &fixture_dir()).unwrap());
    let before = env.db.clone();
    let step = |env: &mut Env, v: Value| env.step(&serde_json::from_value(v).unwrap()).unwrap_err();
    assert_eq!(step(&mut env, serde_json::json!({"name": "delete_everything"})), "Error: unknown tool 'delete_everything'");
    assert_eq!(
        step(&mut env, serde_json::json!({"name": "cancel_pending_order", "kwargs": {"order_id": "#R8800101"}})),
        "Error: cancel_pending_order() missing required argument 'reason'"
    );
    assert_eq!(
        step(&mut env, serde_json::json!({"name": "get_order_details", "kwargs": {"order_id": 8800101}})),
        "Error: get_order_details() argument 'order_id' must be a string, got an integer"
    );
    assert!(state::diff(&before, &env.db).is_empty());
}
