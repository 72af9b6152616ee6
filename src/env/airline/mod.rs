//! The airline domain: τ-bench-compatible tools over `users`, `flights` and `reservations`.
//!
//! Every tool reproduces τ-bench's airline tool of the same name for each well-typed call: the
//! same parameters, the same change to the data, and the same result text. Tool descriptions
//! are our own. Where τ-bench would raise a Python exception, the tool returns an `Error: `
//! string instead (a `KeyError` keeps τ-bench's own `Error: 'key'` text, see
//! [`crate::env::pydict`]).

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

use super::Tool;

/// The tables an airline database holds, in τ-bench's order.
pub const TABLES: [&str; 3] = ["flights", "reservations", "users"];

/// The airline-specific tools, in τ-bench's order (the shared `calculate`, `think` and
/// `transfer_to_human_agents` are added by the domain registry).
pub fn tools() -> Vec<Tool> {
    use tools::*;
    vec![
        book_reservation::TOOL,
        cancel_reservation::TOOL,
        get_reservation_details::TOOL,
        get_user_details::TOOL,
        list_all_airports::TOOL,
        search_direct_flight::TOOL,
        search_onestop_flight::TOOL,
        send_certificate::TOOL,
        update_reservation_baggages::TOOL,
        update_reservation_flights::TOOL,
        update_reservation_passengers::TOOL,
    ]
}
