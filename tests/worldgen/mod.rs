//! Generated worlds: counts, formats, the invariants the tools rely on, tools and policy on them, and the CLI.
//! (Kept under a folder so that Cargo does not build it as its own test binary.)

use std::collections::BTreeSet;

use apigen_mt::env::generate::{cents, generate};
use apigen_mt::env::{domain, policy, Action, Db, Env};
use serde_json::{json, Value};

fn table<'a>(db: &'a Db, name: &str) -> &'a serde_json::Map<String, Value> {
    db.get(name).and_then(Value::as_object).unwrap_or_else(|| panic!("table {name} missing"))
}

fn all_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn money(v: &Value) -> i64 {
    cents(v).unwrap_or_else(|| panic!("not an amount: {v}"))
}

#[test]
fn retail_world_has_the_expected_shape_and_balanced_orders() {
    let db = generate("retail", 3).unwrap();
    let (users, orders, products) = (table(&db, "users"), table(&db, "orders"), table(&db, "products"));
    assert_eq!(users.len(), 500);
    assert_eq!(orders.len(), 1000);
    assert_eq!(products.len(), 50);
    let variants: usize = products.values().map(|p| p["variants"].as_object().unwrap().len()).sum();
    assert!((450..=750).contains(&variants), "{variants} variants");

    for (pid, p) in products {
        assert!(all_digits(pid, 10) && p["product_id"] == pid.as_str());
        for (iid, v) in p["variants"].as_object().unwrap() {
            assert!(all_digits(iid, 10) && v["item_id"] == iid.as_str());
            assert!(money(&v["price"]) > 0 && v["available"].is_boolean());
        }
    }

    let statuses: BTreeSet<&str> = orders.values().map(|o| o["status"].as_str().unwrap()).collect();
    let expected = ["cancelled", "delivered", "exchange requested", "pending", "pending (item modified)", "processed", "return requested"];
    assert_eq!(statuses, expected.into_iter().collect());

    for (oid, o) in orders {
        assert!(oid.starts_with("#W") && all_digits(&oid[2..], 7), "order id {oid}");
        let user = &users[o["user_id"].as_str().unwrap()];
        assert!(user["orders"].as_array().unwrap().iter().any(|x| x == oid.as_str()), "{oid} not listed by its user");
        let total: i64 = o["items"].as_array().unwrap().iter().map(|i| money(&i["price"])).sum();
        let (mut paid, mut refunded) = (0, 0);
        for p in o["payment_history"].as_array().unwrap() {
            let method = p["payment_method_id"].as_str().unwrap();
            assert!(user["payment_methods"].get(method).is_some(), "{oid} paid with a method its user lacks");
            match p["transaction_type"].as_str().unwrap() {
                "payment" => paid += money(&p["amount"]),
                "refund" => refunded += money(&p["amount"]),
                other => panic!("transaction type {other}"),
            }
        }
        let first = money(&o["payment_history"][0]["amount"]);
        match o["status"].as_str().unwrap() {
            "cancelled" => {
                assert_eq!((first, paid - refunded), (total, 0), "{oid}");
                assert!(o["cancel_reason"].is_string());
            }
            status => assert_eq!(paid - refunded, total, "{oid} ({status}) net payments differ from items"),
        }
        let shipped = !o["fulfillments"].as_array().unwrap().is_empty();
        let expect_shipped = !matches!(o["status"].as_str().unwrap(), "pending" | "pending (item modified)" | "cancelled");
        assert_eq!(shipped, expect_shipped, "{oid} fulfillments");
        // Every item references a real variant of its product at the price the order shows.
        for item in o["items"].as_array().unwrap() {
            let v = &products[item["product_id"].as_str().unwrap()]["variants"][item["item_id"].as_str().unwrap()];
            assert_eq!(v["price"], item["price"], "{oid} item price");
            assert_eq!(v["options"], item["options"]);
        }
    }

    for (uid, u) in users {
        assert!(uid.rsplit('_').next().is_some_and(|n| all_digits(n, 4)), "user id {uid}");
        assert!(u["email"].as_str().unwrap().ends_with("@example.com"));
        for (mid, m) in u["payment_methods"].as_object().unwrap() {
            assert_eq!(m["id"], mid.as_str());
            if m["source"] == "gift_card" {
                let balance = money(&m["balance"]);
                assert!(balance >= 0, "{mid} negative balance");
                assert_eq!(m["balance"].as_f64().unwrap(), balance as f64 / 100.0, "{mid} has more than two decimals");
            }
        }
        for oid in u["orders"].as_array().unwrap() {
            assert_eq!(orders[oid.as_str().unwrap()]["user_id"], uid.as_str());
        }
    }
}

