//! Charging a change to an existing reservation (baggage or flights) to a stored payment method.

use serde_json::Value;

use crate::env::lookup::{field, field_mut, field_num, field_obj, object_mut, table, table_mut};
use crate::env::Db;
use crate::pynum::PyNum;

/// Checks that `payment_id` may pay `amount` for a change to one of `user_id`'s reservations,
/// with τ-bench's rules and messages: the method must be on file, certificates are refused, and
/// a gift card must hold at least `amount`. Returns the gift card's balance after the charge,
/// or `None` for methods without a balance (credit cards).
pub fn authorize(db: &Db, user_id: &str, payment_id: &str, amount: PyNum) -> Result<Option<Value>, String> {
    let what = format!("user {user_id}");
    let Some(user) = table(db, "users")?.get(user_id) else {
        return Err(format!("Error: malformed data: the reservation's user {user_id} does not exist"));
    };
    let Some(method) = field_obj(user, "payment_methods", &what)?.get(payment_id) else {
        return Err("Error: payment method not found".into());
    };
    let what = format!("payment method {payment_id}");
    let source = field(method, "source", &what)?;
    if source == "certificate" {
        return Err("Error: certificate cannot be used to update reservation".into());
    }
    if source != "gift_card" {
        return Ok(None);
    }
    let balance = field_num(method, "amount", &what)?;
    if balance.lt(amount) {
        return Err("Error: gift card balance is not enough".into());
    }
    balance.checked_sub(amount)?.to_value().map(Some)
}

/// Stores a gift card balance computed by [`authorize`].
pub fn set_balance(db: &mut Db, user_id: &str, payment_id: &str, balance: Value) -> Result<(), String> {
    let what = format!("user {user_id}");
    let user = table_mut(db, "users")?.get_mut(user_id).ok_or_else(|| format!("Error: malformed data: no {what}"))?;
    let method = field_mut(field_mut(user, "payment_methods", &what)?, payment_id, &what)?;
    object_mut(method, "a payment method")?.insert("amount".into(), balance);
    Ok(())
}
