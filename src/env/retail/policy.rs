//! The retail rules over a whole action trace; `policy.md` beside this file says the same in
//! prose for the agent.
//!
//! Rule ids: `retail.not_authenticated`, `retail.wrong_user`, `retail.foreign_payment_method`,
//! `retail.order_modified_twice`, `retail.order_exchanged_twice`, `retail.return_and_cancel`,
//! `retail.return_and_exchange`, `retail.order_changed_after_cancel`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::env::policy::{arg, record, Identity, Violation};
use crate::env::{Action, Db};

/// Calls that change an order.
const ORDER_WRITES: &[&str] = &[
    "cancel_pending_order",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "return_delivered_order_items",
    "exchange_delivered_order_items",
];

/// Pairs the policy forbids on one order: after an item modification nothing else may change
/// the order, an exchange happens once, and a cancelled order cannot be returned (nor the reverse).
pub(super) const FORBIDDEN_PAIRS: &[(&str, &str)] = &[
    ("modify_pending_order_items", "modify_pending_order_items"),
    ("modify_pending_order_items", "modify_pending_order_address"),
    ("modify_pending_order_items", "modify_pending_order_payment"),
    ("modify_pending_order_items", "cancel_pending_order"),
    ("exchange_delivered_order_items", "exchange_delivered_order_items"),
    ("exchange_delivered_order_items", "return_delivered_order_items"),
    ("return_delivered_order_items", "exchange_delivered_order_items"),
    ("cancel_pending_order", "return_delivered_order_items"),
    ("return_delivered_order_items", "cancel_pending_order"),
    ("cancel_pending_order", "cancel_pending_order"),
    ("cancel_pending_order", "modify_pending_order_items"),
    ("cancel_pending_order", "modify_pending_order_address"),
    ("cancel_pending_order", "modify_pending_order_payment"),
];

/// Whether the policy forbids `second` after `first` on one record.
fn forbidden(first: &str, second: &str) -> bool {
    FORBIDDEN_PAIRS.iter().any(|&(a, b)| a == first && b == second)
}

/// Every rule `trace` breaks when it runs on `initial`, in the order they are found.
pub(super) fn check(initial: &Db, trace: &[Action]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut identity = Identity::new("retail.not_authenticated", "retail.wrong_user");
    // The writes already attempted on each order, in order.
    let mut history: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (step, action) in trace.iter().enumerate() {
        let name = action.name.as_str();
        match name {
            "find_user_id_by_email" | "find_user_id_by_name_zip" => {
                if let Some(user) = identified(initial, action) {
                    identity.identify(step, action, &user, &mut out);
                }
            }
            "get_user_details" | "modify_user_address" => {
                if let Some(user) = arg(action, "user_id") {
                    identity.touch(step, action, user, &mut out);
                }
            }
            _ => {}
        }
        let Some(order_id) = arg(action, "order_id") else {
            continue;
        };
        let Some(owner) = record(initial, "orders", order_id).and_then(|o| o["user_id"].as_str()) else {
            continue;
        };
        identity.touch(step, action, owner, &mut out);
        if !ORDER_WRITES.contains(&name) {
            continue;
        }
        if let Some(method) = arg(action, "payment_method_id") {
            let owns = record(initial, "users", owner).is_some_and(|u| u["payment_methods"].get(method).is_some());
            if !owns {
                out.push(Violation {
                    id: "retail.foreign_payment_method".to_string(),
                    step,
                    message: format!(
                        "{name} uses payment method '{method}', which user '{owner}' does not have; \
                         only the order owner's own payment methods may be used"
                    ),
                });
            }
        }
        let earlier = history.entry(order_id).or_default();
        if let Some(&before) = earlier.iter().find(|&&before| forbidden(before, name)) {
            out.push(Violation { id: pair_rule(before, name).to_string(), step, message: pair_message(before, name, order_id) });
        }
        earlier.push(name);
    }
    out
}

