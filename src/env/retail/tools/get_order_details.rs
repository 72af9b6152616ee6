//! `get_order_details`: one order as JSON.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

/// Errors: `Error: order not found`.
pub const TOOL: Tool = Tool {
    name: "get_order_details",
    kind: ToolKind::Read,
    description: "Look up one order: its status, items with prices and options, shipping address, \
                  fulfillment tracking and payment history.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": super::ORDER_ID_HELP}
        },
        "required": ["order_id"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let order_id = arg_str(args, "order_id")?;
    match table(db, "orders")?.get(order_id) {
        Some(order) => Ok(dumps(order)),
        None => Err("Error: order not found".into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{at, call, db};
    use serde_json::json;

    #[test]
    fn returns_the_order_or_not_found() {
        let mut db = db();
        let out = call(&mut db, "get_order_details", json!({"order_id": "#R8800103"})).unwrap();
        assert!(out.starts_with(r##"{"order_id": "#R8800103", "user_id": "mira_okafor_1187", "##), "{out}");
        assert!(out.contains(r#""name": "Caf\u00e9 Grinder""#), "{out}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), at(&db, "/orders/#R8800103"));
        assert_eq!(call(&mut db, "get_order_details", json!({"order_id": "R8800103"})).unwrap_err(), "Error: order not found");
    }
}
