//! The airline domain: τ-bench-compatible tools over `users`, `flights` and `reservations`.
//!
//! Every tool reproduces τ-bench's airline tool of the same name for each well-typed call: the
//! same parameters, the same change to the data, and the same result text. Tool descriptions
//! are our own. Where τ-bench would raise a Python exception (mistyped or incomplete nested
//! arguments, malformed data), the tool returns an `Error: ` string of our own instead, except
//! for the two `KeyError`s τ-bench raises on well-formed data and well-typed calls
//! (`search_onestop_flight`'s second-leg date, a certificate listed twice in
//! `book_reservation`), whose observation `Error: 'key'` is kept.

mod fares;
mod payment;
mod py;
pub mod tools;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod golden;

use super::common::{CALCULATE, THINK, TRANSFER_TO_HUMAN_AGENTS};
use super::Domain;

/// Builds the domain. Tables are in the order τ-bench loads them; tools in τ-bench's order.
pub fn domain() -> Domain {
    use tools::*;
    Domain {
        name: "airline",
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
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The schema without its prose, which is ours and differs from τ-bench's.
    fn shape(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter().filter(|(k, _)| *k != "description").map(|(k, v)| (k.clone(), shape(v))).collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn names_order_and_parameters_match_tau_bench() {
        // Recorded from τ-bench's tool list by testdata/golden_tool/shapes.py.
        let expected: Value = serde_json::from_str(include_str!("testdata/tau_bench_parameter_shapes.json")).unwrap();
        let ours: Vec<Value> = super::domain()
            .tools
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "parameters": shape(&(t.parameters)())}))
            .collect();
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