/// The user an identification call finds in the initial database, as the lookup tools do.
fn identified(db: &Db, action: &Action) -> Option<String> {
    let users = db.get("users")?.as_object()?;
    let found = match action.name.as_str() {
        "find_user_id_by_email" => {
            let email = arg(action, "email")?;
            users.iter().find(|(_, u)| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        }
        _ => {
            let (first, last, zip) = (arg(action, "first_name")?, arg(action, "last_name")?, arg(action, "zip")?);
            let same = |v: &Value, s: &str| v.as_str().is_some_and(|x| x.eq_ignore_ascii_case(s));
            users
                .iter()
                .find(|(_, u)| same(&u["name"]["first_name"], first) && same(&u["name"]["last_name"], last) && u["address"]["zip"] == zip)
        }
    };
    found.map(|(id, _)| id.clone())
}

/// The stable id of the rule a forbidden pair breaks.
fn pair_rule(before: &str, now: &str) -> &'static str {
    match (before, now) {
        ("modify_pending_order_items", _) => "retail.order_modified_twice",
        ("exchange_delivered_order_items", "exchange_delivered_order_items") => "retail.order_exchanged_twice",
        ("cancel_pending_order", "return_delivered_order_items") | ("return_delivered_order_items", "cancel_pending_order") => {
            "retail.return_and_cancel"
        }
        ("cancel_pending_order", _) => "retail.order_changed_after_cancel",
        _ => "retail.return_and_exchange",
    }
}

