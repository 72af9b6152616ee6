//! The retail domain: customers, their orders, and a product catalog, as in τ-bench.
//!
//! Every tool matches τ-bench's retail tool of the same name byte for byte: the same
//! parameters, the same change to the data (down to the order of appended records, Python's
//! int/float arithmetic and `round(x, 2)`), and the same result text. The descriptions are
//! our own.
//!
//! The whole domain is in this folder: the tools (`tools/`, one per file), the policy as a
//! document (`policy.md`) and as rules (`policy.rs`), the world generator (`generate.rs`,
//! `catalog.rs`), the tools' place in the API graph (`graph.rs`), the few-shot examples
//! (`examples.jsonl`), and below, how the data sampler finds a task's customer.

mod catalog;
mod generate;
mod graph;
mod policy;
pub mod records;
pub mod tools;

use super::common::{CALCULATE, THINK, TRANSFER_TO_HUMAN_AGENTS};
use super::subjects::{strings, Catalogue, Field, Records, Subjects, Take};
use super::{Builtin, Parts};

/// Builds the domain; the tools are listed in τ-bench's order.
pub fn domain() -> Builtin {
    Builtin::new(Parts {
        name: "retail",
        description: "An online shop's customer support: customers with addresses and saved payment methods, \
                      their orders in every status from pending to exchanged, and a catalogue of products \
                      with variants. The agent looks orders up, cancels or modifies pending ones, and \
                      returns or exchanges delivered ones.",
        tables: &["orders", "products", "users"],
        tools: vec![
            CALCULATE,
            tools::cancel_pending_order::TOOL,
            tools::exchange_delivered_order_items::TOOL,
            tools::find_user_id_by_email::TOOL,
            tools::find_user_id_by_name_zip::TOOL,
            tools::get_order_details::TOOL,
            tools::get_product_details::TOOL,
            tools::get_user_details::TOOL,
            tools::list_all_product_types::TOOL,
            tools::modify_pending_order_address::TOOL,
            tools::modify_pending_order_items::TOOL,
            tools::modify_pending_order_payment::TOOL,
            tools::modify_user_address::TOOL,
            tools::return_delivered_order_items::TOOL,
            THINK,
            TRANSFER_TO_HUMAN_AGENTS,
        ],
        policy: include_str!("policy.md"),
        rules: policy::check,
        generator: generate::generate,
        // Every argument of a retail tool is found in the data as it is.
        complete: |_, _| {},
        graph: graph::hints(),
        subjects: subjects(),
        rounds: 3,
        examples: include_str!("examples.jsonl"),
    })
}

/// A task is about one customer with at least one order: their identity and payment methods,
/// their orders, and the catalogue entries of what they ordered with a few variants on offer.
fn subjects() -> Subjects {
    let field = |arg: &str, pointer: &str, take| Field { args: strings(&[arg]), pointer: pointer.into(), take };
    Subjects {
        table: "users".into(),
        id_args: strings(&["user_id"]),
        identify: strings(&["find_user_id_by_email", "find_user_id_by_name_zip", "get_user_details"]),
        fields: vec![
            field("email", "/email", Take::Value),
            field("first_name", "/name/first_name", Take::Value),
            field("last_name", "/name/last_name", Take::Value),
            field("payment_method_id", "/payment_methods", Take::Keys),
        ],
        records: Records { list: "orders".into(), table: "orders".into(), id_args: strings(&["order_id"]) },
        catalogue: Some(Catalogue {
            table: "products".into(),
            lines: "items".into(),
            entry: "product_id".into(),
            option: "item_id".into(),
            options: "variants".into(),
            offer_flag: "available".into(),
            // Enough for a real choice, few enough to keep the prompt short for small models.
            offered: 4,
            keep: strings(&["name"]),
            held_args: strings(&["item_ids"]),
            offered_args: strings(&["new_item_ids"]),
        }),
    }
}
