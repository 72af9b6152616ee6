//! The domain-data sampler: one user's records and the ids a task about them may use.
//!
//! The records (the user, their orders or reservations, the catalogue entries those orders
//! touch) go into the prompt so the generator can write a task that hinges on real prices,
//! dates and statuses. The ids go into the output schema as enums, so that even a small model
//! can only name things that exist and belong to this user.

use anyhow::{bail, Context as _};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::env::Db;

/// One user's slice of the database.
#[derive(Debug, Clone, Serialize)]
pub struct UserData {
    pub user_id: String,
    /// `{"users": {id: ..}, "orders": {..}, "products": {..}}` (or reservations for airline).
    pub records: Value,
    pub ids: Ids,
}

/// The values the output schema allows for each id-typed argument.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ids {
    pub user_id: Vec<String>,
    /// What identifies the user: their email and name (retail looks users up by these).
    pub email: Vec<String>,
    pub first_name: Vec<String>,
    pub last_name: Vec<String>,
    /// Order or reservation ids of this user.
    pub record_ids: Vec<String>,
    /// Item ids in this user's orders.
    pub item_ids: Vec<String>,
    /// Available variants of the products this user's orders touch.
    pub new_item_ids: Vec<String>,
    pub payment_ids: Vec<String>,
}

/// Samples a user who has at least one order (reservation) and collects their records.
pub fn sample(domain: &str, db: &Db, seed: u64) -> anyhow::Result<UserData> {
    let (records_table, list_key) = match domain {
        "retail" => ("orders", "orders"),
        "airline" => ("reservations", "reservations"),
        other => bail!("no data sampler for domain '{other}' (known: retail, airline)"),
    };
    let users = db.get("users").and_then(Value::as_object).context("the database has no users table")?;
    let candidates: Vec<&String> = users
        .iter()
        .filter(|(_, u)| u.get(list_key).and_then(Value::as_array).is_some_and(|l| !l.is_empty()))
        .map(|(id, _)| id)
        .collect();
    if candidates.is_empty() {
        bail!("no user in the database has any {list_key}");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let user_id = candidates[rng.random_range(0..candidates.len())].clone();
    let user = &users[&user_id];

    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(|s| vec![s.to_string()]).unwrap_or_default();
    let mut ids = Ids {
        user_id: vec![user_id.clone()],
        email: text(user.get("email")),
        first_name: text(user.pointer("/name/first_name")),
        last_name: text(user.pointer("/name/last_name")),
        ..Ids::default()
    };
    if let Some(methods) = user.get("payment_methods").and_then(Value::as_object) {
        ids.payment_ids = methods.keys().cloned().collect();
    }
    let table = db.get(records_table).and_then(Value::as_object);
    let mut owned = Map::new();
    for id in user[list_key].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if let Some(record) = table.and_then(|t| t.get(id)) {
            ids.record_ids.push(id.to_string());
            owned.insert(id.to_string(), record.clone());
        }
    }
    let mut records = Map::new();
    records.insert("users".into(), Value::Object(Map::from_iter([(user_id.clone(), user.clone())])));
    if domain == "retail" {
        records.insert("products".into(), Value::Object(touched_products(db, &owned, &mut ids)));
    }
    records.insert(records_table.into(), Value::Object(owned));
    Ok(UserData { user_id, records: Value::Object(records), ids })
}

/// Available variants shown (and allowed as new items) per product: enough for a real choice,
/// few enough to keep the prompt short for small models.
const VARIANTS_PER_PRODUCT: usize = 4;

/// The catalogue entries of the products in `orders`, cut down to the variants a task can use
/// (the ordered ones and a few available ones), and their item ids.
fn touched_products(db: &Db, orders: &Map<String, Value>, ids: &mut Ids) -> Map<String, Value> {
    let products = db.get("products").and_then(Value::as_object);
    let items: Vec<&Value> = orders.values().filter_map(|o| o.get("items")?.as_array()).flatten().collect();
    for item in &items {
        if let Some(item_id) = item.get("item_id").and_then(Value::as_str) {
            if !ids.item_ids.iter().any(|i| i == item_id) {
                ids.item_ids.push(item_id.to_string());
            }
        }
    }
    let mut touched = Map::new();
    for item in items {
        let Some(pid) = item.get("product_id").and_then(Value::as_str) else { continue };
        let Some(product) = products.and_then(|p| p.get(pid)) else { continue };
        if touched.contains_key(pid) {
            continue;
        }
        let mut kept = Map::new();
        let mut available = 0;
        for (vid, variant) in product.get("variants").and_then(Value::as_object).into_iter().flatten() {
            let owned = ids.item_ids.contains(vid);
            let offer = variant.get("available") == Some(&Value::Bool(true)) && available < VARIANTS_PER_PRODUCT;
            if offer {
                available += 1;
                ids.new_item_ids.push(vid.clone());
            }
            if owned || offer {
                kept.insert(vid.clone(), variant.clone());
            }
        }
        let name = product.get("name").cloned().unwrap_or(Value::Null);
        touched.insert(pid.to_string(), serde_json::json!({"name": name, "product_id": pid, "variants": kept}));
    }
    touched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::generate::generate;

    #[test]
    fn retail_slice_belongs_to_one_user() {
        let db = generate("retail", 3).unwrap();
        let data = sample("retail", &db, 11).unwrap();
        assert_eq!(data.user_id, sample("retail", &db, 11).unwrap().user_id);
        assert_eq!(data.ids.email, vec![db["users"][&data.user_id]["email"].as_str().unwrap().to_string()]);
        assert!(!data.ids.record_ids.is_empty() && !data.ids.item_ids.is_empty() && !data.ids.payment_ids.is_empty());
        for oid in &data.ids.record_ids {
            assert_eq!(db["orders"][oid]["user_id"], data.user_id.as_str());
        }
        for vid in &data.ids.new_item_ids {
            let found = data.records["products"].as_object().unwrap().values().any(|p| p["variants"][vid]["available"] == true);
            assert!(found, "{vid} is not an available variant of a touched product");
        }
    }

    #[test]
    fn airline_slice_has_reservations_and_bad_input_is_an_error() {
        let db = generate("airline", 5).unwrap();
        let data = sample("airline", &db, 2).unwrap();
        for rid in &data.ids.record_ids {
            assert_eq!(db["reservations"][rid]["user_id"], data.user_id.as_str());
        }
        assert!(sample("airline", &Db::new(), 2).unwrap_err().to_string().contains("no users table"));
        assert!(sample("bakery", &db, 2).is_err());
    }
}
