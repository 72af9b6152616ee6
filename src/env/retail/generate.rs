//! The retail world: a catalogue of products and variants, users with addresses and payment
//! methods, and orders in every status the retail tools can produce.
//!
//! Orders in the derived statuses ("pending (item modified)", "return requested", "exchange
//! requested", "cancelled") carry exactly the fields and payment entries the corresponding
//! tool would have written, so a generated world looks like one in which those tools already
//! ran: the net of every order's payments equals its items' total (zero for a cancelled order).

use rand::seq::index;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::catalog::{ProductType, PRODUCT_TYPES};
use crate::env::generate::words::{self, pick};
use crate::env::generate::{digits, dollars, Ids};
use crate::env::Db;

pub const USERS: usize = 500;
pub const ORDERS: usize = 1000;

/// Every order status, with the share of orders generated in it (in percent).
pub const STATUSES: &[(&str, u32)] = &[
    ("pending", 30),
    ("processed", 12),
    ("delivered", 28),
    ("cancelled", 10),
    ("pending (item modified)", 7),
    ("return requested", 7),
    ("exchange requested", 6),
];

/// The reasons the cancel tool accepts.
const CANCEL_REASONS: &[&str] = &["no longer needed", "ordered by mistake"];
const CARD_BRANDS: &[&str] = &["visa", "mastercard", "amex", "discover"];

/// One purchasable variant, kept in Rust form while orders are assembled.
struct Variant {
    product_id: String,
    item_id: String,
    name: &'static str,
    options: Value,
    price: i64,
    available: bool,
}

struct User {
    id: String,
    address: Value,
    payment_ids: Vec<String>,
    orders: Vec<String>,
}

/// A fresh world; the same generator state gives the same bytes.
pub(super) fn generate(rng: &mut ChaCha8Rng) -> Db {
    let mut ids = Ids::default();
    let catalogue: Vec<Vec<Variant>> = PRODUCT_TYPES.iter().map(|t| variants(rng, &mut ids, t)).collect();
    let (mut users, mut user_json) = users(rng, &mut ids);
    let mut orders = Map::new();
    for _ in 0..ORDERS {
        let user = rng.random_range(0..users.len());
        let (order_id, order) = order(rng, &mut ids, &catalogue, &users[user]);
        users[user].orders.push(order_id.clone());
        orders.insert(order_id, order);
    }
    for user in &users {
        if let Some(u) = user_json.get_mut(&user.id) {
            u["orders"] = json!(user.orders);
        }
    }
    let mut products = Map::new();
    for (t, vs) in PRODUCT_TYPES.iter().zip(&catalogue) {
        let product_id = vs[0].product_id.clone();
        let variants: Map<String, Value> = vs
            .iter()
            .map(|v| {
                let body = json!({"item_id": v.item_id, "options": v.options, "available": v.available, "price": dollars(v.price)});
                (v.item_id.clone(), body)
            })
            .collect();
        products.insert(product_id.clone(), json!({"name": t.name, "product_id": product_id, "variants": variants}));
    }
    let mut db = Db::new();
    db.insert("orders".into(), Value::Object(orders));
    db.insert("products".into(), Value::Object(products));
    db.insert("users".into(), Value::Object(std::mem::take(&mut user_json)));
    db
}

/// Eight to sixteen distinct option combinations of one product type, priced around a base
/// price with a step for premium option values and a little noise.
fn variants(rng: &mut ChaCha8Rng, ids: &mut Ids, t: &ProductType) -> Vec<Variant> {
    let product_id = ids.fresh(rng, |r| digits(r, 10));
    let combos: usize = t.options.iter().map(|(_, values)| values.len()).product();
    let count = rng.random_range(8..=16).min(combos);
    let base = i64::from(rng.random_range(t.price.0..=t.price.1)) * 100;
    index::sample(rng, combos, count)
        .into_iter()
        .map(|combo| {
            let mut options = Map::new();
            let mut rest = combo;
            let mut premium = 0.0;
            for (axis, values) in t.options {
                let i = rest % values.len();
                rest /= values.len();
                options.insert(axis.to_string(), json!(values[i]));
                premium += 0.12 * i as f64 / values.len().max(2).saturating_sub(1) as f64;
            }
            let noise = rng.random_range(-0.06..0.06);
            Variant {
                product_id: product_id.clone(),
                item_id: ids.fresh(rng, |r| digits(r, 10)),
                name: t.name,
                options: Value::Object(options),
                price: (base as f64 * (1.0 + premium + noise)).round().max(100.0) as i64,
                available: rng.random_bool(0.7),
            }
        })
        .collect()
}

