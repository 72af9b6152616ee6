//! `modify_pending_order_address`: change where a pending order ships.

use serde_json::Value;

use crate::env::lookup::{arg_str, object_mut};
use crate::env::retail::records::{describe_order, has_status, order, store};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

/// Replaces the order's `address` (in place among its keys) and returns the order as JSON.
///
/// Errors: `Error: order not found`, `Error: non-pending order cannot be modified`.
pub const TOOL: Tool = Tool {
    name: "modify_pending_order_address",
    kind: ToolKind::Write,
    description: "Change the shipping address of an order whose status is 'pending'. Before \
                  calling, read the new address back to the customer and get a clear yes.",
    parameters,
    run,
};

fn parameters() -> Value {
    super::address_schema(("order_id", super::ORDER_ID_HELP))
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let order_id = arg_str(args, "order_id")?;
    let what = describe_order(order_id);
    let mut order = order(db, order_id)?.clone();
    if !has_status(&order, "pending", &what)? {
        return Err("Error: non-pending order cannot be modified".into());
    }
    let address = super::address_from_args(args)?;
    object_mut(&mut order, &what)?.insert("address".into(), address);
    store(db, "orders", order_id, order.clone())?;
    Ok(dumps(&order))
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{at, call, db};
    use serde_json::json;

    fn kwargs(order_id: &str) -> serde_json::Value {
        json!({"order_id": order_id, "address1": "5 Pier Rd", "address2": "", "city": "Salem",
               "state": "MA", "country": "USA", "zip": "01970"})
    }

    #[test]
    fn replaces_the_address_in_place() {
        let mut db = db();
        let out = call(&mut db, "modify_pending_order_address", kwargs("#R8800201")).unwrap();
        let want = json!({"address1": "5 Pier Rd", "address2": "", "city": "Salem", "state": "MA", "country": "USA", "zip": "01970"});
        assert_eq!(at(&db, "/orders/#R8800201/address"), want);
        assert!(out.starts_with(r##"{"order_id": "#R8800201", "user_id": "tomas_lindqvist_5520", "address": {"address1": "5 Pier Rd", "address2": "", "city": "Salem", "state": "MA", "country": "USA", "zip": "01970"}, "items": "##), "{out}");
    }

    #[test]
    fn only_pending_orders_change() {
        let mut db = db();
        let before = db.clone();
        assert_eq!(call(&mut db, "modify_pending_order_address", kwargs("#R1")).unwrap_err(), "Error: order not found");
        assert_eq!(
            call(&mut db, "modify_pending_order_address", kwargs("#R8800102")).unwrap_err(),
            "Error: non-pending order cannot be modified"
        );
        assert_eq!(db, before);
    }
}
