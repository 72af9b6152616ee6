//! `book_reservation`: book a new reservation for a user and take payment for it.

use serde_json::{json, Map, Value};

use crate::env::airline::fares;
use crate::env::airline::py::{arg, arg_list, arg_num, key_error, num_eq, num_str, sum};
use crate::env::lookup::{arg_str, field, field_array_mut, field_mut, field_num, field_obj, field_str, object_mut, table, table_mut};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;
use crate::pynum::PyNum;

pub const TOOL: Tool = Tool {
    name: "book_reservation",
    kind: ToolKind::Write,
    description: "Create a reservation for a user on the given flight segments, cabin and \
                  passengers, and charge it to the user's stored payment methods. The payments \
                  must add up exactly to the fare for every passenger on every segment, plus $30 \
                  per passenger for travel insurance and $50 per paid checked bag.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "user_id": {"type": "string", "description": "The id of the user making the booking, for example 'ana_ruiz_123'."},
            "origin": {"type": "string", "description": "IATA code of the trip's starting airport, for example 'BOS'."},
            "destination": {"type": "string", "description": "IATA code of the trip's destination airport, for example 'SEA'."},
            "flight_type": {"type": "string", "enum": ["one_way", "round_trip"]},
            "cabin": {"type": "string", "enum": ["basic_economy", "economy", "business"]},
            "flights": {
                "type": "array",
                "description": "Every segment of the trip, in travel order.",
                "items": {
                    "type": "object",
                    "properties": {
                        "flight_number": {"type": "string", "description": "The flight's number, for example 'HAT123'."},
                        "date": {"type": "string", "description": "The day the segment flies, as 'YYYY-MM-DD', for example '2024-05-20'."}
                    },
                    "required": ["flight_number", "date"]
                }
            },
            "passengers": {
                "type": "array",
                "description": "Everyone travelling on the reservation.",
                "items": {
                    "type": "object",
                    "properties": {
                        "first_name": {"type": "string", "description": "Given name, for example 'Ana'."},
                        "last_name": {"type": "string", "description": "Family name, for example 'Ruiz'."},
                        "dob": {"type": "string", "description": "Date of birth as 'YYYY-MM-DD', for example '1988-11-03'."}
                    },
                    "required": ["first_name", "last_name", "dob"]
                }
            },
            "payment_methods": {
                "type": "array",
                "description": "How the booking is paid: one entry per stored payment method used.",
                "items": {
                    "type": "object",
                    "properties": {
                        "payment_id": {"type": "string", "description": "Id of a payment method in the user's profile, for example 'credit_card_5551234', 'gift_card_5551234' or 'certificate_5551234'."},
                        "amount": {"type": "number", "description": "The amount charged to this method."}
                    },
                    "required": ["payment_id", "amount"]
                }
            },
            "total_baggages": {"type": "integer", "description": "Checked bags on the reservation, free and paid together."},
            "nonfree_baggages": {"type": "integer", "description": "How many of the checked bags are paid."},
            "insurance": {"type": "string", "enum": ["yes", "no"]}
        },
        "required": [
            "user_id", "origin", "destination", "flight_type", "cabin", "flights", "passengers",
            "payment_methods", "total_baggages", "nonfree_baggages", "insurance"
        ]
    })
}

/// The ids τ-bench gives new reservations: the first one not taken, else the last one, which
/// is then overwritten.
const NEW_IDS: [&str; 3] = ["HATHAT", "HATHAU", "HATHAV"];

/// τ-bench's fixed booking time.
const CREATED_AT: &str = "2024-05-15T15:00:00";

