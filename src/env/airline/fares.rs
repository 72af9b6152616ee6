//! Pricing one requested flight segment, as booking and changing flights both do.

use serde_json::Value;

use crate::env::lookup::{field, field_num, field_obj, field_str, object_mut, table};
use crate::env::Db;
use crate::pynum::PyNum;

/// Checks that the segment `{"flight_number", "date", ...}` can seat `seats` passengers in
/// `cabin`, then records the fare's `price`, `origin` and `destination` on the segment (in that
/// order, after any keys it already has) and returns the price per passenger.
///
/// The checks and their messages follow τ-bench: unknown flight, unknown date, a date whose
/// status is not `available`, too few seats.
pub fn quote_segment(db: &Db, segment: &mut Value, cabin: &str, seats: usize) -> Result<PyNum, String> {
    let flight_number = field_str(segment, "flight_number", "a requested flight")?;
    let Some(flight) = table(db, "flights")?.get(flight_number) else {
        return Err(format!("Error: flight {flight_number} not found"));
    };
    let what = format!("flight {flight_number}");
    let date = field_str(segment, "date", "a requested flight")?;
    let Some(day) = field_obj(flight, "dates", &what)?.get(date) else {
        return Err(format!("Error: flight {flight_number} not found on date {date}"));
    };
    if field(day, "status", &what)? != "available" {
        return Err(format!("Error: flight {flight_number} not available on date {date}"));
    }
    let available = field_num(field(day, "available_seats", &what)?, cabin, &format!("available seats of {what}"))?;
    if available.lt(PyNum::Int(seats as i128)) {
        return Err(format!("Error: not enough seats on flight {flight_number}"));
    }
    let prices = field(day, "prices", &what)?;
    let price = field_num(prices, cabin, &format!("prices of {what}"))?;
    let price_value = field(prices, cabin, &what)?.clone();
    let origin = field(flight, "origin", &what)?.clone();
    let destination = field(flight, "destination", &what)?.clone();
    let segment = object_mut(segment, "a requested flight")?;
    segment.insert("price".into(), price_value);
    segment.insert("origin".into(), origin);
    segment.insert("destination".into(), destination);
    Ok(price)
}
