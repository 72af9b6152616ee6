//! Fallible access to tool arguments and to the database, with error strings for the agent.
//!
//! τ-bench indexes its data with `data["orders"][order_id]["status"]` and lets a missing key
//! raise, which its environment turns into `Error: 'status'`. Our tools never panic: every
//! step of a lookup names what was missing or mistyped, so a corrupt database gives a readable
//! `Error: ...` observation instead of a crash.

use serde_json::{Map, Value};

use super::{Args, Db};
use crate::pynum::PyNum;

/// A string argument. The schema check has already run when tools are called through
/// [`super::Tool::call`]; this keeps a direct `(tool.run)(db, args)` call panic-free too.
pub fn arg_str<'a>(args: &'a Args, name: &str) -> Result<&'a str, String> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| format!("Error: argument '{name}' must be a string"))
}

/// A list-of-strings argument.
pub fn arg_str_list(args: &Args, name: &str) -> Result<Vec<String>, String> {
    let list = args.get(name).and_then(Value::as_array);
    let strings = list.map(|items| items.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>());
    strings.flatten().ok_or_else(|| format!("Error: argument '{name}' must be an array of strings"))
}

/// A top-level table of the database, such as `orders`.
pub fn table<'a>(db: &'a Db, name: &str) -> Result<&'a Map<String, Value>, String> {
    db.get(name).and_then(Value::as_object).ok_or_else(|| format!("Error: the database has no '{name}' table"))
}

/// The mutable form of [`table`].
pub fn table_mut<'a>(db: &'a mut Db, name: &str) -> Result<&'a mut Map<String, Value>, String> {
    db.get_mut(name).and_then(Value::as_object_mut).ok_or_else(|| format!("Error: the database has no '{name}' table"))
}

/// `value[key]` for an object, where `what` names the value in the error ("order #W1").
pub fn field<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a Value, String> {
    value.get(key).ok_or_else(|| missing(key, what))
}

/// The mutable form of [`field`].
pub fn field_mut<'a>(value: &'a mut Value, key: &str, what: &str) -> Result<&'a mut Value, String> {
    value.get_mut(key).ok_or_else(|| missing(key, what))
}

fn missing(key: &str, what: &str) -> String {
    format!("Error: malformed data: {what} has no '{key}'")
}

fn mistyped(key: &str, what: &str, want: &str) -> String {
    format!("Error: malformed data: '{key}' of {what} is not {want}")
}

/// A value that must be an object, to be changed key by key.
pub fn object_mut<'a>(value: &'a mut Value, what: &str) -> Result<&'a mut Map<String, Value>, String> {
    value.as_object_mut().ok_or_else(|| format!("Error: malformed data: {what} is not an object"))
}

pub fn field_str<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a str, String> {
    field(value, key, what)?.as_str().ok_or_else(|| mistyped(key, what, "a string"))
}

pub fn field_obj<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a Map<String, Value>, String> {
    field(value, key, what)?.as_object().ok_or_else(|| mistyped(key, what, "an object"))
}

pub fn field_array<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a Vec<Value>, String> {
    field(value, key, what)?.as_array().ok_or_else(|| mistyped(key, what, "an array"))
}

pub fn field_array_mut<'a>(value: &'a mut Value, key: &str, what: &str) -> Result<&'a mut Vec<Value>, String> {
    field_mut(value, key, what)?.as_array_mut().ok_or_else(|| mistyped(key, what, "an array"))
}

/// A number field, with Python's int/float distinction kept.
pub fn field_num(value: &Value, key: &str, what: &str) -> Result<PyNum, String> {
    PyNum::from_value(field(value, key, what)?).ok_or_else(|| mistyped(key, what, "a number"))
}

/// Python truthiness of a JSON value, for checks written as `if x["available"]:`.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups_name_what_is_missing() {
        let order = json!({"status": 3, "items": []});
        assert_eq!(field(&order, "x", "order #W1").unwrap_err(), "Error: malformed data: order #W1 has no 'x'");
        assert_eq!(field_str(&order, "status", "order #W1").unwrap_err(), "Error: malformed data: 'status' of order #W1 is not a string");
        assert!(field_array(&order, "items", "o").unwrap().is_empty());
        let db: Db = json!({"orders": []}).as_object().unwrap().clone();
        assert_eq!(table(&db, "orders").unwrap_err(), "Error: the database has no 'orders' table");
        let args: Args = json!({"a": "x", "b": ["1", 2]}).as_object().unwrap().clone();
        assert_eq!(arg_str(&args, "a").unwrap(), "x");
        assert!(arg_str(&args, "b").is_err());
        assert!(arg_str_list(&args, "b").is_err());
    }

    #[test]
    fn truthiness_follows_python() {
        for (v, want) in [
            (json!(null), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(2), true),
            (json!(""), false),
            (json!("no"), true),
            (json!([]), false),
            (json!({"a": 1}), true),
            (json!(true), true),
        ] {
            assert_eq!(truthy(&v), want, "{v}");
        }
    }
}
