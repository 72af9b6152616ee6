//! `list_all_product_types`: every product name with its product id.

use serde_json::{json, Map, Value};

use crate::env::lookup::{field, field_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

/// Returns `{name: product_id}` sorted by name (a later product with the same name wins, as in
/// a Python dict comprehension). Errors only on malformed data (a product without a string
/// `name` or without `product_id`).
pub const TOOL: Tool = Tool {
    name: "list_all_product_types",
    kind: ToolKind::Read,
    description: "List every product type the store sells, as a map from product name to product id.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({"type": "object", "properties": {}, "required": []})
}

fn run(db: &mut Db, _args: &Args) -> ToolResult {
    let mut by_name: Map<String, Value> = Map::new();
    for (key, product) in table(db, "products")? {
        let what = format!("product {key}");
        let name = field_str(product, "name", &what)?;
        by_name.insert(name.to_string(), field(product, "product_id", &what)?.clone());
    }
    // Python sorts str keys by code point, which is the byte order of UTF-8.
    by_name.sort_keys();
    Ok(dumps(&Value::Object(by_name)))
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{call, db};
    use serde_json::json;

    #[test]
    fn lists_names_sorted() {
        let mut db = db();
        assert_eq!(
            call(&mut db, "list_all_product_types", json!({})).unwrap(),
            r#"{"Caf\u00e9 Grinder": "5201000004", "Desk Lamp": "5201000002", "Trail Kettle": "5201000001", "Yoga Mat": "5201000003"}"#
        );
        db.get_mut("products").unwrap()["5201000003"].as_object_mut().unwrap().remove("name");
        let err = call(&mut db, "list_all_product_types", json!({})).unwrap_err();
        assert_eq!(err, "Error: malformed data: product 5201000003 has no 'name'");
    }
}
