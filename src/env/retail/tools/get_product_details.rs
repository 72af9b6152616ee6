//! `get_product_details`: one product and all its variants as JSON.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

/// Errors: `Error: product not found`.
pub const TOOL: Tool = Tool {
    name: "get_product_details",
    kind: ToolKind::Read,
    description: "Look up a product type and every variant of it: item ids, options, prices and \
                  whether each is in stock.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "product_id": {
                "type": "string",
                "description": "The product type's id, e.g. '5201000001'. This is not an item id; \
                                list_all_product_types gives the ids."
            }
        },
        "required": ["product_id"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let product_id = arg_str(args, "product_id")?;
    match table(db, "products")?.get(product_id) {
        Some(product) => Ok(dumps(product)),
        None => Err("Error: product not found".into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{call, db};
    use serde_json::json;

    #[test]
    fn returns_the_product_or_not_found() {
        let mut db = db();
        let out = call(&mut db, "get_product_details", json!({"product_id": "5201000002"})).unwrap();
        assert!(out.starts_with(r#"{"name": "Desk Lamp", "product_id": "5201000002", "variants": {"7102000001": "#), "{out}");
        // Ints and floats print as Python prints them.
        assert!(out.contains(r#""price": 25}"#) && out.contains(r#""price": 22.0}"#), "{out}");
        let err = call(&mut db, "get_product_details", json!({"product_id": "7102000001"})).unwrap_err();
        assert_eq!(err, "Error: product not found");
    }
}
