//! `get_reservation_details`: one reservation's full record.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

pub const TOOL: Tool = Tool {
    name: "get_reservation_details",
    kind: ToolKind::Read,
    description: "Look up a reservation by its id: its user, trip type, cabin, flight segments \
                  with prices, passengers, payments and refunds, baggage counts and insurance.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "reservation_id": {"type": "string", "description": "The six-character reservation id, for example 'K2X9QD'."}
        },
        "required": ["reservation_id"]
    })
}

/// The reservation's record as JSON. A missing reservation gives `Error: user not found`:
/// τ-bench's wording, kept so observations match.
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let reservation_id = arg_str(args, "reservation_id")?;
    match table(db, "reservations")?.get(reservation_id) {
        Some(reservation) => Ok(dumps(reservation)),
        None => Err("Error: user not found".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::TOOL;
    use crate::env::airline::fixture::{args, db};
    use crate::env::airline::golden;
    use serde_json::json;

    #[test]
    fn matches_tau_bench() {
        golden::check(TOOL.name);
    }

    #[test]
    fn unchecked_arguments_fail_cleanly() {
        let mut data = db();
        let err = (TOOL.run)(&mut data, &args(json!({"reservation_id": 7}))).unwrap_err();
        assert_eq!(err, "Error: argument 'reservation_id' must be a string");
    }
}
