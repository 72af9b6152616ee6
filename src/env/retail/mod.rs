//! The retail domain: customers, their orders, and a product catalog, as in τ-bench.
//!
//! Every tool matches τ-bench's retail tool of the same name byte for byte: the same
//! parameters, the same change to the data (down to the order of appended records, Python's
//! int/float arithmetic and `round(x, 2)`), and the same result text. The descriptions are
//! our own.

pub mod records;
pub mod tools;

use super::common::{CALCULATE, THINK, TRANSFER_TO_HUMAN_AGENTS};
use super::Domain;

/// Builds the domain; the tools are listed in τ-bench's order.
pub fn domain() -> Domain {
    Domain {
        name: "retail",
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
    }
}
