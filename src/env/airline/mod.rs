//! The airline domain: τ-bench-compatible tools over `users`, `flights` and `reservations`.
//!
//! Every tool reproduces τ-bench's airline tool of the same name for each well-typed call: the
//! same parameters, the same change to the data, and the same result text. Tool descriptions
//! are our own. Where τ-bench would raise a Python exception (mistyped or incomplete nested
//! arguments, malformed data), the tool returns an `Error: ` string of our own instead, except
//! for the two `KeyError`s τ-bench raises on well-formed data and well-typed calls
//! (`search_onestop_flight`'s second-leg date, a certificate listed twice in
//! `book_reservation`), whose observation `Error: 'key'` is kept.
//!
//! The whole domain is in this folder: the tools (`tools/`, one per file), the policy as a
//! document (`policy.md`) and as rules (`policy.rs`), the world generator (`generate.rs`), the
//! tools' place in the API graph (`graph.rs`), the few-shot examples (`examples.jsonl`), and
//! below, how the data sampler finds a task's member.

mod fares;
mod generate;
mod graph;
mod payment;
mod policy;
mod py;
pub mod tools;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod golden;

use super::common::{CALCULATE, THINK, TRANSFER_TO_HUMAN_AGENTS};
use super::subjects::{strings, Field, Records, Subjects, Take};
use super::{Builtin, Parts};

/// Builds the domain. Tables are in the order τ-bench loads them; tools in τ-bench's order.
pub fn domain() -> Builtin {
    use tools::*;
    Builtin::new(Parts {
        name: "airline",
        description: "An airline's reservation desk: members with saved payment methods and certificates, \
                      flights with per-day seats and prices, and reservations. The agent books, changes \
                      and cancels reservations, updates baggage and passengers, and sends certificates.",
        tables: &["flights", "reservations", "users"],
        tools: vec![
            book_reservation::TOOL,
            CALCULATE,
            cancel_reservation::TOOL,
            get_reservation_details::TOOL,
            get_user_details::TOOL,
            list_all_airports::TOOL,
            search_direct_flight::TOOL,
            search_onestop_flight::TOOL,
            send_certificate::TOOL,
            THINK,
            TRANSFER_TO_HUMAN_AGENTS,
            update_reservation_baggages::TOOL,
            update_reservation_flights::TOOL,
            update_reservation_passengers::TOOL,
        ],
        policy: include_str!("policy.md"),
        rules: policy::check,
        generator: generate::generate,
        complete,
        graph: graph::hints(),
        subjects: subjects(),
        rounds: 5,
        examples: include_str!("examples.jsonl"),
    })
}

/// The arguments a sampled action cannot take from the data: a booking's payment, which must
/// add up to its fare.
fn complete(db: &crate::env::Db, action: &mut crate::env::Action) {
    if action.name == tools::book_reservation::TOOL.name {
        tools::book_reservation::complete(db, &mut action.kwargs);
    }
}

/// A task is about one member with at least one reservation: their identity, their payment
/// methods and their reservations.
fn subjects() -> Subjects {
    let field = |arg: &str, pointer: &str, take| Field { args: strings(&[arg]), pointer: pointer.into(), take };
    Subjects {
        table: "users".into(),
        id_args: strings(&["user_id"]),
        identify: strings(&["get_user_details"]),
        fields: vec![
            field("email", "/email", Take::Value),
            field("first_name", "/name/first_name", Take::Value),
            field("last_name", "/name/last_name", Take::Value),
            field("payment_id", "/payment_methods", Take::Keys),
        ],
        records: Records { list: "reservations".into(), table: "reservations".into(), id_args: strings(&["reservation_id"]) },
        catalogue: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The schema without its prose, which is ours and differs from τ-bench's.
    fn shape(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                Value::Object(map.iter().filter(|(k, _)| *k != "description").map(|(k, v)| (k.clone(), shape(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn names_order_and_parameters_match_tau_bench() {
        // Recorded from τ-bench's tool list by testdata/golden_tool/shapes.py.
        let expected: Value = serde_json::from_str(include_str!("testdata/tau_bench_parameter_shapes.json")).unwrap();
        let ours: Vec<Value> =
            super::domain().tools.iter().map(|t| serde_json::json!({"name": t.name, "parameters": shape(&(t.parameters)())})).collect();
        // Compared as text so that key order counts too.
        assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn every_description_is_our_own_and_present() {
        for tool in super::domain().tools {
            assert!(tool.description.len() > 20, "{} needs a description", tool.name);
        }
    }
}
