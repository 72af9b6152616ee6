//! `update_reservation_baggages`: change the checked-bag counts on a reservation.

use serde_json::{json, Value};

use crate::env::airline::payment;
use crate::env::airline::py::{arg, arg_num, num_eq};
use crate::env::lookup::{arg_str, field_array_mut, field_num, field_str, object_mut, table, table_mut};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;
use crate::pynum::PyNum;

pub const TOOL: Tool = Tool {
    name: "update_reservation_baggages",
    kind: ToolKind::Write,
    description: "Set the number of checked bags on a reservation, in total and how many of \
                  them are paid. Each paid bag beyond those already on the reservation costs \
                  $50, charged to the given payment method (not a certificate).",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "reservation_id": {"type": "string", "description": "The six-character reservation id, for example 'K2X9QD'."},
            "total_baggages": {"type": "integer", "description": "Checked bags on the reservation after the change, free and paid together."},
            "nonfree_baggages": {"type": "integer", "description": "How many of those checked bags are paid, after the change."},
            "payment_id": {"type": "string", "description": "Id of a stored payment method that pays for added bags, for example 'credit_card_5551234' or 'gift_card_5551234'."}
        },
        "required": ["reservation_id", "total_baggages", "nonfree_baggages", "payment_id"]
    })
}

/// The fee is `50 * max(0, nonfree_baggages - current nonfree_baggages)`. Sets both counts
/// (values as given), takes the fee off a gift card, appends `{"payment_id", "amount": fee}`
/// to the payment history when the fee is not zero, and returns the updated reservation.
/// Errors, in τ-bench's order: `Error: reservation not found`,
/// `Error: payment method not found`, `Error: certificate cannot be used to update reservation`,
/// `Error: gift card balance is not enough`.
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let reservation_id = arg_str(args, "reservation_id")?;
    let total_baggages = arg(args, "total_baggages")?.clone();
    let nonfree_baggages = arg(args, "nonfree_baggages")?.clone();
    let requested_nonfree = arg_num(args, "nonfree_baggages")?;
    let payment_id = arg_str(args, "payment_id")?;
    table(db, "users")?;
    let Some(reservation) = table(db, "reservations")?.get(reservation_id) else {
        return Err("Error: reservation not found".into());
    };
    let what = format!("reservation {reservation_id}");
    let added = requested_nonfree.checked_sub(field_num(reservation, "nonfree_baggages", &what)?)?;
    // Python's max(0, added) keeps the int 0 unless `added > 0`.
    let fee = PyNum::Int(50).checked_mul(if added.gt(PyNum::Int(0)) { added } else { PyNum::Int(0) })?;
    let user_id = field_str(reservation, "user_id", &what)?.to_string();
    let balance = payment::authorize(db, &user_id, payment_id, fee)?;
    let fee_value = fee.to_value()?;

    let Some(reservation) = table_mut(db, "reservations")?.get_mut(reservation_id) else {
        return Err("Error: reservation not found".into());
    };
    // The payment is recorded first so that a malformed history fails before anything changes.
    if !num_eq(fee, PyNum::Int(0)) {
        field_array_mut(reservation, "payment_history", &what)?.push(json!({"payment_id": payment_id, "amount": fee_value}));
    }
    let record = object_mut(reservation, &what)?;
    record.insert("total_baggages".into(), total_baggages);
    record.insert("nonfree_baggages".into(), nonfree_baggages);
    let result = dumps(reservation);
    if let Some(balance) = balance {
        payment::set_balance(db, &user_id, payment_id, balance)?;
    }
    Ok(result)
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
    fn reservation_of_unknown_user_is_a_key_error() {
        let mut data = db();
        data["reservations"]["QX7P2A"]["user_id"] = json!("ghost_000");
        let before = data.clone();
        let err = call(
            &TOOL,
            &mut data,
            json!({"reservation_id": "QX7P2A", "total_baggages": 2, "nonfree_baggages": 1, "payment_id": "credit_card_1100001"}),
        )
        .unwrap_err();
        assert_eq!(err, "Error: malformed data: the reservation's user ghost_000 does not exist");
        assert_eq!(data, before);
    }
}
