//! Comparing databases: a canonical hash, and a readable diff between two states.
//!
//! The hash decides whether two runs ended in the same world; the diff is what a reviewer reads
//! to see what a trajectory changed.
//!
//! Canonical form (what the hash covers): the database as one JSON object keyed by table name,
//! written with every object's keys sorted by Unicode code point (equivalently by UTF-8 bytes),
//! no whitespace at all (separators `,` and `:`), strings escaped as Python's `json.dumps` does
//! with `ensure_ascii=True` (so the bytes are pure ASCII), integers in decimal, and floats as
//! Python's `repr` (`1.0`, `0.1`, `1e+16`). An int and a float that compare equal (`1`, `1.0`)
//! are different states, as they are to τ-bench. Key insertion order does not matter. The
//! hash is the lowercase hex SHA-256 of those bytes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Db;
use crate::pyjson::{dumps_with, DumpOptions};

/// The canonical JSON text of a database (see the module documentation).
pub fn canonical_json(db: &Db) -> String {
    let options = DumpOptions { ensure_ascii: true, indent: None, sort_keys: true, separators: Some((",".into(), ":".into())) };
    dumps_with(&Value::Object(db.clone()), &options)
}

/// SHA-256 of the canonical form, as 64 lowercase hex digits.
pub fn hash(db: &Db) -> String {
    let digest = Sha256::digest(canonical_json(db).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One change, in the style of a JSON Patch (RFC 6902) operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOp {
    /// `add`, `remove` or `replace` (owned only when read back from a file).
    pub op: std::borrow::Cow<'static, str>,
    /// JSON Pointer (RFC 6901) to the changed location.
    pub path: String,
    /// The new value, for `add` and `replace`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub value: Option<Value>,
    /// The value before the change, for `remove` and `replace`. Not part of RFC 6902; kept so
    /// that a reviewer sees `"pending"` → `"cancelled"` without opening the old database.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub old: Option<Value>,
}

/// A value that is present, `null` included (serde would read `null` as `None`, and a patch that
/// sets a field to `null` would then read back as one that sets nothing).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The changes that turn `before` into `after`, and nothing else.
///
/// Objects are compared key by key in sorted key order (so the diff is empty exactly when the
/// hashes agree); arrays are compared position by position, with added elements appended in
/// order and surplus elements removed from the end backwards, so the operations can be applied
/// one after another. A value whose type changes (including int ↔ float) is replaced whole.
pub fn diff(before: &Db, after: &Db) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    diff_objects(before, after, "", &mut ops);
    ops
}

fn diff_objects(before: &serde_json::Map<String, Value>, after: &serde_json::Map<String, Value>, path: &str, ops: &mut Vec<PatchOp>) {
    let mut keys: Vec<&String> = before.keys().chain(after.keys().filter(|k| !before.contains_key(*k))).collect();
    keys.sort();
    for key in keys {
        let child = format!("{path}/{}", escape_pointer(key));
        match (before.get(key), after.get(key)) {
            (Some(a), Some(b)) => diff_values(a, b, &child, ops),
            (Some(a), None) => ops.push(PatchOp { op: "remove".into(), path: child, value: None, old: Some(a.clone()) }),
            (None, Some(b)) => ops.push(PatchOp { op: "add".into(), path: child, value: Some(b.clone()), old: None }),
            (None, None) => {}
        }
    }
}

fn diff_values(a: &Value, b: &Value, path: &str, ops: &mut Vec<PatchOp>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => diff_objects(x, y, path, ops),
        (Value::Array(x), Value::Array(y)) => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff_values(u, v, &format!("{path}/{i}"), ops);
            }
            for (i, v) in y.iter().enumerate().skip(x.len()) {
                ops.push(PatchOp { op: "add".into(), path: format!("{path}/{i}"), value: Some(v.clone()), old: None });
            }
            for (i, u) in x.iter().enumerate().skip(y.len()).rev() {
                ops.push(PatchOp { op: "remove".into(), path: format!("{path}/{i}"), value: None, old: Some(u.clone()) });
            }
        }
        _ if same(a, b) => {}
        _ => ops.push(PatchOp { op: "replace".into(), path: path.to_string(), value: Some(b.clone()), old: Some(a.clone()) }),
    }
}

