//! `cancel_reservation`: cancel a whole reservation and refund every payment made on it.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, field, field_array, field_array_mut, field_num, object_mut, table_mut};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

pub const TOOL: Tool = Tool {
    name: "cancel_reservation",
    kind: ToolKind::Write,
    description: "Cancel an entire reservation: every payment on it is refunded to the method \
                  it came from and the reservation is marked cancelled. Confirm with the user \
                  and check the cancellation rules first.",
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

/// Appends one refund `{"payment_id", "amount": -amount}` per payment already in the history,
/// in order, sets `status` to `cancelled` (in place if the key exists, else last), and returns
/// the updated reservation. Cancelling twice refunds the refunds too, as τ-bench does.
/// Errors: `Error: reservation not found`; `Error: 'key'` for a payment missing a key.
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let reservation_id = arg_str(args, "reservation_id")?;
    let Some(reservation) = table_mut(db, "reservations")?.get_mut(reservation_id) else {
        return Err("Error: reservation not found".into());
    };
    let what = format!("reservation {reservation_id}");
    let mut refunds = Vec::new();
    for payment in field_array(reservation, "payment_history", &what)? {
        let payment_id = field(payment, "payment_id", "a payment")?.clone();
        let amount = field_num(payment, "amount", "a payment")?.checked_neg()?.to_value()?;
        refunds.push(json!({"payment_id": payment_id, "amount": amount}));
    }
    field_array_mut(reservation, "payment_history", &what)?.extend(refunds);
    object_mut(reservation, &what)?.insert("status".into(), Value::from("cancelled"));
    Ok(dumps(reservation))
}

#[cfg(test)]
mod tests {
    use super::TOOL;
    use crate::env::airline::fixture::{call, db};
    use crate::env::airline::golden;
    use serde_json::json;

    #[test]
    fn matches_tau_bench() {
        golden::check(TOOL.name);
    }

    #[test]
    fn malformed_payment_changes_nothing() {
        let mut data = db();
        data["reservations"]["QX7P2A"]["payment_history"] = json!([{"payment_id": "credit_card_1100001"}]);
        let before = data.clone();
        assert_eq!(
            call(&TOOL, &mut data, json!({"reservation_id": "QX7P2A"})).unwrap_err(),
            "Error: malformed data: a payment has no 'amount'"
        );
        assert_eq!(data, before);
    }
}