#[test]
fn airline_world_has_the_expected_shape_and_consistent_reservations() {
    let db = generate("airline", 3).unwrap();
    let (users, flights, reservations) = (table(&db, "users"), table(&db, "flights"), table(&db, "reservations"));
    assert_eq!(users.len(), 500);
    assert_eq!(flights.len(), 300);
    assert_eq!(reservations.len(), 2000);

    let mut day_statuses = BTreeSet::new();
    for (num, f) in flights {
        assert!(num.starts_with("HAT") && all_digits(&num[3..], 3));
        let dates = f["dates"].as_object().unwrap();
        assert_eq!(dates.len(), 30);
        for (day, d) in dates {
            let status = d["status"].as_str().unwrap();
            day_statuses.insert(status.to_string());
            assert_eq!(status == "available", day.as_str() > "2024-05-15", "{num} {day} {status}");
            if status == "available" {
                for cabin in ["basic_economy", "economy", "business"] {
                    assert!(d["available_seats"][cabin].as_i64().unwrap() >= 0);
                    assert!(d["prices"][cabin].as_i64().unwrap() > 0);
                }
            }
        }
    }
    for s in ["available", "landed", "cancelled", "flying", "on time", "delayed"] {
        assert!(day_statuses.contains(s), "no flight day is {s}");
    }

    let mut cancelled = 0;
    for (rid, r) in reservations {
        assert!(rid.len() == 6 && rid.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert!(!["HATHAT", "HATHAU", "HATHAV"].contains(&rid.as_str()));
        let user = users.get(r["user_id"].as_str().unwrap()).unwrap_or_else(|| panic!("{rid}: user missing"));
        assert!(user["reservations"].as_array().unwrap().iter().any(|x| x == rid.as_str()));
        let legs = r["flights"].as_array().unwrap();
        for leg in legs {
            let f = &flights[leg["flight_number"].as_str().unwrap()];
            assert_eq!(f["origin"], leg["origin"]);
            assert_eq!(f["destination"], leg["destination"]);
            assert!(f["dates"].get(leg["date"].as_str().unwrap()).is_some());
        }
        assert_eq!(legs[0]["origin"], r["origin"]);
        let n = r["passengers"].as_array().unwrap().len() as i64;
        assert!((1..=4).contains(&n));
        let per_person: i64 = legs.iter().map(|l| l["price"].as_i64().unwrap()).sum();
        let insurance = if r["insurance"] == "yes" { 30 * n } else { 0 };
        let total = per_person * n + insurance + 50 * r["nonfree_baggages"].as_i64().unwrap();
        let paid: i64 = r["payment_history"].as_array().unwrap().iter().map(|p| p["amount"].as_i64().unwrap()).sum();
        for p in r["payment_history"].as_array().unwrap() {
            assert!(user["payment_methods"].get(p["payment_id"].as_str().unwrap()).is_some(), "{rid}: payer not the user's");
        }
        if r.get("status").is_some_and(|s| s == "cancelled") {
            cancelled += 1;
            assert_eq!(paid, 0, "{rid}: a cancelled reservation is fully refunded");
        } else {
            assert_eq!(paid, total, "{rid}: payments differ from the price");
        }
        assert!(r["created_at"].as_str().unwrap() < "2024-05-15T15:00:00");
        assert!(r["nonfree_baggages"].as_i64() <= r["total_baggages"].as_i64());
    }
    assert!(cancelled > 0, "some reservations are cancelled");
    for (uid, u) in users {
        let sources: Vec<&str> = u["payment_methods"].as_object().unwrap().values().map(|m| m["source"].as_str().unwrap()).collect();
        assert!(sources.iter().any(|s| *s != "certificate"), "{uid} can only pay with certificates");
        assert!(["regular", "silver", "gold"].contains(&u["membership"].as_str().unwrap()));
    }
}

fn call(env: &mut Env, name: &str, kwargs: Value, trace: &mut Vec<Action>) -> Result<String, String> {
    let action = Action { name: name.to_string(), kwargs: kwargs.as_object().cloned().unwrap_or_default() };
    trace.push(action.clone());
    env.step(&action)
}

/// A user of the generated retail world with at least two pending and two delivered orders, and
/// a payment method that is not a gift card.
fn busy_retail_user(db: &Db) -> (String, Vec<String>, Vec<String>) {
    let orders = table(db, "orders");
    for (uid, u) in table(db, "users") {
        let mine = |status: &str| -> Vec<String> {
            u["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .filter(|o| orders[o]["status"] == status)
                .collect()
        };
        let (pending, delivered) = (mine("pending"), mine("delivered"));
        let card = u["payment_methods"].as_object().unwrap().values().any(|m| m["source"] != "gift_card");
        if card && pending.len() >= 2 && delivered.len() >= 2 {
            return (uid.clone(), pending, delivered);
        }
    }
    panic!("no user with two pending and two delivered orders");
}

/// Another available variant of the product of an order's first item, if any.
fn alternative(db: &Db, order: &Value) -> Option<(String, String)> {
    let item = &order["items"][0];
    let variants = table(db, "products")[item["product_id"].as_str()?]["variants"].as_object()?;
    let (new_id, _) = variants.iter().find(|(id, v)| v["available"] == true && id.as_str() != item["item_id"])?;
    Some((item["item_id"].as_str()?.to_string(), new_id.clone()))
}

#[test]
fn retail_tools_run_on_a_generated_world_and_a_clean_session_passes_the_policy() {
    let db = generate("retail", 11).unwrap();
    let mut env = Env::new(domain("retail").unwrap(), db.clone());
    let (uid, pending, delivered) = busy_retail_user(&db);
    let user = &table(&db, "users")[&uid];
    let orders = table(&db, "orders");
    let mut trace = Vec::new();

    let found = call(&mut env, "find_user_id_by_email", json!({"email": user["email"]}), &mut trace).unwrap();
    assert_eq!(found, uid);
    let details = call(&mut env, "get_user_details", json!({"user_id": uid}), &mut trace).unwrap();
    assert!(details.contains(&pending[0]));
    call(&mut env, "get_order_details", json!({"order_id": pending[0]}), &mut trace).unwrap();

    // Cancel a pending order: it is refunded in full, at once when a gift card paid.
    let payer = orders[&pending[0]]["payment_history"][0]["payment_method_id"].as_str().unwrap().to_string();
    let balance_before = user["payment_methods"][&payer].get("balance").map(money);
    call(&mut env, "cancel_pending_order", json!({"order_id": pending[0], "reason": "ordered by mistake"}), &mut trace).unwrap();
    let after = &env.db["orders"][&pending[0]];
    assert_eq!(after["status"], "cancelled");
    if let Some(before) = balance_before {
        let amount = money(&orders[&pending[0]]["payment_history"][0]["amount"]);
        assert_eq!(money(&env.db["users"][&uid]["payment_methods"][&payer]["balance"]), before + amount);
    }

    // A delivered order cannot be cancelled: the tool says so and nothing changes.
    let err = call(&mut env, "cancel_pending_order", json!({"order_id": delivered[0], "reason": "no longer needed"}), &mut trace);
    assert!(err.unwrap_err().starts_with("Error"));
    trace.pop();

    // Return one item of a delivered order to the original payment method.
    let order = &orders[&delivered[0]];
    let original = order["payment_history"][0]["payment_method_id"].clone();
    let item = order["items"][0]["item_id"].clone();
    call(
        &mut env,
        "return_delivered_order_items",
        json!({"order_id": delivered[0], "item_ids": [item], "payment_method_id": original}),
        &mut trace,
    )
    .unwrap();
    assert_eq!(env.db["orders"][&delivered[0]]["status"], "return requested");

    // Modify an item of the other pending order, and exchange one of the other delivered order,
    // paying with a method that is not a gift card (no balance needed).
    let card = user["payment_methods"].as_object().unwrap().values().find(|m| m["source"] != "gift_card").unwrap()["id"].clone();
    let (old, new) = alternative(&db, &orders[&pending[1]]).expect("the product has another available variant");
    let kwargs = json!({"order_id": pending[1], "item_ids": [old], "new_item_ids": [new], "payment_method_id": card});
    call(&mut env, "modify_pending_order_items", kwargs, &mut trace).unwrap();
    assert_eq!(env.db["orders"][&pending[1]]["status"], "pending (item modified)");
    let (old, new) = alternative(&db, &orders[&delivered[1]]).expect("the product has another available variant");
    let kwargs = json!({"order_id": delivered[1], "item_ids": [old], "new_item_ids": [new], "payment_method_id": card});
    call(&mut env, "exchange_delivered_order_items", kwargs, &mut trace).unwrap();
    assert_eq!(env.db["orders"][&delivered[1]]["status"], "exchange requested");
    assert_eq!(policy::check("retail", &db, &trace).unwrap(), vec![], "{trace:?}");

    // Cancelling the returned order as well breaks the policy, even though the tool refuses it.
    let again = Action {
        name: "cancel_pending_order".into(),
        kwargs: json!({"order_id": delivered[0], "reason": "no longer needed"}).as_object().unwrap().clone(),
    };
    trace.push(again);
    let ids: Vec<String> = policy::check("retail", &db, &trace).unwrap().into_iter().map(|v| v.id).collect();
    assert_eq!(ids, ["retail.return_and_cancel"]);
}

fn bin(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_apigen-mt")).args(args).output().expect("the binary runs")
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn cli_policy_check_graph_generate_and_replay_on_a_seed() {
    assert!(stdout(&bin(&["env", "policy", "retail"])).starts_with("# Retail support policy"));
    let out = bin(&["env", "policy", "bakery"]);
    assert_eq!(out.status.code(), Some(2));

    // A trace that acts for two users: the check names the rule and the step.
    let db = generate("retail", 4).unwrap();
    let mut users = table(&db, "users").iter().filter(|(_, u)| !u["orders"].as_array().unwrap().is_empty());
    let (first, u1) = users.next().unwrap();
    let (_, u2) = users.next().unwrap();
    let trace = json!([
        {"name": "find_user_id_by_email", "kwargs": {"email": u1["email"]}},
        {"name": "get_user_details", "kwargs": {"user_id": first}},
        {"name": "get_order_details", "kwargs": {"order_id": u2["orders"][0]}},
    ]);
    let dir = tempfile::tempdir().unwrap();
    let actions = dir.path().join("actions.json");
    std::fs::write(&actions, trace.to_string()).unwrap();
    let a = actions.to_str().unwrap();
    let text = stdout(&bin(&["env", "check", "retail", "--actions", a, "--seed", "4"]));
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!((&lines[0]["id"], &lines[0]["step"]), (&json!("retail.wrong_user"), &json!(2)));
    assert_eq!(lines[1], json!({"violations": 1}));

    // The generated files load back as a data directory and give the same replay as --seed.
    let world = dir.path().join("world");
    let out = bin(&["env", "generate", "retail", "--seed", "4", "--out", world.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from_files = stdout(&bin(&["env", "replay", "retail", "--actions", a, "--data-dir", world.to_str().unwrap()]));
    let from_seed = stdout(&bin(&["env", "replay", "retail", "--actions", a, "--seed", "4"]));
    assert_eq!(from_files, from_seed);
    assert!(from_seed.contains(first.as_str()));
    let other_seed = stdout(&bin(&["env", "replay", "retail", "--actions", a, "--seed", "5"]));
    assert_ne!(other_seed.lines().last(), from_seed.lines().last(), "another world hashes differently");

    let text = stdout(&bin(&["env", "graph", "retail", "--walks", "3"]));
    assert!(text.starts_with("retail: 16 tools,"), "{text}");
    assert!(text.contains("  -> get_user_details (user_id)"));
    let walks: Vec<Value> = text.lines().rev().take(3).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(walks.iter().all(|w| w.as_array().is_some_and(|w| !w.is_empty())));
    assert!(stdout(&bin(&["env", "graph", "airline", "--dot"])).starts_with("digraph airline {"));
}

#[test]
fn airline_tools_run_on_a_generated_world_and_a_clean_session_passes_the_policy() {
    let db = generate("airline", 12).unwrap();
    let mut env = Env::new(domain("airline").unwrap(), db.clone());
    let (users, flights, reservations) = (table(&db, "users"), table(&db, "flights"), table(&db, "reservations"));
    let mut trace = Vec::new();

    // Every airport the flights use is one the airport list names.
    let airports: Value = serde_json::from_str(&call(&mut env, "list_all_airports", json!({}), &mut trace).unwrap()).unwrap();
    for f in flights.values() {
        assert!(airports.get(f["origin"].as_str().unwrap()).is_some(), "{} not listed", f["origin"]);
    }

    // A member with a credit card and an economy reservation on future flights.
    let (uid, user, rid) = users
        .iter()
        .filter(|(_, u)| u["payment_methods"].as_object().unwrap().values().any(|m| m["source"] == "credit_card"))
        .find_map(|(uid, u)| {
            let rid = u["reservations"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).find(|r| {
                let r = &reservations[*r];
                r["cabin"] == "economy"
                    && r.get("status").is_none()
                    && r["flights"].as_array().unwrap().iter().all(|f| f["date"].as_str().unwrap() > "2024-05-16")
            })?;
            Some((uid.clone(), u, rid.to_string()))
        })
        .expect("some member has a future economy reservation and a credit card");
    let card = user["payment_methods"].as_object().unwrap().values().find(|m| m["source"] == "credit_card").unwrap()["id"].clone();
    call(&mut env, "get_user_details", json!({"user_id": uid}), &mut trace).unwrap();
    call(&mut env, "get_reservation_details", json!({"reservation_id": rid}), &mut trace).unwrap();

    // Add a bag, paid by card.
    let r = &reservations[&rid];
    let bags = json!({"reservation_id": rid, "total_baggages": r["total_baggages"].as_i64().unwrap() + 1,
        "nonfree_baggages": r["nonfree_baggages"].as_i64().unwrap() + 1, "payment_id": card});
    call(&mut env, "update_reservation_baggages", bags, &mut trace).unwrap();

    // Book the first leg's route again, one passenger, on a flight the search offers.
    let leg = &r["flights"][0];
    let found = call(
        &mut env,
        "search_direct_flight",
        json!({"origin": leg["origin"], "destination": leg["destination"], "date": "2024-05-25"}),
        &mut trace,
    )
    .unwrap();
    let offers: Value = serde_json::from_str(&found).unwrap();
    let offer =
        offers.as_array().unwrap().iter().find(|o| o["available_seats"]["economy"].as_i64().unwrap() > 0).expect("a bookable flight");
    let price = offer["prices"]["economy"].as_i64().unwrap();
    let booking = json!({
        "user_id": uid, "origin": leg["origin"], "destination": leg["destination"], "flight_type": "one_way", "cabin": "economy",
        "flights": [{"flight_number": offer["flight_number"], "date": "2024-05-25"}],
        "passengers": [{"first_name": user["name"]["first_name"], "last_name": user["name"]["last_name"], "dob": user["dob"]}],
        "payment_methods": [{"payment_id": card, "amount": price}], "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no",
    });
    call(&mut env, "book_reservation", booking, &mut trace).unwrap();
    assert_eq!(env.db["reservations"]["HATHAT"]["user_id"], uid.as_str());
    assert!(env.db["users"][&uid]["reservations"].as_array().unwrap().iter().any(|r| r == "HATHAT"));

    call(&mut env, "cancel_reservation", json!({"reservation_id": "HATHAT"}), &mut trace).unwrap();
    assert_eq!(env.db["reservations"]["HATHAT"]["status"], "cancelled");
    assert_eq!(policy::check("airline", &db, &trace).unwrap(), vec![], "{trace:?}");

    // Touching another member's reservation afterwards is flagged.
    let other = reservations.iter().find(|(_, r)| r["user_id"] != uid.as_str()).unwrap().0;
    trace.push(Action { name: "get_reservation_details".into(), kwargs: json!({"reservation_id": other}).as_object().unwrap().clone() });
    let ids: Vec<String> = policy::check("airline", &db, &trace).unwrap().into_iter().map(|v| v.id).collect();
    assert_eq!(ids, ["airline.wrong_user"]);
}