fn users(rng: &mut ChaCha8Rng, ids: &mut Ids) -> (Vec<User>, Map<String, Value>) {
    let mut users = Vec::with_capacity(USERS);
    let mut json_users = Map::new();
    for _ in 0..USERS {
        let who = words::person(rng);
        let stem = format!("{}_{}", who.first.to_lowercase(), who.last.to_lowercase());
        let id = ids.fresh(rng, |r| format!("{stem}_{}", r.random_range(1000..10000)));
        let address = words::address(rng);
        let methods = payment_methods(rng, ids);
        let payment_ids = methods.keys().cloned().collect();
        json_users.insert(
            id.clone(),
            json!({
                "name": {"first_name": who.first, "last_name": who.last},
                "address": address.clone(),
                "email": words::email(rng, &who),
                "payment_methods": methods,
                "orders": [],
            }),
        );
        users.push(User { id, address, payment_ids, orders: Vec::new() });
    }
    (users, json_users)
}

/// One to three payment methods: PayPal (at most one), credit cards, gift cards with a balance.
fn payment_methods(rng: &mut ChaCha8Rng, ids: &mut Ids) -> Map<String, Value> {
    let n = match rng.random_range(0..20) {
        0..=10 => 1,
        11..=17 => 2,
        _ => 3,
    };
    let mut methods = Map::new();
    while methods.len() < n {
        let kind = pick(rng, &["paypal", "credit_card", "gift_card"]);
        if kind == "paypal" && methods.values().any(|m| m["source"] == "paypal") {
            continue;
        }
        let id = ids.fresh(rng, |r| format!("{kind}_{}", digits(r, 7)));
        let method = match kind {
            "paypal" => json!({"source": "paypal", "id": id}),
            "credit_card" => json!({
                "source": "credit_card",
                "brand": pick(rng, CARD_BRANDS),
                "last_four": format!("{:04}", rng.random_range(0..10000)),
                "id": id,
            }),
            _ => json!({"source": "gift_card", "balance": dollars(rng.random_range(0..30000)), "id": id}),
        };
        methods.insert(id, method);
    }
    methods
}

