//! The airline domain end to end: registry, data loading and `apigen-mt env` on our fixture.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apigen-mt")).args(args).output().expect("the binary runs")
}

fn fixture_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/airline").to_string_lossy().into_owned()
}

#[test]
fn airline_is_listed_with_its_tables_and_tools() {
    let out = bin(&["env", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("airline\t")).unwrap_or_else(|| panic!("no airline line in {text}"));
    assert_eq!(
        line,
        "airline\ttables: flights, reservations, users\ttools: book_reservation, calculate, cancel_reservation, \
         get_reservation_details, get_user_details, list_all_airports, search_direct_flight, search_onestop_flight, \
         send_certificate, think, transfer_to_human_agents, update_reservation_baggages, update_reservation_flights, \
         update_reservation_passengers"
    );

    let out = bin(&["env", "tools", "airline"]);
    assert!(out.status.success());
    let tools: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tools.as_array().unwrap().len(), 14);
    for tool in tools.as_array().unwrap() {
        jsonschema::meta::validate(&tool["function"]["parameters"]).unwrap();
    }
}

#[test]
fn replay_books_then_cancels_on_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let actions = dir.path().join("actions.json");
    let list = json!([
        {"name": "book_reservation", "kwargs": {"user_id": "omar_castillo_202", "origin": "BOS", "destination": "ORD",
            "flight_type": "one_way", "cabin": "economy", "flights": [{"flight_number": "HAT901", "date": "2024-05-21"}],
            "passengers": [{"first_name": "Omar", "last_name": "Castillo", "dob": "1977-03-02"}],
            "payment_methods": [{"payment_id": "certificate_3221322", "amount": 100}, {"payment_id": "credit_card_2200001", "amount": 70}],
            "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"}},
        {"name": "cancel_reservation", "kwargs": {"reservation_id": "HATHAT"}}
    ]);
    std::fs::write(&actions, list.to_string()).unwrap();
    let fixture = fixture_dir();
    let out = bin(&["env", "replay", "airline", "--actions", actions.to_str().unwrap(), "--data-dir", &fixture]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    let booked: Value = serde_json::from_str(lines[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(booked["reservation_id"], "HATHAT");
    assert_eq!(booked["flights"][0]["price"], 170);
    let cancelled: Value = serde_json::from_str(lines[1]["output"].as_str().unwrap()).unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(
        cancelled["payment_history"],
        json!([{"payment_id": "certificate_3221322", "amount": 100}, {"payment_id": "credit_card_2200001", "amount": 70},
               {"payment_id": "certificate_3221322", "amount": -100}, {"payment_id": "credit_card_2200001", "amount": -70}])
    );
    // The certificate is used up by the booking and not restored by the cancellation, as in τ-bench.
    let diff = lines[2]["diff"].to_string();
    assert!(diff.contains("certificate_3221322") && diff.contains("HATHAT"), "{diff}");
    assert!(lines[3]["hash"].as_str().is_some_and(|h| h.len() == 64));
}
