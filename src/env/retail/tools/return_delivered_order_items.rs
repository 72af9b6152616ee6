//! `return_delivered_order_items`: request a return of delivered items.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, arg_str_list, field, field_array, field_obj, object_mut};
use crate::env::retail::records::{describe_order, first_missing_item, has_status, order, owner, store};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

/// Sets the status to `return requested` and records `return_items` (sorted) and
/// `return_payment_method_id`. Returns the order.
///
/// Errors, in this order: `Error: order not found`,
/// `Error: non-delivered order cannot be returned`, `Error: payment method not found`,
/// `Error: payment method should be either the original payment method or a gift card`,
/// `Error: some item not found`.
pub const TOOL: Tool = Tool {
    name: "return_delivered_order_items",
    kind: ToolKind::Write,
    description: "Request a return of items from a delivered order; its status becomes 'return \
                  requested' and the customer is emailed instructions for sending the items back. A \
                  delivered order allows a single return or exchange. The refund goes to the original \
                  payment method or to a gift card. Before calling, explain the return and get a clear yes.",
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
                "description": "Item ids from the order to return, e.g. ['7101000001']. Repeat an id to return several identical items."
            },
            "payment_method_id": {
                "type": "string",
                "description": "Where the refund goes: the order's original payment method, or a gift card saved on the customer's profile."
            }
        },
        "required": ["order_id", "item_ids", "payment_method_id"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let order_id = arg_str(args, "order_id")?;
    let mut item_ids = arg_str_list(args, "item_ids")?;
    let method_id = arg_str(args, "payment_method_id")?;
    let what = describe_order(order_id);
    let mut order = order(db, order_id)?.clone();
    if !has_status(&order, "delivered", &what)? {
        return Err("Error: non-delivered order cannot be returned".into());
    }
    let (user_id, user) = owner(db, &order, &what)?;
    if !field_obj(user, "payment_methods", &format!("user {user_id}"))?.contains_key(method_id) {
        return Err("Error: payment method not found".into());
    }
    if !method_id.contains("gift_card") {
        let Some(first) = field_array(&order, "payment_history", &what)?.first() else {
            return Err(format!("Error: malformed data: {what} has an empty payment history"));
        };
        if field(first, "payment_method_id", &format!("the first payment of {what}"))?.as_str() != Some(method_id) {
            return Err("Error: payment method should be either the original payment method or a gift card".into());
        }
    }
    if first_missing_item(&order, &item_ids, &what)?.is_some() {
        return Err("Error: some item not found".into());
    }

    item_ids.sort();
    let record = object_mut(&mut order, &what)?;
    record.insert("status".into(), json!("return requested"));
    record.insert("return_items".into(), json!(item_ids));
    record.insert("return_payment_method_id".into(), json!(method_id));
    store(db, "orders", order_id, order.clone())?;
    Ok(dumps(&order))
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{at, call, db, db as fresh};
    use serde_json::json;

    fn ret(db: &mut crate::env::Db, order_id: &str, items: &[&str], method: &str) -> Result<String, String> {
        call(db, "return_delivered_order_items", json!({"order_id": order_id, "item_ids": items, "payment_method_id": method}))
    }

    #[test]
    fn records_the_return() {
        let mut db = db();
        let out = ret(&mut db, "#R8800102", &["7103000001", "7101000002", "7103000001"], "credit_card_4410021").unwrap();
        assert_eq!(at(&db, "/orders/#R8800102/status"), "return requested");
        assert!(
            out.ends_with(
                r#""return_items": ["7101000002", "7103000001", "7103000001"], "return_payment_method_id": "credit_card_4410021"}"#
            ),
            "{out}"
        );
        // A gift card of the customer is always allowed.
        let mut db2 = fresh();
        ret(&mut db2, "#R8800102", &["7101000002"], "gift_card_9920113").unwrap();
        assert_eq!(at(&db2, "/orders/#R8800102/return_payment_method_id"), "gift_card_9920113");
    }

    #[test]
    fn every_error_path() {
        let mut db = db();
        let before = db.clone();
        assert_eq!(ret(&mut db, "#R0", &[], "credit_card_4410021").unwrap_err(), "Error: order not found");
        assert_eq!(ret(&mut db, "#R8800101", &[], "credit_card_4410021").unwrap_err(), "Error: non-delivered order cannot be returned");
        assert_eq!(ret(&mut db, "#R8800102", &[], "paypal_3319054").unwrap_err(), "Error: payment method not found");
        assert_eq!(
            ret(&mut db, "#R8800203", &["7101000001"], "paypal_3319054").unwrap_err(),
            "Error: payment method should be either the original payment method or a gift card"
        );
        assert_eq!(
            ret(&mut db, "#R8800102", &["7101000002", "7101000002"], "credit_card_4410021").unwrap_err(),
            "Error: some item not found"
        );
        assert_eq!(db, before);
    }
}
