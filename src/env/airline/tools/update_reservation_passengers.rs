//! `update_reservation_passengers`: replace the passenger details on a reservation.

use serde_json::{json, Value};

use crate::env::airline::py::{arg, arg_list};
use crate::env::lookup::{arg_str, field_array, object_mut, table_mut};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

pub const TOOL: Tool = Tool {
    name: "update_reservation_passengers",
    kind: ToolKind::Write,
    description: "Replace the names and dates of birth of the passengers on a reservation. The \
                  number of passengers cannot change; give the full new list in order.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "reservation_id": {"type": "string", "description": "The six-character reservation id, for example 'K2X9QD'."},
            "passengers": {
                "type": "array",
                "description": "Every passenger on the reservation after the change.",
                "items": {
                    "type": "object",
                    "properties": {
                        "first_name": {"type": "string", "description": "Given name, for example 'Ana'."},
                        "last_name": {"type": "string", "description": "Family name, for example 'Ruiz'."},
                        "dob": {"type": "string", "description": "Date of birth as 'YYYY-MM-DD', for example '1988-11-03'."}
                    },
                    "required": ["first_name", "last_name", "dob"]
                }
            }
        },
        "required": ["reservation_id", "passengers"]
    })
}

/// Stores `passengers` exactly as given (τ-bench does not inspect the entries) and returns the
/// updated reservation. Errors: `Error: reservation not found`,
/// `Error: number of passengers does not match`.
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let reservation_id = arg_str(args, "reservation_id")?;
    let count = arg_list(args, "passengers")?.len();
    let Some(reservation) = table_mut(db, "reservations")?.get_mut(reservation_id) else {
        return Err("Error: reservation not found".into());
    };
    let what = format!("reservation {reservation_id}");
    if count != field_array(reservation, "passengers", &what)?.len() {
        return Err("Error: number of passengers does not match".into());
    }
    object_mut(reservation, &what)?.insert("passengers".into(), arg(args, "passengers")?.clone());
    Ok(dumps(reservation))
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
        let err = (TOOL.run)(&mut data, &args(json!({"reservation_id": "QX7P2A", "passengers": "two"}))).unwrap_err();
        assert_eq!(err, "Error: argument 'passengers' must be an array, got a string");
        assert_eq!(data, db());
    }
}