/// Equality as the canonical form sees it: `1` and `1.0` differ, as do `0.0` and `-0.0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.is_f64() == y.is_f64()
                && match (x.as_f64(), y.as_f64()) {
                    (Some(p), Some(q)) if x.is_f64() => p.to_bits() == q.to_bits(),
                    _ => x == y,
                }
        }
        _ => a == b,
    }
}

/// RFC 6901 escaping of one reference token.
fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db(v: Value) -> Db {
        v.as_object().cloned().unwrap_or_default()
    }

    /// Applies a patch (test-only: the diff is for reading, but applying it back proves it
    /// complete and ordered correctly).
    fn apply(db: &mut Db, ops: &[PatchOp]) {
        let mut root = Value::Object(std::mem::take(db));
        for op in ops {
            let (parent, last) = op.path.rsplit_once('/').unwrap();
            let last = last.replace("~1", "/").replace("~0", "~");
            let target = if parent.is_empty() { &mut root } else { root.pointer_mut(parent).unwrap() };
            match (op.op.as_ref(), target) {
                ("remove", Value::Object(m)) => {
                    m.shift_remove(&last);
                }
                ("remove", Value::Array(a)) => {
                    a.remove(last.parse::<usize>().unwrap());
                }
                (_, Value::Object(m)) => {
                    m.insert(last, op.value.clone().unwrap());
                }
                ("add", Value::Array(a)) => a.push(op.value.clone().unwrap()),
                (_, Value::Array(a)) => a[last.parse::<usize>().unwrap()] = op.value.clone().unwrap(),
                _ => panic!("bad path {}", op.path),
            }
        }
        *db = root.as_object().cloned().unwrap();
    }

    #[test]
    fn hash_ignores_key_order_but_not_int_versus_float() {
        let a = db(json!({"users": {"u1": {"name": "Zoë", "balance": 10}}, "orders": {}}));
        let b = db(json!({"orders": {}, "users": {"u1": {"balance": 10, "name": "Zoë"}}}));
        let c = db(json!({"orders": {}, "users": {"u1": {"balance": 10.0, "name": "Zoë"}}}));
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&c));
        assert_eq!(canonical_json(&a), r#"{"orders":{},"users":{"u1":{"balance":10,"name":"Zo\u00eb"}}}"#);
        // Fixed literal (Python: sha256(json.dumps(a, sort_keys=True, separators=(",", ":")))).
        assert_eq!(hash(&a), "0bdf8d45032ad45f1c07f4f17106957627628def72286b2dd67ea54cff4063c6");
    }

    #[test]
    fn diff_lists_only_changes_in_a_fixed_order_and_applies_back() {
        let before = db(json!({
            "orders": {"#A/1": {"status": "pending", "history": [1, 2, 3], "n": 1}},
            "users": {"u~1": {"x": 1}}
        }));
        let after = db(json!({
            "users": {"u~1": {"x": 1}},
            "orders": {"#A/1": {"history": [1, 5], "status": "cancelled", "n": 1.0, "reason": "x"}}
        }));
        let ops = diff(&before, &after);
        let text: Vec<String> = ops.iter().map(|o| serde_json::to_string(o).unwrap()).collect();
        assert_eq!(
            text,
            [
                r#"{"op":"replace","path":"/orders/#A~11/history/1","value":5,"old":2}"#,
                r#"{"op":"remove","path":"/orders/#A~11/history/2","old":3}"#,
                r#"{"op":"replace","path":"/orders/#A~11/n","value":1.0,"old":1}"#,
                r#"{"op":"add","path":"/orders/#A~11/reason","value":"x"}"#,
                r#"{"op":"replace","path":"/orders/#A~11/status","value":"cancelled","old":"pending"}"#,
            ]
        );
        let mut patched = before.clone();
        apply(&mut patched, &ops);
        assert_eq!(hash(&patched), hash(&after));
        assert!(diff(&after, &after).is_empty());
    }
}