/// Prices every segment (each gets `price`, `origin`, `destination`), checks the payments,
/// then takes gift-card amounts off their balances, removes used certificates, stores the
/// reservation (arguments as given; `payment_methods` becomes `payment_history`), appends its
/// id to the user's reservations and returns it. Seat counts are not changed, as in τ-bench.
///
/// Errors, in τ-bench's order: `Error: user not found`; per segment the errors of
/// `update_reservation_flights`; per payment `Error: payment method P not found` and
/// `Error: not enough balance in payment method P` (gift cards and certificates);
/// `Error: payment amount does not add up, total price is T, but paid S`. A certificate listed
/// twice fails with τ-bench's `Error: 'certificate_…'` after the earlier payments were taken,
/// as in τ-bench.
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let user_id = arg_str(args, "user_id")?;
    let cabin = arg_str(args, "cabin")?;
    let insurance = arg_str(args, "insurance")?;
    let mut flights = arg_list(args, "flights")?.clone();
    let passengers = arg_list(args, "passengers")?.len();
    let requested_payments = arg_list(args, "payment_methods")?;
    let nonfree = arg_num(args, "nonfree_baggages")?;

    let reservations = table(db, "reservations")?;
    let Some(user) = table(db, "users")?.get(user_id) else {
        return Err("Error: user not found".into());
    };
    let reservation_id = NEW_IDS.iter().find(|id| !reservations.contains_key(**id)).unwrap_or(&NEW_IDS[2]);

    let total = price(db, &mut flights, cabin, passengers, insurance, nonfree)?;

    let what = format!("user {user_id}");
    let mut payments = Vec::with_capacity(requested_payments.len());
    for payment in requested_payments {
        let payment_id = field_str(payment, "payment_id", "a payment")?;
        let amount = field_num(payment, "amount", "a payment")?;
        let Some(method) = field_obj(user, "payment_methods", &what)?.get(payment_id) else {
            return Err(format!("Error: payment method {payment_id} not found"));
        };
        let source = field(method, "source", payment_id)?;
        if (source == "gift_card" || source == "certificate") && field_num(method, "amount", payment_id)?.lt(amount) {
            return Err(format!("Error: not enough balance in payment method {payment_id}"));
        }
        payments.push((payment_id, amount));
    }
    let paid = sum(payments.iter().map(|(_, amount)| *amount))?;
    if !num_eq(paid, total) {
        return Err(format!("Error: payment amount does not add up, total price is {}, but paid {}", num_str(total), num_str(paid)));
    }

    let reservation = json!({
        "reservation_id": reservation_id,
        "user_id": user_id,
        "origin": arg(args, "origin")?,
        "destination": arg(args, "destination")?,
        "flight_type": arg(args, "flight_type")?,
        "cabin": cabin,
        "flights": flights,
        "passengers": arg(args, "passengers")?,
        "payment_history": requested_payments,
        "created_at": CREATED_AT,
        "total_baggages": arg(args, "total_baggages")?,
        "nonfree_baggages": arg(args, "nonfree_baggages")?,
        "insurance": insurance,
    });
    let user = table_mut(db, "users")?.get_mut(user_id).ok_or_else(|| "Error: user not found".to_string())?;
    let methods = object_mut(field_mut(user, "payment_methods", &what)?, &what)?;
    take_payments(methods, &payments)?;
    field_array_mut(user, "reservations", &what)?.push(Value::from(*reservation_id));
    table_mut(db, "reservations")?.insert(reservation_id.to_string(), reservation.clone());
    Ok(dumps(&reservation))
}

/// What the booking costs: every segment's fare (priced into `flights`) for every passenger,
/// plus $30 per passenger for insurance and $50 per paid bag.
fn price(db: &Db, flights: &mut [Value], cabin: &str, passengers: usize, insurance: &str, nonfree: PyNum) -> Result<PyNum, String> {
    let seats = PyNum::Int(passengers as i128);
    let mut total = PyNum::Int(0);
    for segment in flights.iter_mut() {
        let price = fares::quote_segment(db, segment, cabin, passengers)?;
        total = total.checked_add(price.checked_mul(seats)?)?;
    }
    if insurance == "yes" {
        total = total.checked_add(PyNum::Int(30).checked_mul(seats)?)?;
    }
    total.checked_add(PyNum::Int(50).checked_mul(nonfree)?)
}

