//! `update_reservation_flights`: change the flights or the cabin of a reservation.

use serde_json::{json, Value};

use crate::env::airline::py::{arg_list, num_eq, sum};
use crate::env::airline::{fares, payment};
use crate::env::lookup::{arg_str, field, field_array, field_array_mut, field_num, field_str, object_mut, table, table_mut};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;
use crate::pynum::PyNum;

pub const TOOL: Tool = Tool {
    name: "update_reservation_flights",
    kind: ToolKind::Write,
    description: "Replace the flight segments of a reservation, optionally moving it to another \
                  cabin. List every segment of the new itinerary, including unchanged ones. The \
                  fare difference for all passengers is charged to, or refunded to, the given \
                  payment method (not a certificate).",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "reservation_id": {"type": "string", "description": "The six-character reservation id, for example 'K2X9QD'."},
            "cabin": {"type": "string", "enum": ["basic_economy", "economy", "business"]},
            "flights": {
                "type": "array",
                "description": "All segments of the reservation after the change, in travel order; unchanged segments must be listed too.",
                "items": {
                    "type": "object",
                    "properties": {
                        "flight_number": {"type": "string", "description": "The flight's number, for example 'HAT123'."},
                        "date": {"type": "string", "description": "The day the segment flies, as 'YYYY-MM-DD', for example '2024-05-20'."}
                    },
                    "required": ["flight_number", "date"]
                }
            },
            "payment_id": {"type": "string", "description": "Id of a stored payment method that pays or receives the fare difference, for example 'credit_card_5551234' or 'gift_card_5551234'."}
        },
        "required": ["reservation_id", "cabin", "flights", "payment_id"]
    })
}

/// Prices the new itinerary as τ-bench does: a segment already on the reservation (same flight
/// number and date, and the cabin unchanged) keeps its recorded price, origin and destination;
/// any other segment is priced from the flight's fares for its date and must be available with
/// enough seats for every passenger. The charge is the new total minus the old, times the
/// passenger count; a gift card pays it (or is credited when it is negative), the flights are
/// replaced, a nonzero charge is appended to the payment history, and the reservation is
/// returned. Seat counts are not changed, as in τ-bench.
/// Errors, in τ-bench's order: `Error: reservation not found`, then per new segment
/// `Error: flight X not found`, `... not found on date D`, `... not available on date D`,
/// `Error: not enough seats on flight X`, then the payment errors of `update_reservation_baggages`.
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let reservation_id = arg_str(args, "reservation_id")?;
    let cabin = arg_str(args, "cabin")?;
    let mut flights = arg_list(args, "flights")?.clone();
    let payment_id = arg_str(args, "payment_id")?;
    table(db, "users")?;
    let Some(reservation) = table(db, "reservations")?.get(reservation_id) else {
        return Err("Error: reservation not found".into());
    };
    let what = format!("reservation {reservation_id}");
    let passengers = field_array(reservation, "passengers", &what)?.len();
    let seats = PyNum::Int(passengers as i128);
    let mut total = PyNum::Int(0);
    for segment in &mut flights {
        if let Some(kept) = kept_segment(reservation, segment, cabin, &what)? {
            total = total.checked_add(field_num(kept, "price", &what)?.checked_mul(seats)?)?;
            let segment = object_mut(segment, "a requested flight")?;
            for key in ["price", "origin", "destination"] {
                segment.insert(key.into(), field(kept, key, &what)?.clone());
            }
            continue;
        }
        let price = fares::quote_segment(db, segment, cabin, passengers)?;
        total = total.checked_add(price.checked_mul(seats)?)?;
    }
    let mut old_prices = Vec::new();
    for segment in field_array(reservation, "flights", &what)? {
        old_prices.push(field_num(segment, "price", &what)?);
    }
    let charge = total.checked_sub(sum(old_prices)?.checked_mul(seats)?)?;
    let user_id = field_str(reservation, "user_id", &what)?.to_string();
    let balance = payment::authorize(db, &user_id, payment_id, charge)?;
    let charge_value = charge.to_value()?;

    let Some(reservation) = table_mut(db, "reservations")?.get_mut(reservation_id) else {
        return Err("Error: reservation not found".into());
    };
    // The payment is recorded first so that a malformed history fails before anything changes.
    if !num_eq(charge, PyNum::Int(0)) {
        field_array_mut(reservation, "payment_history", &what)?.push(json!({"payment_id": payment_id, "amount": charge_value}));
    }
    object_mut(reservation, &what)?.insert("flights".into(), Value::Array(flights));
    let result = dumps(reservation);
    if let Some(balance) = balance {
        payment::set_balance(db, &user_id, payment_id, balance)?;
    }
    Ok(result)
}

/// The reservation's first segment with the requested flight number and date, when the cabin
/// stays the same; `None` means the segment must be priced afresh. Like τ-bench's list
/// comprehension, every existing segment is examined, so a malformed one fails even after a match.
fn kept_segment<'a>(reservation: &'a Value, segment: &Value, cabin: &str, what: &str) -> Result<Option<&'a Value>, String> {
    let mut kept = None;
    for existing in field_array(reservation, "flights", what)? {
        let same = field(existing, "flight_number", what)? == field(segment, "flight_number", "a requested flight")?
            && field(existing, "date", what)? == field(segment, "date", "a requested flight")?
            && field(reservation, "cabin", what)? == cabin;
        if same && kept.is_none() {
            kept = Some(existing);
        }
    }
    Ok(kept)
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
    fn unpriced_segment_is_a_key_error() {
        let mut data = db();
        data["reservations"]["QX7P2A"]["flights"][1].as_object_mut().unwrap().remove("price");
        let before = data.clone();
        let request = json!({"reservation_id": "QX7P2A", "cabin": "economy", "payment_id": "credit_card_1100001",
            "flights": [{"flight_number": "HAT901", "date": "2024-05-20"}]});
        assert_eq!(call(&TOOL, &mut data, request).unwrap_err(), "Error: malformed data: reservation QX7P2A has no 'price'");
        assert_eq!(data, before);
    }

    #[test]
    fn schema_violations_inside_the_flights_are_our_errors() {
        // τ-bench would raise KeyError('date') and KeyError('first') here.
        let mut data = db();
        let request = json!({"reservation_id": "QX7P2A", "cabin": "economy", "payment_id": "credit_card_1100001",
            "flights": [{"flight_number": "HAT901"}]});
        assert_eq!(call(&TOOL, &mut data, request).unwrap_err(), "Error: malformed data: a requested flight has no 'date'");
        let request = json!({"reservation_id": "QX7P2A", "cabin": "first", "payment_id": "credit_card_1100001",
            "flights": [{"flight_number": "HAT901", "date": "2024-05-21"}]});
        assert_eq!(call(&TOOL, &mut data, request).unwrap_err(), "Error: malformed data: available seats of flight HAT901 has no 'first'");
        assert_eq!(data, db());
    }
}
