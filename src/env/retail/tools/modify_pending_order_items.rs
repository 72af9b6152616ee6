//! `modify_pending_order_items`: swap items of a pending order for other variants.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, arg_str_list, field, field_array_mut, field_mut, field_num, field_obj, object_mut};
use crate::env::retail::records::{
    available_variant, describe_order, first_item_index, first_missing_item, has_status, is_gift_card, order, owner, price_difference,
    store,
};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;
use crate::pynum::PyNum;

/// Appends one transaction for the total price difference (a `payment` when it is positive,
/// else a `refund`, of its absolute value), adjusts a gift card's balance by the difference
/// (then `round(balance, 2)`), replaces each item's id, price and options with the new
/// variant's, and sets the status to `pending (item modified)`. Items are matched the way
/// τ-bench matches them: each old id picks the first item that currently has that id. The
/// difference is not rounded, exactly as in τ-bench. Returns the order.
///
/// Errors, in this order: `Error: order not found`,
/// `Error: non-pending order cannot be modified`, `Error: {item_id} not found`,
/// `Error: the number of items to be exchanged should match`,
/// `Error: new item {new_item_id} not found or available`, `Error: payment method not found`,
/// `Error: insufficient gift card balance to pay for the new item`.
pub const TOOL: Tool = Tool {
    name: "modify_pending_order_items",
    kind: ToolKind::Write,
    description: "Replace items of a pending order with other variants of the same product (say, \
                  another color or size). This can be done only once per order, so collect every \
                  change first. The price difference is charged to, or refunded to, the given \
                  payment method; a gift card must cover a higher price. Before calling, explain the \
                  changes and get a clear yes.",
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
                "description": "Item ids currently in the order to replace, e.g. ['7101000001']. Repeat an id to replace several identical items."
            },
            "new_item_ids": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The replacement item ids, position by position: the n-th must be a variant of the same product as the n-th old item."
            },
            "payment_method_id": {"type": "string", "description": super::PAYMENT_METHOD_HELP}
        },
        "required": ["order_id", "item_ids", "new_item_ids", "payment_method_id"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let order_id = arg_str(args, "order_id")?;
    let item_ids = arg_str_list(args, "item_ids")?;
    let new_item_ids = arg_str_list(args, "new_item_ids")?;
    let method_id = arg_str(args, "payment_method_id")?;
    let what = describe_order(order_id);
    let mut order = order(db, order_id)?.clone();
    if !has_status(&order, "pending", &what)? {
        return Err("Error: non-pending order cannot be modified".into());
    }
    if let Some(missing) = first_missing_item(&order, &item_ids, &what)? {
        return Err(format!("Error: {missing} not found"));
    }
    if item_ids.len() != new_item_ids.len() {
        return Err("Error: the number of items to be exchanged should match".into());
    }
    let diff = price_difference(db, &order, &item_ids, &new_item_ids, &what)?;

    let (user_id, user) = owner(db, &order, &what)?;
    let user_what = format!("user {user_id}");
    let Some(method) = field_obj(user, "payment_methods", &user_what)?.get(method_id) else {
        return Err("Error: payment method not found".into());
    };
    let method_what = format!("payment method {method_id}");
    let gift_card = is_gift_card(method, &method_what)?;
    if gift_card && field_num(method, "balance", &method_what)?.lt(diff) {
        return Err("Error: insufficient gift card balance to pay for the new item".into());
    }

    let kind = if diff.gt(PyNum::Int(0)) { "payment" } else { "refund" };
    field_array_mut(&mut order, "payment_history", &what)?.push(json!({
        "transaction_type": kind,
        "amount": diff.checked_abs()?.to_value()?,
        "payment_method_id": method_id,
    }));
    let mut user = user.clone();
    if gift_card {
        let methods = field_mut(&mut user, "payment_methods", &user_what)?;
        let method = field_mut(methods, method_id, &user_what)?;
        let balance = field_num(method, "balance", &method_what)?.checked_sub(diff)?.round2();
        *field_mut(method, "balance", &method_what)? = balance.to_value()?;
    }
    replace_items(db, &mut order, &item_ids, &new_item_ids, &what)?;
    object_mut(&mut order, &what)?.insert("status".into(), json!("pending (item modified)"));

    store(db, "users", &user_id, user)?;
    store(db, "orders", order_id, order.clone())?;
    Ok(dumps(&order))
}

