//! Lookups and checks that several retail tools share, each phrased like τ-bench's.
//!
//! Write tools work on a copy of the records they change and store it back only when every
//! step succeeded, so a failure (even one caused by malformed data) never leaves a half-done
//! change behind. τ-bench mutates in place and can leave partial changes when it raises; for
//! well-formed data the two are the same.

use serde_json::Value;

use crate::env::lookup::{field, field_array, field_num, field_obj, field_str, table, table_mut, truthy};
use crate::env::Db;
use crate::pynum::PyNum;

/// The order with this id, or τ-bench's `Error: order not found`.
pub fn order<'a>(db: &'a Db, order_id: &str) -> Result<&'a Value, String> {
    table(db, "orders")?.get(order_id).ok_or_else(|| "Error: order not found".to_string())
}

/// Replaces a stored record in place (its position among the keys is kept).
pub fn store(db: &mut Db, table_name: &str, id: &str, record: Value) -> Result<(), String> {
    let slot = table_mut(db, table_name)?.get_mut(id).ok_or_else(|| format!("Error: malformed data: {table_name} has no '{id}'"))?;
    *slot = record;
    Ok(())
}

/// Whether `order["status"] == wanted`; a status of any other type is simply not equal.
pub fn has_status(order: &Value, wanted: &str, what: &str) -> Result<bool, String> {
    Ok(field(order, "status", what)?.as_str() == Some(wanted))
}

/// The owner of an order, with the user's record.
pub fn owner<'a>(db: &'a Db, order: &Value, what: &str) -> Result<(String, &'a Value), String> {
    let user_id = field_str(order, "user_id", what)?;
    let user =
        table(db, "users")?.get(user_id).ok_or_else(|| format!("Error: malformed data: {what} belongs to unknown user '{user_id}'"))?;
    Ok((user_id.to_string(), user))
}

/// Whether every requested id occurs in the order at least as often as it is requested
/// (the lists may hold duplicates); returns the first id that does not.
pub fn first_missing_item(order: &Value, item_ids: &[String], what: &str) -> Result<Option<String>, String> {
    let mut in_order = Vec::new();
    for item in field_array(order, "items", what)? {
        in_order.push(field(item, "item_id", &format!("an item of {what}"))?);
    }
    let count_in_order = |id: &str| in_order.iter().filter(|v| v.as_str() == Some(id)).count();
    let count_requested = |id: &str| item_ids.iter().filter(|v| *v == id).count();
    Ok(item_ids.iter().find(|id| count_requested(id.as_str()) > count_in_order(id.as_str())).cloned())
}

/// The index of the first item of the order with this item id (Python's
/// `[item for item in order["items"] if item["item_id"] == item_id][0]`).
pub fn first_item_index(items: &[Value], item_id: &str, what: &str) -> Result<usize, String> {
    for (i, item) in items.iter().enumerate() {
        if field(item, "item_id", &format!("an item of {what}"))?.as_str() == Some(item_id) {
            return Ok(i);
        }
    }
    Err(format!("Error: malformed data: {what} has no item '{item_id}'"))
}

/// The variant `new_item_id` of the item's product, if it exists and is available.
pub fn available_variant<'a>(db: &'a Db, item: &Value, new_item_id: &str, what: &str) -> Result<Option<&'a Value>, String> {
    let product_id = field_str(item, "product_id", &format!("an item of {what}"))?;
    let product =
        table(db, "products")?.get(product_id).ok_or_else(|| format!("Error: malformed data: unknown product '{product_id}' in {what}"))?;
    let variants = field_obj(product, "variants", &format!("product {product_id}"))?;
    match variants.get(new_item_id) {
        Some(variant) if truthy(field(variant, "available", &format!("variant {new_item_id}"))?) => Ok(Some(variant)),
        _ => Ok(None),
    }
}

/// Sum over the pairs of (new variant's price − old item's price), in order, starting from
/// the int `0` as τ-bench does; or τ-bench's error for the first unavailable new item.
pub fn price_difference(db: &Db, order: &Value, item_ids: &[String], new_item_ids: &[String], what: &str) -> Result<PyNum, String> {
    let items = field_array(order, "items", what)?;
    let mut diff = PyNum::Int(0);
    for (item_id, new_item_id) in item_ids.iter().zip(new_item_ids) {
        let item = &items[first_item_index(items, item_id, what)?];
        let Some(variant) = available_variant(db, item, new_item_id, what)? else {
            return Err(format!("Error: new item {new_item_id} not found or available"));
        };
        let new_price = field_num(variant, "price", &format!("variant {new_item_id}"))?;
        let old_price = field_num(item, "price", &format!("item {item_id} of {what}"))?;
        diff = diff.checked_add(new_price.checked_sub(old_price)?)?;
    }
    Ok(diff)
}

/// Whether `payment_method["source"] == "gift_card"`.
pub fn is_gift_card(method: &Value, what: &str) -> Result<bool, String> {
    Ok(field(method, "source", what)?.as_str() == Some("gift_card"))
}

/// The description used in error messages for an order.
pub fn describe_order(order_id: &str) -> String {
    format!("order {order_id}")
}

#[cfg(test)]
pub mod fixture {
    //! Small retail data of our own (tests/fixtures/retail), for the tools' unit tests.

    use serde_json::{Map, Value};

    use crate::env::{Args, Db};

    pub fn db() -> Db {
        let table = |text: &str| -> Value { serde_json::from_str(text).expect("fixture is valid JSON") };
        let mut db = Map::new();
        db.insert("orders".into(), table(include_str!("../../../tests/fixtures/retail/orders.json")));
        db.insert("products".into(), table(include_str!("../../../tests/fixtures/retail/products.json")));
        db.insert("users".into(), table(include_str!("../../../tests/fixtures/retail/users.json")));
        db
    }

    pub fn args(value: Value) -> Args {
        value.as_object().cloned().unwrap_or_default()
    }

    /// Runs a tool by name through its schema check, on the given data.
    pub fn call(db: &mut Db, name: &str, kwargs: Value) -> Result<String, String> {
        let retail = crate::env::domain("retail").expect("retail is registered");
        let tool = retail.tool(name).unwrap_or_else(|| panic!("no tool {name}"));
        tool.call(db, &args(kwargs))
    }

    /// The value at a JSON pointer inside the database.
    pub fn at(db: &Db, pointer: &str) -> Value {
        Value::Object(db.clone()).pointer(pointer).cloned().unwrap_or(Value::Null)
    }
}
