//! `modify_pending_order_payment`: pay for a pending order with a different saved method.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, field, field_array, field_array_mut, field_mut, field_num, field_obj, field_str};
use crate::env::retail::records::{describe_order, has_status, is_gift_card, order, owner, store};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;
use crate::pynum::PyNum;

/// Appends a payment with the new method and a refund to the old one (same amount, in that
/// order); debits the new method if it is a gift card and credits the old one if its id
/// contains `gift_card`, each balance followed by `round(balance, 2)`. Returns the order.
///
/// Errors, in this order: `Error: order not found`,
/// `Error: non-pending order cannot be modified`, `Error: payment method not found`,
/// `Error: there should be exactly one payment for a pending order`,
/// `Error: the new payment method should be different from the current one`,
/// `Error: insufficient gift card balance to pay for the order`.
pub const TOOL: Tool = Tool {
    name: "modify_pending_order_payment",
    kind: ToolKind::Write,
    description: "Switch a pending order to another payment method saved on the customer's profile. \
                  The full amount is charged to the new method and refunded to the old one; a gift \
                  card must hold enough balance. Before calling, explain the change and get a clear yes.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": super::ORDER_ID_HELP},
            "payment_method_id": {"type": "string", "description": super::PAYMENT_METHOD_HELP}
        },
        "required": ["order_id", "payment_method_id"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let order_id = arg_str(args, "order_id")?;
    let new_id = arg_str(args, "payment_method_id")?;
    let what = describe_order(order_id);
    let mut order = order(db, order_id)?.clone();
    if !has_status(&order, "pending", &what)? {
        return Err("Error: non-pending order cannot be modified".into());
    }
    let (user_id, user) = owner(db, &order, &what)?;
    let user_what = format!("user {user_id}");
    if !field_obj(user, "payment_methods", &user_what)?.contains_key(new_id) {
        return Err("Error: payment method not found".into());
    }

    let history = field_array(&order, "payment_history", &what)?;
    let Some(first) = history.first() else {
        return Err(format!("Error: malformed data: {what} has an empty payment history"));
    };
    let payment_what = format!("the first payment of {what}");
    if history.len() > 1 || field(first, "transaction_type", &payment_what)?.as_str() != Some("payment") {
        return Err("Error: there should be exactly one payment for a pending order".into());
    }
    let old_id = field_str(first, "payment_method_id", &payment_what)?.to_string();
    if old_id == new_id {
        return Err("Error: the new payment method should be different from the current one".into());
    }
    let amount_value = field(first, "amount", &payment_what)?.clone();
    // The amount only needs to be a number where τ-bench does arithmetic with it.
    let amount =
        || PyNum::from_value(&amount_value).ok_or_else(|| format!("Error: malformed data: 'amount' of {payment_what} is not a number"));

    let mut user = user.clone();
    let methods_what = format!("the payment methods of {user_what}");
    let new_method = field(field(&user, "payment_methods", &user_what)?, new_id, &methods_what)?;
    let new_is_gift_card = is_gift_card(new_method, &format!("payment method {new_id}"))?;
    if new_is_gift_card && field_num(new_method, "balance", &format!("payment method {new_id}"))?.lt(amount()?) {
        return Err("Error: insufficient gift card balance to pay for the order".into());
    }

    field_array_mut(&mut order, "payment_history", &what)?.extend([
        json!({"transaction_type": "payment", "amount": amount_value, "payment_method_id": new_id}),
        json!({"transaction_type": "refund", "amount": amount_value, "payment_method_id": old_id}),
    ]);
    if new_is_gift_card {
        adjust_balance(&mut user, &user_what, new_id, |b| b.checked_sub(amount()?))?;
    }
    if old_id.contains("gift_card") {
        adjust_balance(&mut user, &user_what, &old_id, |b| b.checked_add(amount()?))?;
    }

    store(db, "users", &user_id, user)?;
    store(db, "orders", order_id, order.clone())?;
    Ok(dumps(&order))
}

/// `balance = round(change(balance), 2)` on one of the user's payment methods.
fn adjust_balance(
    user: &mut Value,
    user_what: &str,
    method_id: &str,
    change: impl FnOnce(PyNum) -> Result<PyNum, String>,
) -> Result<(), String> {
    let methods = field_mut(user, "payment_methods", user_what)?;
    let method = field_mut(methods, method_id, &format!("the payment methods of {user_what}"))?;
    let what = format!("payment method {method_id}");
    let balance = change(field_num(method, "balance", &what)?)?.round2();
    *field_mut(method, "balance", &what)? = balance.to_value()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{at, call, db};
    use serde_json::json;

    fn pay(db: &mut crate::env::Db, order_id: &str, method: &str) -> Result<String, String> {
        call(db, "modify_pending_order_payment", json!({"order_id": order_id, "payment_method_id": method}))
    }

    #[test]
    fn moves_the_payment_from_gift_card_to_card() {
        let mut db = db();
        let out = pay(&mut db, "#R8800101", "credit_card_4410021").unwrap();
        assert_eq!(
            at(&db, "/orders/#R8800101/payment_history"),
            json!([
                {"transaction_type": "payment", "amount": 56.5, "payment_method_id": "gift_card_9920113"},
                {"transaction_type": "payment", "amount": 56.5, "payment_method_id": "credit_card_4410021"},
                {"transaction_type": "refund", "amount": 56.5, "payment_method_id": "gift_card_9920113"}
            ])
        );
        // The old gift card gets its money back: round(40.1 + 56.5, 2).
        assert_eq!(at(&db, "/users/mira_okafor_1187/payment_methods/gift_card_9920113/balance"), json!(96.6));
        assert!(out.contains(r#"{"transaction_type": "refund", "amount": 56.5, "payment_method_id": "gift_card_9920113"}]}"#), "{out}");
    }

    #[test]
    fn debits_a_new_gift_card() {
        let mut db = db();
        pay(&mut db, "#R8800201", "gift_card_5521871").unwrap();
        // round(150.25 - 71.68, 2) = 78.57
        assert_eq!(at(&db, "/users/tomas_lindqvist_5520/payment_methods/gift_card_5521871/balance"), json!(78.57));
        assert_eq!(at(&db, "/orders/#R8800201/payment_history/2/payment_method_id"), "paypal_3319054");
    }

    #[test]
    fn every_error_path() {
        let mut db = db();
        let before = db.clone();
        assert_eq!(pay(&mut db, "#R9", "paypal_3319054").unwrap_err(), "Error: order not found");
        assert_eq!(pay(&mut db, "#R8800203", "paypal_3319054").unwrap_err(), "Error: non-pending order cannot be modified");
        assert_eq!(pay(&mut db, "#R8800201", "paypal_7702210").unwrap_err(), "Error: payment method not found");
        assert_eq!(
            pay(&mut db, "#R8800202", "gift_card_5521871").unwrap_err(),
            "Error: there should be exactly one payment for a pending order"
        );
        assert_eq!(
            pay(&mut db, "#R8800201", "paypal_3319054").unwrap_err(),
            "Error: the new payment method should be different from the current one"
        );
        assert_eq!(
            pay(&mut db, "#R8800201", "gift_card_5521870").unwrap_err(),
            "Error: insufficient gift card balance to pay for the order"
        );
        assert_eq!(db, before);
    }
}
