//! `cancel_pending_order`: cancel an order that has not been processed, refunding every payment.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, field, field_array, field_array_mut, field_mut, field_num, field_str, object_mut};
use crate::env::retail::records::{describe_order, has_status, order, owner, store};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;
use crate::pynum::PyNum;

/// Sets the status to `cancelled`, records `cancel_reason`, and appends one refund per payment
/// (same amount and method, in payment order). Gift card refunds are credited at once, each
/// followed by `round(balance, 2)`. Returns the order as JSON.
///
/// Errors, checked in this order: `Error: order not found`,
/// `Error: non-pending order cannot be cancelled`, `Error: invalid reason`.
pub const TOOL: Tool = Tool {
    name: "cancel_pending_order",
    kind: ToolKind::Write,
    description: "Cancel an order whose status is 'pending'; orders already processed or delivered \
                  cannot be cancelled. Every payment is refunded: gift card payments go back to the \
                  gift card immediately, other methods are refunded within 5-7 business days. \
                  Before calling, tell the customer what will be cancelled and get a clear yes.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": super::ORDER_ID_HELP},
            "reason": {
                "type": "string",
                "enum": ["no longer needed", "ordered by mistake"],
                "description": "Why the customer cancels: exactly 'no longer needed' or 'ordered by mistake'."
            }
        },
        "required": ["order_id", "reason"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let order_id = arg_str(args, "order_id")?;
    let reason = arg_str(args, "reason")?;
    let what = describe_order(order_id);
    let mut order = order(db, order_id)?.clone();
    if !has_status(&order, "pending", &what)? {
        return Err("Error: non-pending order cannot be cancelled".into());
    }
    if reason != "no longer needed" && reason != "ordered by mistake" {
        return Err("Error: invalid reason".into());
    }

    let (user_id, user) = owner(db, &order, &what)?;
    let mut user = user.clone();
    let mut refunds = Vec::new();
    for payment in field_array(&order, "payment_history", &what)? {
        let payment_id = field_str(payment, "payment_method_id", &format!("a payment of {what}"))?;
        let amount = field(payment, "amount", &format!("a payment of {what}"))?;
        refunds.push(json!({
            "transaction_type": "refund",
            "amount": amount,
            "payment_method_id": payment_id,
        }));
        if payment_id.contains("gift_card") {
            credit(&mut user, &user_id, payment_id, amount)?;
        }
    }

    let record = object_mut(&mut order, &what)?;
    record.insert("status".into(), json!("cancelled"));
    record.insert("cancel_reason".into(), json!(reason));
    field_array_mut(&mut order, "payment_history", &what)?.extend(refunds);

    store(db, "users", &user_id, user)?;
    store(db, "orders", order_id, order.clone())?;
    Ok(dumps(&order))
}

/// `balance += amount; balance = round(balance, 2)` on one of the user's gift cards.
fn credit(user: &mut Value, user_id: &str, payment_id: &str, amount: &Value) -> Result<(), String> {
    let what = format!("user {user_id}");
    let methods = field_mut(user, "payment_methods", &what)?;
    let method = field_mut(methods, payment_id, &format!("the payment methods of {what}"))?;
    let card = format!("payment method {payment_id}");
    let amount = PyNum::from_value(amount).ok_or_else(|| format!("Error: malformed data: a refund amount for {card} is not a number"))?;
    let balance = field_num(method, "balance", &card)?.checked_add(amount)?.round2();
    *field_mut(method, "balance", &card)? = balance.to_value()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{at, call, db};
    use serde_json::json;

    #[test]
    fn cancels_refunds_and_credits_gift_cards() {
        let mut db = db();
        let out = call(&mut db, "cancel_pending_order", json!({"order_id": "#R8800202", "reason": "ordered by mistake"})).unwrap();
        assert_eq!(at(&db, "/orders/#R8800202/status"), "cancelled");
        assert_eq!(at(&db, "/orders/#R8800202/cancel_reason"), "ordered by mistake");
        assert_eq!(
            at(&db, "/orders/#R8800202/payment_history"),
            json!([
                {"transaction_type": "payment", "amount": 5, "payment_method_id": "gift_card_5521870"},
                {"transaction_type": "payment", "amount": 20, "payment_method_id": "paypal_3319054"},
                {"transaction_type": "refund", "amount": 5, "payment_method_id": "gift_card_5521870"},
                {"transaction_type": "refund", "amount": 20, "payment_method_id": "paypal_3319054"}
            ])
        );
        // An int balance plus an int refund stays an int, as in Python.
        assert_eq!(at(&db, "/users/tomas_lindqvist_5520/payment_methods/gift_card_5521870/balance"), json!(10));
        assert!(out.ends_with(r#""status": "cancelled", "payment_history": [{"transaction_type": "payment", "amount": 5, "payment_method_id": "gift_card_5521870"}, {"transaction_type": "payment", "amount": 20, "payment_method_id": "paypal_3319054"}, {"transaction_type": "refund", "amount": 5, "payment_method_id": "gift_card_5521870"}, {"transaction_type": "refund", "amount": 20, "payment_method_id": "paypal_3319054"}], "cancel_reason": "ordered by mistake"}"#), "{out}");
    }

    #[test]
    fn float_gift_card_balance_is_rounded() {
        let mut db = db();
        call(&mut db, "cancel_pending_order", json!({"order_id": "#R8800101", "reason": "no longer needed"})).unwrap();
        // 40.1 + 56.5 = 96.6 after round(x, 2).
        assert_eq!(at(&db, "/users/mira_okafor_1187/payment_methods/gift_card_9920113/balance"), json!(96.6));
    }

    #[test]
    fn errors_leave_the_data_unchanged() {
        let mut db = db();
        let before = db.clone();
        let cancel = |db: &mut _, id: &str, reason: &str| call(db, "cancel_pending_order", json!({"order_id": id, "reason": reason}));
        assert_eq!(cancel(&mut db, "#R0000000", "no longer needed").unwrap_err(), "Error: order not found");
        assert_eq!(cancel(&mut db, "#R8800103", "no longer needed").unwrap_err(), "Error: non-pending order cannot be cancelled");
        assert_eq!(cancel(&mut db, "#R8800101", "too expensive").unwrap_err(), "Error: invalid reason");
        db.get_mut("users").unwrap()["mira_okafor_1187"]["payment_methods"].as_object_mut().unwrap().remove("gift_card_9920113");
        let broken = db.clone();
        let err = cancel(&mut db, "#R8800101", "no longer needed").unwrap_err();
        assert!(err.starts_with("Error: malformed data: "), "{err}");
        assert_eq!(db, broken);
        assert_ne!(db, before);
    }
}