fn pair_message(before: &str, now: &str, order: &str) -> String {
    let why = match pair_rule(before, now) {
        "retail.order_modified_twice" => {
            "an order's items can be modified only once, and nothing else may change after that; \
             collect every item to change first and make one call"
        }
        "retail.order_exchanged_twice" => {
            "a delivered order can be exchanged only once; collect every item to exchange first and make one call"
        }
        "retail.return_and_cancel" => "an order is either cancelled (while pending) or returned (once delivered), never both",
        "retail.order_changed_after_cancel" => "a cancelled order cannot be changed",
        _ => "a delivered order is either returned or exchanged, not both",
    };
    format!("{now} on order {order} after {before}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> Db {
        let v = json!({
            "users": {
                "ana_silva_1111": {
                    "name": {"first_name": "Ana", "last_name": "Silva"},
                    "address": {"zip": "97201"},
                    "email": "ana.silva1@example.com",
                    "payment_methods": {"credit_card_1": {"source": "credit_card", "id": "credit_card_1"}},
                    "orders": ["#W1000001", "#W1000002"]
                },
                "bo_kim_2222": {
                    "name": {"first_name": "Bo", "last_name": "Kim"},
                    "address": {"zip": "10001"},
                    "email": "bo.kim2@example.com",
                    "payment_methods": {"paypal_2": {"source": "paypal", "id": "paypal_2"}},
                    "orders": ["#W1000003"]
                }
            },
            "orders": {
                "#W1000001": {"user_id": "ana_silva_1111", "status": "pending"},
                "#W1000002": {"user_id": "ana_silva_1111", "status": "delivered"},
                "#W1000003": {"user_id": "bo_kim_2222", "status": "pending"}
            },
            "products": {}
        });
        v.as_object().unwrap().clone()
    }

    fn act(name: &str, kwargs: serde_json::Value) -> Action {
        Action { name: name.into(), kwargs: kwargs.as_object().unwrap().clone() }
    }

    fn login() -> Action {
        act("find_user_id_by_email", json!({"email": "ana.silva1@example.com"}))
    }

    fn ids(trace: &[Action]) -> Vec<String> {
        check(&db(), trace).into_iter().map(|v| v.id).collect()
    }

    fn modify_items(order: &str) -> Action {
        act(
            "modify_pending_order_items",
            json!({"order_id": order, "item_ids": ["1"], "new_item_ids": ["2"], "payment_method_id": "credit_card_1"}),
        )
    }

    fn exchange(order: &str) -> Action {
        act(
            "exchange_delivered_order_items",
            json!({"order_id": order, "item_ids": ["1"], "new_item_ids": ["2"], "payment_method_id": "credit_card_1"}),
        )
    }

    #[test]
    fn a_clean_session_breaks_nothing() {
        let trace = [
            login(),
            act("get_user_details", json!({"user_id": "ana_silva_1111"})),
            act("get_order_details", json!({"order_id": "#W1000001"})),
            modify_items("#W1000001"),
            exchange("#W1000002"),
            act("find_user_id_by_name_zip", json!({"first_name": "ana", "last_name": "SILVA", "zip": "97201"})),
        ];
        assert_eq!(ids(&trace), Vec::<&str>::new());
    }

    #[test]
    fn modifying_items_twice_is_flagged() {
        let trace = [login(), modify_items("#W1000001"), modify_items("#W1000001")];
        let found = check(&db(), &trace);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].id.as_str(), found[0].step), ("retail.order_modified_twice", 2));
        assert!(found[0].message.contains("#W1000001"));
        // Changing the address after the items is the same mistake.
        let addr = act("modify_pending_order_address", json!({"order_id": "#W1000001"}));
        assert_eq!(ids(&[login(), modify_items("#W1000001"), addr]), ["retail.order_modified_twice"]);
    }

    #[test]
    fn exchanging_twice_is_flagged() {
        assert_eq!(ids(&[login(), exchange("#W1000002"), exchange("#W1000002")]), ["retail.order_exchanged_twice"]);
        assert!(ids(&[login(), exchange("#W1000002")]).is_empty());
    }

    #[test]
    fn return_and_cancel_on_one_order_is_flagged() {
        let cancel = act("cancel_pending_order", json!({"order_id": "#W1000002", "reason": "no longer needed"}));
        let ret =
            act("return_delivered_order_items", json!({"order_id": "#W1000002", "item_ids": ["1"], "payment_method_id": "credit_card_1"}));
        assert_eq!(ids(&[login(), ret.clone(), cancel.clone()]), ["retail.return_and_cancel"]);
        assert_eq!(ids(&[login(), cancel, ret.clone()]), ["retail.return_and_cancel"]);
        assert!(ids(&[login(), ret]).is_empty());
    }

    #[test]
    fn return_and_exchange_on_one_order_is_flagged() {
        let ret =
            act("return_delivered_order_items", json!({"order_id": "#W1000002", "item_ids": ["1"], "payment_method_id": "credit_card_1"}));
        assert_eq!(ids(&[login(), exchange("#W1000002"), ret.clone()]), ["retail.return_and_exchange"]);
        assert_eq!(ids(&[login(), ret, exchange("#W1000002")]), ["retail.return_and_exchange"]);
    }

    #[test]
    fn changing_a_cancelled_order_is_flagged() {
        let cancel = act("cancel_pending_order", json!({"order_id": "#W1000001", "reason": "ordered by mistake"}));
        let addr = act("modify_pending_order_address", json!({"order_id": "#W1000001"}));
        assert_eq!(ids(&[login(), cancel.clone(), addr.clone()]), ["retail.order_changed_after_cancel"]);
        // The same change before the cancellation is fine.
        assert!(ids(&[login(), addr, cancel]).is_empty());
    }

    #[test]
    fn paying_with_someone_elses_method_is_flagged() {
        let pay = act("modify_pending_order_payment", json!({"order_id": "#W1000001", "payment_method_id": "paypal_2"}));
        assert_eq!(ids(&[login(), pay]), ["retail.foreign_payment_method"]);
        let own = act("modify_pending_order_payment", json!({"order_id": "#W1000001", "payment_method_id": "credit_card_1"}));
        assert!(ids(&[login(), own]).is_empty());
    }

    #[test]
    fn acting_for_another_user_is_flagged() {
        let other = act("cancel_pending_order", json!({"order_id": "#W1000003", "reason": "no longer needed"}));
        assert_eq!(ids(&[login(), other.clone()]), ["retail.wrong_user"]);
        let details = act("get_user_details", json!({"user_id": "bo_kim_2222"}));
        assert_eq!(ids(&[login(), details]), ["retail.wrong_user"]);
        let second_login = act("find_user_id_by_email", json!({"email": "bo.kim2@example.com"}));
        assert_eq!(ids(&[login(), second_login]), ["retail.wrong_user"]);
        // Before anyone is identified, the same call is an authentication failure instead.
        assert_eq!(ids(&[other]), ["retail.not_authenticated"]);
    }
}
