//! The domain-data sampler: one user's records and the ids a task about them may use.
//!
//! The environment describes where to look ([`Subjects`]): the table of the people tasks are
//! about, their own records, and the catalogue entries those records touch. The records go into
//! the prompt so the generator can write a task that hinges on real prices, dates and statuses.
//! The ids go into the output schema as enums, so that even a small model can only name things
//! that exist and belong to this user.

use anyhow::{bail, Context as _};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::env::subjects::{Catalogue, Take};
use crate::env::{Db, Environment, Subjects};

/// One user's slice of the database.
#[derive(Debug, Clone, Serialize)]
pub struct UserData {
    pub user_id: String,
    /// The user's record, then the catalogue entries their records touch (if the environment
    /// has a catalogue), then their records, each keyed by table.
    pub records: Value,
    pub ids: Ids,
}

/// The values the output schema allows for each id-typed argument.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ids {
    sets: Vec<IdSet>,
}

/// The values some arguments may take.
#[derive(Debug, Clone, Serialize)]
struct IdSet {
    args: Vec<String>,
    values: Vec<String>,
}

impl Ids {
    /// The values allowed for an argument called `arg`; empty when it is not id-typed.
    pub fn get(&self, arg: &str) -> &[String] {
        self.sets.iter().find(|s| s.args.iter().any(|a| a == arg)).map(|s| &s.values[..]).unwrap_or(&[])
    }

    fn push(&mut self, args: &[String], values: Vec<String>) {
        self.sets.push(IdSet { args: args.to_vec(), values });
    }
}

/// Samples a user who has at least one record (an order, a reservation) and collects their slice.
pub fn sample(env: &dyn Environment, db: &Db, seed: u64) -> anyhow::Result<UserData> {
    let spec: &Subjects = env.subjects();
    let list_key = spec.records.list.as_str();
    let users = db.get(&spec.table).and_then(Value::as_object).with_context(|| format!("the database has no {} table", spec.table))?;
    let candidates: Vec<&String> =
        users.iter().filter(|(_, u)| u.get(list_key).and_then(Value::as_array).is_some_and(|l| !l.is_empty())).map(|(id, _)| id).collect();
    if candidates.is_empty() {
        bail!("no {} record in the database has any {list_key}", spec.table);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let user_id = candidates[rng.random_range(0..candidates.len())].clone();
    let user = &users[&user_id];

    let mut ids = Ids::default();
    ids.push(&spec.id_args, vec![user_id.clone()]);
    for field in &spec.fields {
        let at = user.pointer(&field.pointer);
        let values = match field.take {
            Take::Value => at.and_then(Value::as_str).map(|s| vec![s.to_string()]).unwrap_or_default(),
            Take::Keys => at.and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default(),
        };
        ids.push(&field.args, values);
    }
    let table = db.get(&spec.records.table).and_then(Value::as_object);
    let mut owned = Map::new();
    let mut record_ids = Vec::new();
    for id in user[list_key].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if let Some(record) = table.and_then(|t| t.get(id)) {
            record_ids.push(id.to_string());
            owned.insert(id.to_string(), record.clone());
        }
    }
    ids.push(&spec.records.id_args, record_ids);
    let mut records = Map::new();
    records.insert(spec.table.clone(), Value::Object(Map::from_iter([(user_id.clone(), user.clone())])));
    if let Some(catalogue) = &spec.catalogue {
        records.insert(catalogue.table.clone(), Value::Object(touched(db, catalogue, &owned, &mut ids)));
    }
    records.insert(spec.records.table.clone(), Value::Object(owned));
    Ok(UserData { user_id, records: Value::Object(records), ids })
}

/// The catalogue entries that `records` point to, cut down to the options a task can use (the
/// held ones and a few offered ones), and the ids of both.
fn touched(db: &Db, c: &Catalogue, records: &Map<String, Value>, ids: &mut Ids) -> Map<String, Value> {
    let entries = db.get(&c.table).and_then(Value::as_object);
    let lines: Vec<&Value> = records.values().filter_map(|r| r.get(&c.lines)?.as_array()).flatten().collect();
    let mut held: Vec<String> = Vec::new();
    for line in &lines {
        if let Some(option) = line.get(&c.option).and_then(Value::as_str) {
            if !held.iter().any(|i| i == option) {
                held.push(option.to_string());
            }
        }
    }
    let mut offered: Vec<String> = Vec::new();
    let mut touched = Map::new();
    for line in lines {
        let Some(id) = line.get(&c.entry).and_then(Value::as_str) else { continue };
        let Some(entry) = entries.and_then(|e| e.get(id)) else { continue };
        if touched.contains_key(id) {
            continue;
        }
        let mut kept = Map::new();
        let mut on_offer = 0;
        for (option_id, option) in entry.get(&c.options).and_then(Value::as_object).into_iter().flatten() {
            let own = held.contains(option_id);
            let offer = option.get(&c.offer_flag) == Some(&Value::Bool(true)) && on_offer < c.offered;
            if offer {
                on_offer += 1;
                offered.push(option_id.clone());
            }
            if own || offer {
                kept.insert(option_id.clone(), option.clone());
            }
        }
        let mut cut = Map::new();
        for key in &c.keep {
            cut.insert(key.clone(), entry.get(key).cloned().unwrap_or(Value::Null));
        }
        cut.insert(c.entry.clone(), Value::String(id.to_string()));
        cut.insert(c.options.clone(), Value::Object(kept));
        touched.insert(id.to_string(), Value::Object(cut));
    }
    ids.push(&c.held_args, held);
    ids.push(&c.offered_args, offered);
    touched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::generate::generate;
    use crate::env::resolve;

    #[test]
    fn retail_slice_belongs_to_one_user() {
        let db = generate("retail", 3).unwrap();
        let data = sample(resolve("retail").unwrap(), &db, 11).unwrap();
        assert_eq!(data.user_id, sample(resolve("retail").unwrap(), &db, 11).unwrap().user_id);
        assert_eq!(data.ids.get("email"), vec![db["users"][&data.user_id]["email"].as_str().unwrap().to_string()]);
        assert!(
            !data.ids.get("order_id").is_empty() && !data.ids.get("item_ids").is_empty() && !data.ids.get("payment_method_id").is_empty()
        );
        for oid in data.ids.get("order_id") {
            assert_eq!(db["orders"][oid]["user_id"], data.user_id.as_str());
        }
        for vid in data.ids.get("new_item_ids") {
            let found = data.records["products"].as_object().unwrap().values().any(|p| p["variants"][vid]["available"] == true);
            assert!(found, "{vid} is not an available variant of a touched product");
        }
    }

    #[test]
    fn airline_slice_has_reservations_and_bad_input_is_an_error() {
        let db = generate("airline", 5).unwrap();
        let data = sample(resolve("airline").unwrap(), &db, 2).unwrap();
        for rid in data.ids.get("reservation_id") {
            assert_eq!(db["reservations"][rid]["user_id"], data.user_id.as_str());
        }
        assert!(sample(resolve("airline").unwrap(), &Db::new(), 2).unwrap_err().to_string().contains("no users table"));
    }
}