/// Completes a sampled booking ([`crate::env::Environment::complete`]): the whole fare goes to
/// the first payment method it names, and the trip's origin and destination are those of its
/// flights (the first segment's origin; the last segment's destination one way, the
/// turnaround's on a round trip). Arguments it cannot price are left as they are, for the tool
/// to refuse.
pub fn complete(db: &Db, args: &mut Args) {
    let priced = (|| -> Result<(Vec<Value>, PyNum), String> {
        let mut flights = arg_list(args, "flights")?.clone();
        let passengers = arg_list(args, "passengers")?.len();
        let total =
            price(db, &mut flights, arg_str(args, "cabin")?, passengers, arg_str(args, "insurance")?, arg_num(args, "nonfree_baggages")?)?;
        Ok((flights, total))
    })();
    let Ok((flights, total)) = priced else { return };
    let payer = arg_list(args, "payment_methods").ok().and_then(|p| p.first()).and_then(|p| p.get("payment_id")).cloned();
    let (Some(payer), Ok(amount), Some(first), Some(last)) = (payer, total.to_value(), flights.first(), flights.last()) else { return };
    let turnaround =
        if args.get("flight_type").and_then(Value::as_str) == Some("round_trip") { &flights[(flights.len() - 1) / 2] } else { last };
    let (origin, destination) = (first.get("origin").cloned(), turnaround.get("destination").cloned());
    args.insert("payment_methods".into(), json!([{"payment_id": payer, "amount": amount}]));
    if let (Some(origin), Some(destination)) = (origin, destination) {
        args.insert("origin".into(), origin);
        args.insert("destination".into(), destination);
    }
}

/// Deducts gift-card payments and removes used certificates, in order. A method that is gone
/// by the time it is reached (a certificate listed twice) fails with τ-bench's `Error: 'id'`
/// and leaves the earlier deductions in place, exactly as τ-bench's loop does.
fn take_payments(methods: &mut Map<String, Value>, payments: &[(&str, PyNum)]) -> Result<(), String> {
    for &(payment_id, amount) in payments {
        let method = methods.get_mut(payment_id).ok_or_else(|| key_error(payment_id))?;
        let source = field(method, "source", payment_id)?;
        if source == "gift_card" {
            let balance = field_num(method, "amount", payment_id)?.checked_sub(amount)?.to_value()?;
            object_mut(method, payment_id)?.insert("amount".into(), balance);
        } else if source == "certificate" {
            // shift_remove keeps the other methods in order, like Python's `del`.
            methods.shift_remove(payment_id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TOOL;
    use crate::env::airline::fixture::{args, call, db};
    use crate::env::airline::golden;
    use serde_json::json;

    #[test]
    fn matches_tau_bench() {
        golden::check(TOOL.name);
    }

    #[test]
    fn unchecked_payment_entries_fail_cleanly() {
        let mut data = db();
        let request = json!({"user_id": "ivy_moreau_101", "origin": "BOS", "destination": "ORD", "flight_type": "one_way",
            "cabin": "economy", "flights": [{"flight_number": "HAT901", "date": "2024-05-20"}],
            "passengers": [{"first_name": "A", "last_name": "B", "dob": "2000-01-01"}],
            "payment_methods": ["credit_card_1100001"], "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"});
        let err = (TOOL.run)(&mut data, &args(request)).unwrap_err();
        assert_eq!(err, "Error: malformed data: a payment has no 'payment_id'");
        assert_eq!(data, db());
    }

    #[test]
    fn oversized_integers_never_panic() {
        let mut data = db();
        let request = json!({"user_id": "ivy_moreau_101", "origin": "BOS", "destination": "ORD", "flight_type": "one_way",
            "cabin": "economy", "flights": [{"flight_number": "HAT901", "date": "2024-05-20"}],
            "passengers": [{"first_name": "A", "last_name": "B", "dob": "2000-01-01"}],
            "payment_methods": [{"payment_id": "credit_card_1100001", "amount": u64::MAX}],
            "total_baggages": 0, "nonfree_baggages": u64::MAX, "insurance": "no"});
        let err = call(&TOOL, &mut data, request).unwrap_err();
        assert_eq!(
            err,
            format!("Error: payment amount does not add up, total price is {}, but paid {}", 180 + 50 * u64::MAX as i128, u64::MAX)
        );
    }

    #[test]
    fn payment_without_amount_is_our_error() {
        // τ-bench would raise KeyError('amount') here.
        let mut data = db();
        let request = json!({"user_id": "ivy_moreau_101", "origin": "BOS", "destination": "ORD", "flight_type": "one_way",
            "cabin": "economy", "flights": [{"flight_number": "HAT901", "date": "2024-05-20"}],
            "passengers": [{"first_name": "A", "last_name": "B", "dob": "2000-01-01"}],
            "payment_methods": [{"payment_id": "credit_card_1100001"}], "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"});
        assert_eq!(call(&TOOL, &mut data, request).unwrap_err(), "Error: malformed data: a payment has no 'amount'");
        assert_eq!(data, db());
    }
}