/// One order of `user`, with its id.
fn order(rng: &mut ChaCha8Rng, ids: &mut Ids, catalogue: &[Vec<Variant>], user: &User) -> (String, Value) {
    let order_id = ids.fresh(rng, |r| format!("#W{}", digits(r, 7)));
    // Most orders ship to the user's current address; the rest to an older one.
    let address = if rng.random_bool(0.8) { user.address.clone() } else { words::address(rng) };
    let mut items: Vec<&Variant> = (0..rng.random_range(1..=5))
        .map(|_| {
            let product = &catalogue[rng.random_range(0..catalogue.len())];
            &product[rng.random_range(0..product.len())]
        })
        .collect();
    let total: i64 = items.iter().map(|v| v.price).sum();
    let payer = pick_id(rng, &user.payment_ids);
    let mut payments = vec![payment("payment", total, &payer)];
    let status = weighted_status(rng);
    let mut extra = Map::new();
    match status {
        "cancelled" => {
            payments.push(payment("refund", total, &payer));
            extra.insert("cancel_reason".into(), json!(pick(rng, CANCEL_REASONS)));
        }
        "pending (item modified)" => {
            // The modify tool swapped some items for other variants of the same product and
            // settled the difference with one of the user's methods.
            let swaps = some_positions(rng, &items);
            let mut diff = 0;
            for i in swaps {
                let new = other_variant(rng, catalogue, items[i]);
                diff += new.price - items[i].price;
                items[i] = new;
            }
            let kind = if diff > 0 { "payment" } else { "refund" };
            payments.push(payment(kind, diff.abs(), &pick_id(rng, &user.payment_ids)));
        }
        "return requested" => {
            let returned = sorted_item_ids(&items, &some_positions(rng, &items));
            let gift_cards: Vec<String> = user.payment_ids.iter().filter(|id| id.starts_with("gift_card")).cloned().collect();
            let refund_to = if gift_cards.is_empty() || rng.random_bool(0.6) { payer.clone() } else { pick_id(rng, &gift_cards) };
            extra.insert("return_items".into(), json!(returned));
            extra.insert("return_payment_method_id".into(), json!(refund_to));
        }
        "exchange requested" => {
            let positions = some_positions(rng, &items);
            let mut new_ids = Vec::new();
            let mut diff = 0;
            for &i in &positions {
                let new = other_variant(rng, catalogue, items[i]);
                diff += new.price - items[i].price;
                new_ids.push(new.item_id.clone());
            }
            new_ids.sort();
            extra.insert("exchange_items".into(), json!(sorted_item_ids(&items, &positions)));
            extra.insert("exchange_new_items".into(), json!(new_ids));
            extra.insert("exchange_payment_method_id".into(), json!(pick_id(rng, &user.payment_ids)));
            extra.insert("exchange_price_difference".into(), dollars(diff));
        }
        _ => {}
    }
    let shipped = !matches!(status, "pending" | "pending (item modified)" | "cancelled");
    let fulfillments = if shipped {
        let tracking = digits(rng, 12);
        json!([{"tracking_id": [tracking], "item_ids": items.iter().map(|v| &v.item_id).collect::<Vec<_>>()}])
    } else {
        json!([])
    };
    let items: Vec<Value> = items
        .iter()
        .map(|v| json!({"name": v.name, "product_id": v.product_id, "item_id": v.item_id, "price": dollars(v.price), "options": v.options}))
        .collect();
    let mut order = json!({
        "order_id": order_id,
        "user_id": user.id,
        "address": address,
        "items": items,
        "fulfillments": fulfillments,
        "status": status,
        "payment_history": payments,
    });
    if let Some(o) = order.as_object_mut() {
        o.extend(extra);
    }
    (order_id, order)
}

fn payment(kind: &str, cents: i64, method: &str) -> Value {
    json!({"transaction_type": kind, "amount": dollars(cents), "payment_method_id": method})
}

fn weighted_status(rng: &mut ChaCha8Rng) -> &'static str {
    let mut roll = rng.random_range(0..STATUSES.iter().map(|(_, w)| w).sum::<u32>());
    for (status, weight) in STATUSES {
        if roll < *weight {
            return status;
        }
        roll -= weight;
    }
    STATUSES[0].0
}

fn pick_id(rng: &mut ChaCha8Rng, ids: &[String]) -> String {
    ids[rng.random_range(0..ids.len())].clone()
}

/// A non-empty, sorted set of positions in `items`.
fn some_positions(rng: &mut ChaCha8Rng, items: &[&Variant]) -> Vec<usize> {
    let n = rng.random_range(1..=items.len());
    let mut positions: Vec<usize> = index::sample(rng, items.len(), n).into_iter().collect();
    positions.sort_unstable();
    positions
}

fn sorted_item_ids(items: &[&Variant], positions: &[usize]) -> Vec<String> {
    let mut ids: Vec<String> = positions.iter().map(|&i| items[i].item_id.clone()).collect();
    ids.sort();
    ids
}

/// Another available variant of the same product (the tools only switch to available ones);
/// the same variant when the product has no other.
fn other_variant<'a>(rng: &mut ChaCha8Rng, catalogue: &'a [Vec<Variant>], old: &'a Variant) -> &'a Variant {
    let candidates: Vec<&Variant> = catalogue
        .iter()
        .find(|vs| vs[0].product_id == old.product_id)
        .map(|vs| vs.iter().filter(|v| v.available && v.item_id != old.item_id).collect())
        .unwrap_or_default();
    if candidates.is_empty() {
        old
    } else {
        candidates[rng.random_range(0..candidates.len())]
    }
}
