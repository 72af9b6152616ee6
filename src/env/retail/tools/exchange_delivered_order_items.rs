//! `exchange_delivered_order_items`: request an exchange of delivered items for other variants.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, arg_str_list, field_num, field_obj, object_mut};
use crate::env::retail::records::{describe_order, first_missing_item, has_status, is_gift_card, order, owner, price_difference, store};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

/// Sets the status to `exchange requested` and records `exchange_items` and
/// `exchange_new_items` (each sorted), `exchange_payment_method_id` and
/// `exchange_price_difference` (`round(difference, 2)`). No balance changes until the exchange
/// is carried out. Returns the order.
///
/// Errors, in this order: `Error: order not found`,
/// `Error: non-delivered order cannot be exchanged`, `Error: {item_id} not found`,
/// `Error: the number of items to be exchanged should match`,
/// `Error: new item {new_item_id} not found or available`, `Error: payment method not found`,
/// `Error: insufficient gift card balance to pay for the price difference`.
pub const TOOL: Tool = Tool {
    name: "exchange_delivered_order_items",
    kind: ToolKind::Write,
    description: "Request an exchange of items from a delivered order for other variants of the same \
                  product. A delivered order allows a single return or exchange, so collect every item \
                  first. The price difference is settled with the given payment method; a gift card \
                  must cover a higher price. Before calling, explain the exchange and get a clear yes.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": super::ORDER_ID_HELP},
            "item_ids": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Item ids from the order to send back, e.g. ['7101000001']. Repeat an id to exchange several identical items."
            },
            "new_item_ids": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The item ids wanted instead, position by position: the n-th must be a variant of the same product as the n-th returned item."
            },
            "payment_method_id": {"type": "string", "description": super::PAYMENT_METHOD_HELP}
        },
        "required": ["order_id", "item_ids", "new_item_ids", "payment_method_id"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let order_id = arg_str(args, "order_id")?;
    let mut item_ids = arg_str_list(args, "item_ids")?;
    let mut new_item_ids = arg_str_list(args, "new_item_ids")?;
    let method_id = arg_str(args, "payment_method_id")?;
    let what = describe_order(order_id);
    let mut order = order(db, order_id)?.clone();
    if !has_status(&order, "delivered", &what)? {
        return Err("Error: non-delivered order cannot be exchanged".into());
    }
    if let Some(missing) = first_missing_item(&order, &item_ids, &what)? {
        return Err(format!("Error: {missing} not found"));
    }
    if item_ids.len() != new_item_ids.len() {
        return Err("Error: the number of items to be exchanged should match".into());
    }
    let diff = price_difference(db, &order, &item_ids, &new_item_ids, &what)?.round2();

    let (user_id, user) = owner(db, &order, &what)?;
    let Some(method) = field_obj(user, "payment_methods", &format!("user {user_id}"))?.get(method_id) else {
        return Err("Error: payment method not found".into());
    };
    let method_what = format!("payment method {method_id}");
    if is_gift_card(method, &method_what)? && field_num(method, "balance", &method_what)?.lt(diff) {
        return Err("Error: insufficient gift card balance to pay for the price difference".into());
    }

    item_ids.sort();
    new_item_ids.sort();
    let record = object_mut(&mut order, &what)?;
    record.insert("status".into(), json!("exchange requested"));
    record.insert("exchange_items".into(), json!(item_ids));
    record.insert("exchange_new_items".into(), json!(new_item_ids));
    record.insert("exchange_payment_method_id".into(), json!(method_id));
    record.insert("exchange_price_difference".into(), diff.to_value()?);
    store(db, "orders", order_id, order.clone())?;
    Ok(dumps(&order))
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{at, call, db};
    use serde_json::json;

    fn exchange(db: &mut crate::env::Db, order_id: &str, old: &[&str], new: &[&str], method: &str) -> Result<String, String> {
        let kwargs = json!({"order_id": order_id, "item_ids": old, "new_item_ids": new, "payment_method_id": method});
        call(db, "exchange_delivered_order_items", kwargs)
    }

    #[test]
    fn records_the_request_with_sorted_ids_and_a_rounded_difference() {
        let mut db = db();
        let before = db.clone();
        let out = exchange(
            &mut db,
            "#R8800102",
            &["7103000001", "7101000002", "7103000001"],
            &["7103000002", "7101000001", "7103000001"],
            "gift_card_9920113",
        )
        .unwrap();
        // (31.7 - 28.1) + (34.5 - 41.25) + (28.1 - 28.1), then round(x, 2).
        assert!(out.ends_with(r#""status": "exchange requested", "payment_history": [{"transaction_type": "payment", "amount": 97.45, "payment_method_id": "credit_card_4410021"}], "exchange_items": ["7101000002", "7103000001", "7103000001"], "exchange_new_items": ["7101000001", "7103000001", "7103000002"], "exchange_payment_method_id": "gift_card_9920113", "exchange_price_difference": -3.15}"#), "{out}");
        // Nothing else moves: balances change only when the exchange is carried out.
        assert_eq!(at(&db, "/users"), at(&before, "/users"));
    }

    #[test]
    fn every_error_path() {
        let mut db = db();
        let before = db.clone();
        let err = |db: &mut _, id, old: &[&str], new: &[&str], m| exchange(db, id, old, new, m).unwrap_err();
        assert_eq!(err(&mut db, "#R0", &[], &[], "gift_card_9920113"), "Error: order not found");
        assert_eq!(err(&mut db, "#R8800101", &[], &[], "gift_card_9920113"), "Error: non-delivered order cannot be exchanged");
        assert_eq!(
            err(&mut db, "#R8800102", &["7101000002", "7101000002"], &["7101000001", "7101000001"], "gift_card_9920113"),
            "Error: 7101000002 not found"
        );
        assert_eq!(
            err(&mut db, "#R8800102", &["7101000002"], &["7101000001", "7101000001"], "gift_card_9920113"),
            "Error: the number of items to be exchanged should match"
        );
        assert_eq!(
            err(&mut db, "#R8800102", &["7101000002"], &["7101000003"], "gift_card_9920113"),
            "Error: new item 7101000003 not found or available"
        );
        assert_eq!(err(&mut db, "#R8800102", &["7101000002"], &["7101000001"], "paypal_3319054"), "Error: payment method not found");
        // Tomas's kettle (34.5) to the copper one (41.25) costs 6.75; his int balance is 5.
        assert_eq!(
            err(&mut db, "#R8800203", &["7101000001"], &["7101000002"], "gift_card_5521870"),
            "Error: insufficient gift card balance to pay for the price difference"
        );
        assert_eq!(db, before);
    }
}