/// Gives each matched item the new variant's id, price and options, one pair at a time.
fn replace_items(db: &Db, order: &mut Value, item_ids: &[String], new_item_ids: &[String], what: &str) -> Result<(), String> {
    let items = field_array_mut(order, "items", what)?;
    for (item_id, new_item_id) in item_ids.iter().zip(new_item_ids) {
        let index = first_item_index(items, item_id, what)?;
        let variant = available_variant(db, &items[index], new_item_id, what)?
            .ok_or_else(|| format!("Error: new item {new_item_id} not found or available"))?;
        let variant_what = format!("variant {new_item_id}");
        let price = field(variant, "price", &variant_what)?.clone();
        let options = field(variant, "options", &variant_what)?.clone();
        let item = object_mut(&mut items[index], what)?;
        item.insert("item_id".into(), json!(new_item_id));
        item.insert("price".into(), price);
        item.insert("options".into(), options);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{at, call, db, db as fresh};
    use serde_json::json;

    fn modify(db: &mut crate::env::Db, order_id: &str, old: &[&str], new: &[&str], method: &str) -> Result<String, String> {
        let kwargs = json!({"order_id": order_id, "item_ids": old, "new_item_ids": new, "payment_method_id": method});
        call(db, "modify_pending_order_items", kwargs)
    }

    #[test]
    fn swaps_items_and_charges_the_difference() {
        let mut db = db();
        let out = modify(&mut db, "#R8800101", &["7101000001"], &["7101000002"], "gift_card_9920113").unwrap();
        assert_eq!(at(&db, "/orders/#R8800101/status"), "pending (item modified)");
        assert_eq!(
            at(&db, "/orders/#R8800101/items/0"),
            json!({"name": "Trail Kettle", "product_id": "5201000001", "item_id": "7101000002", "price": 41.25,
                   "options": {"capacity": "1.5L", "finish": "copper"}})
        );
        assert_eq!(
            at(&db, "/orders/#R8800101/payment_history/1"),
            json!({"transaction_type": "payment", "amount": 6.75, "payment_method_id": "gift_card_9920113"})
        );
        // round(40.1 - 6.75, 2)
        assert_eq!(at(&db, "/users/mira_okafor_1187/payment_methods/gift_card_9920113/balance"), json!(33.35));
        assert!(out.ends_with(r#""status": "pending (item modified)", "payment_history": [{"transaction_type": "payment", "amount": 56.5, "payment_method_id": "gift_card_9920113"}, {"transaction_type": "payment", "amount": 6.75, "payment_method_id": "gift_card_9920113"}]}"#), "{out}");
    }

    #[test]
    fn the_difference_is_not_rounded_and_a_negative_one_is_a_refund() {
        let mut db = db();
        // Two identical lamps at 19.99 become 22.0 and 25 (an int price): 2.01 + 5.01 in floats.
        modify(&mut db, "#R8800201", &["7102000003", "7102000003"], &["7102000001", "7102000002"], "paypal_3319054").unwrap();
        let amount = at(&db, "/orders/#R8800201/payment_history/1/amount");
        assert_eq!(amount, json!((22.0 - 19.99) + (25.0 - 19.99)));
        assert_eq!(at(&db, "/orders/#R8800201/items/1/price"), json!(25));
        // Going back down is a refund of the absolute difference.
        let mut db = fresh();
        modify(&mut db, "#R8800101", &["7102000001"], &["7102000003"], "credit_card_4410021").unwrap();
        assert_eq!(at(&db, "/orders/#R8800101/payment_history/1/transaction_type"), "refund");
        assert_eq!(at(&db, "/orders/#R8800101/payment_history/1/amount"), json!(22.0 - 19.99));
    }

    #[test]
    fn every_error_path() {
        let mut db = db();
        let before = db.clone();
        let err = |db: &mut _, id, old: &[&str], new: &[&str], m| modify(db, id, old, new, m).unwrap_err();
        assert_eq!(err(&mut db, "#R0", &[], &[], "paypal_3319054"), "Error: order not found");
        assert_eq!(err(&mut db, "#R8800102", &[], &[], "paypal_3319054"), "Error: non-pending order cannot be modified");
        assert_eq!(
            err(&mut db, "#R8800201", &["7103000002", "7103000002"], &["7103000001", "7103000001"], "paypal_3319054"),
            "Error: 7103000002 not found"
        );
        assert_eq!(
            err(&mut db, "#R8800201", &["7103000002"], &[], "paypal_3319054"),
            "Error: the number of items to be exchanged should match"
        );
        assert_eq!(
            err(&mut db, "#R8800201", &["7103000002"], &["7103000003"], "paypal_3319054"),
            "Error: new item 7103000003 not found or available"
        );
        assert_eq!(
            err(&mut db, "#R8800201", &["7103000002"], &["7101000001"], "paypal_3319054"),
            "Error: new item 7101000001 not found or available"
        );
        assert_eq!(err(&mut db, "#R8800201", &["7103000002"], &["7103000001"], "credit_card_4410021"), "Error: payment method not found");
        // 25 - 19.99 = 5.01 is more than the card's int balance of 5.
        assert_eq!(
            err(&mut db, "#R8800201", &["7102000003"], &["7102000002"], "gift_card_5521870"),
            "Error: insufficient gift card balance to pay for the new item"
        );
        assert_eq!(db, before);
    }
}
