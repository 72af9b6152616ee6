//! The airline rules over a whole action trace; `policy.md` beside this file says the same in
//! prose for the agent.
//!
//! Rule ids: `airline.not_authenticated`, `airline.wrong_user`, `airline.foreign_payment_method`,
//! `airline.multiple_certificates`, `airline.multiple_credit_cards`, `airline.too_many_gift_cards`,
//! `airline.basic_economy_flight_change`, `airline.changed_after_cancel`,
//! `airline.too_many_bookings`, `airline.too_many_certificates`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::env::policy::{arg, record, Identity, Violation};
use crate::env::{Action, Db};

/// The reservation ids `book_reservation` hands out, in order; a task can make at most this many.
pub const NEW_RESERVATION_IDS: &[&str] = &["HATHAT", "HATHAU", "HATHAV"];
/// How many certificates `send_certificate` can issue to one world (it has three fixed ids).
pub const MAX_CERTIFICATES_SENT: usize = 3;

/// How many payment methods of each kind (by id prefix) one booking may combine, and the rule
/// that an excess breaks.
const PAYMENT_LIMITS: &[(&str, usize, &str)] = &[
    ("certificate", 1, "airline.multiple_certificates"),
    ("credit_card", 1, "airline.multiple_credit_cards"),
    ("gift_card", 3, "airline.too_many_gift_cards"),
];

/// Pairs the policy forbids on one reservation: nothing changes after a cancellation.
pub(super) const FORBIDDEN_PAIRS: &[(&str, &str)] = &[
    ("cancel_reservation", "cancel_reservation"),
    ("cancel_reservation", "update_reservation_flights"),
    ("cancel_reservation", "update_reservation_baggages"),
    ("cancel_reservation", "update_reservation_passengers"),
];

/// What the rules need to know about a reservation as the trace goes on.
struct Booking {
    owner: String,
    cabin: String,
    flights: BTreeSet<(String, String)>,
    history: Vec<String>,
}

impl Booking {
    fn from_record(r: &Value) -> Option<Self> {
        Some(Self {
            owner: r["user_id"].as_str()?.to_string(),
            cabin: r["cabin"].as_str()?.to_string(),
            flights: legs(&r["flights"]),
            history: Vec::new(),
        })
    }
}

/// The (flight number, date) pairs of a `flights` list.
fn legs(flights: &Value) -> BTreeSet<(String, String)> {
    flights
        .as_array()
        .map(|fs| fs.iter().filter_map(|f| Some((f["flight_number"].as_str()?.to_string(), f["date"].as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// Whether the policy forbids `second` after `first` on one record.
fn forbidden(first: &str, second: &str) -> bool {
    FORBIDDEN_PAIRS.iter().any(|&(a, b)| a == first && b == second)
}

/// Every rule `trace` breaks when it runs on `initial`, in the order they are found.
pub(super) fn check(initial: &Db, trace: &[Action]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut identity = Identity::new("airline.not_authenticated", "airline.wrong_user");
    let mut bookings: BTreeMap<String, Booking> = BTreeMap::new();
    let mut booked = 0;
    let mut certificates_sent: Vec<String> = Vec::new();
    for (step, action) in trace.iter().enumerate() {
        let name = action.name.as_str();
        let owns = |user: &str, method: &str, sent: &[String]| {
            record(initial, "users", user).is_some_and(|u| u["payment_methods"].get(method).is_some())
                || sent.iter().any(|s| s == &format!("{user}/{method}"))
        };
        match name {
            "get_user_details" => {
                if let Some(user) = arg(action, "user_id") {
                    identity.identify(step, action, user, &mut out);
                }
            }
            "send_certificate" => {
                let Some(user) = arg(action, "user_id") else { continue };
                identity.touch(step, action, user, &mut out);
                if certificates_sent.len() == MAX_CERTIFICATES_SENT {
                    out.push(Violation {
                        id: "airline.too_many_certificates".to_string(),
                        step,
                        message: format!("a task can issue at most {MAX_CERTIFICATES_SENT} certificates; this is one more"),
                    });
                }
                let id = format!("certificate_{}", 3221322 + certificates_sent.len());
                certificates_sent.push(format!("{user}/{id}"));
            }
            "book_reservation" => {
                let Some(user) = arg(action, "user_id") else { continue };
                identity.touch(step, action, user, &mut out);
                let payments = action.kwargs.get("payment_methods").and_then(Value::as_array).cloned().unwrap_or_default();
                let methods: Vec<&str> = payments.iter().filter_map(|p| p["payment_id"].as_str()).collect();
                for m in methods.iter().filter(|m| !owns(user, m, &certificates_sent)) {
                    out.push(foreign(step, name, m, user));
                }
                let count = |kind: &str| methods.iter().filter(|m| m.starts_with(kind)).count();
                for (kind, limit, id) in PAYMENT_LIMITS {
                    if count(kind) > *limit {
                        out.push(Violation {
                            id: id.to_string(),
                            step,
                            message: format!(
                                "a booking may use at most one travel certificate, one credit card and three gift cards; \
                                 this one uses {} payment methods of kind '{kind}'",
                                count(kind)
                            ),
                        });
                    }
                }
                let Some(&id) = NEW_RESERVATION_IDS.get(booked) else {
                    out.push(Violation {
                        id: "airline.too_many_bookings".to_string(),
                        step,
                        message: format!(
                            "a task can create at most {} new reservations; this booking is one more",
                            NEW_RESERVATION_IDS.len()
                        ),
                    });
                    continue;
                };
                booked += 1;
                let cabin = arg(action, "cabin").unwrap_or_default().to_string();
                let flights = legs(action.kwargs.get("flights").unwrap_or(&Value::Null));
                bookings.insert(id.to_string(), Booking { owner: user.to_string(), cabin, flights, history: Vec::new() });
            }
            _ => {}
        }
        let Some(rid) = arg(action, "reservation_id") else {
            continue;
        };
        if !bookings.contains_key(rid) {
            let Some(b) = record(initial, "reservations", rid).and_then(Booking::from_record) else {
                continue;
            };
            bookings.insert(rid.to_string(), b);
        }
        let Some(booking) = bookings.get_mut(rid) else { continue };
        identity.touch(step, action, &booking.owner, &mut out);
        if name == "get_reservation_details" {
            continue;
        }
        if let Some(method) = arg(action, "payment_id") {
            if !owns(&booking.owner, method, &certificates_sent) {
                out.push(foreign(step, name, method, &booking.owner));
            }
        }
        if let Some(before) = booking.history.iter().find(|b| forbidden(b, name)) {
            out.push(Violation {
                id: "airline.changed_after_cancel".to_string(),
                step,
                message: format!("{name} on reservation {rid} after {before}: a cancelled reservation cannot be changed"),
            });
        }
        booking.history.push(name.to_string());
        if name == "update_reservation_flights" {
            let new_flights = legs(action.kwargs.get("flights").unwrap_or(&Value::Null));
            if booking.cabin == "basic_economy" && new_flights != booking.flights {
                out.push(Violation {
                    id: "airline.basic_economy_flight_change".to_string(),
                    step,
                    message: format!(
                        "reservation {rid} is basic economy, whose flights cannot be changed; \
                         only its cabin may be upgraded, keeping the same flights"
                    ),
                });
            }
            if let Some(cabin) = arg(action, "cabin") {
                booking.cabin = cabin.to_string();
            }
            booking.flights = new_flights;
        }
    }
    out
}

fn foreign(step: usize, tool: &str, method: &str, user: &str) -> Violation {
    Violation {
        id: "airline.foreign_payment_method".to_string(),
        step,
        message: format!(
            "{tool} uses payment method '{method}', which user '{user}' does not have; \
             only payment methods already in the user's profile may be used"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> Db {
        let v = json!({
            "users": {
                "ana_silva_1111": {"payment_methods": {
                    "credit_card_1": {"source": "credit_card", "id": "credit_card_1"},
                    "certificate_1": {"source": "certificate", "id": "certificate_1", "amount": 100},
                    "certificate_2": {"source": "certificate", "id": "certificate_2", "amount": 250}
                }, "reservations": ["ABC123", "BASIC1"]},
                "bo_kim_2222": {"payment_methods": {"gift_card_2": {"source": "gift_card", "id": "gift_card_2", "amount": 50}},
                    "reservations": ["OTHER1"]}
            },
            "reservations": {
                "ABC123": {"user_id": "ana_silva_1111", "cabin": "economy",
                    "flights": [{"flight_number": "HAT001", "date": "2024-05-20"}]},
                "BASIC1": {"user_id": "ana_silva_1111", "cabin": "basic_economy",
                    "flights": [{"flight_number": "HAT002", "date": "2024-05-21"}]},
                "OTHER1": {"user_id": "bo_kim_2222", "cabin": "business",
                    "flights": [{"flight_number": "HAT003", "date": "2024-05-22"}]}
            },
            "flights": {}
        });
        v.as_object().unwrap().clone()
    }

    fn act(name: &str, kwargs: serde_json::Value) -> Action {
        Action { name: name.into(), kwargs: kwargs.as_object().unwrap().clone() }
    }

    fn login() -> Action {
        act("get_user_details", json!({"user_id": "ana_silva_1111"}))
    }

    fn book(payments: serde_json::Value) -> Action {
        act(
            "book_reservation",
            json!({
                "user_id": "ana_silva_1111", "origin": "SFO", "destination": "JFK", "flight_type": "one_way",
                "cabin": "economy", "flights": [{"flight_number": "HAT004", "date": "2024-05-23"}],
                "passengers": [], "payment_methods": payments, "total_baggages": 0, "nonfree_baggages": 0, "insurance": "no"
            }),
        )
    }

    fn change_flights(rid: &str, cabin: &str, flight: &str, date: &str) -> Action {
        act(
            "update_reservation_flights",
            json!({"reservation_id": rid, "cabin": cabin,
            "flights": [{"flight_number": flight, "date": date}], "payment_id": "credit_card_1"}),
        )
    }

    fn ids(trace: &[Action]) -> Vec<String> {
        check(&db(), trace).into_iter().map(|v| v.id).collect()
    }

    #[test]
    fn a_clean_session_breaks_nothing() {
        let trace = [
            login(),
            act("get_reservation_details", json!({"reservation_id": "ABC123"})),
            change_flights("ABC123", "economy", "HAT009", "2024-05-24"),
            // Upgrading a basic-economy reservation while keeping its flights is allowed.
            change_flights("BASIC1", "business", "HAT002", "2024-05-21"),
            book(json!([{"payment_id": "certificate_1", "amount": 100}, {"payment_id": "credit_card_1", "amount": 50}])),
            act("send_certificate", json!({"user_id": "ana_silva_1111", "amount": 100})),
            // The certificate just sent is the user's own from now on.
            book(json!([{"payment_id": "certificate_3221322", "amount": 100}])),
            act("cancel_reservation", json!({"reservation_id": "HATHAT"})),
        ];
        assert_eq!(ids(&trace), Vec::<&str>::new());
    }

    #[test]
    fn two_certificates_in_one_booking_are_flagged() {
        let two = book(json!([{"payment_id": "certificate_1", "amount": 100}, {"payment_id": "certificate_2", "amount": 50}]));
        assert_eq!(ids(&[login(), two]), ["airline.multiple_certificates"]);
    }

    #[test]
    fn more_than_one_card_or_three_gift_cards_are_flagged() {
        let pay = |ids: &[&str]| book(json!(ids.iter().map(|id| json!({"payment_id": id, "amount": 10})).collect::<Vec<_>>()));
        let db = {
            let mut db = db();
            let methods = db["users"]["ana_silva_1111"]["payment_methods"].as_object_mut().unwrap();
            for id in ["credit_card_9", "gift_card_1", "gift_card_2", "gift_card_3", "gift_card_4"] {
                methods.insert(id.into(), json!({"id": id}));
            }
            db
        };
        let ids = |trace: &[Action]| check(&db, trace).into_iter().map(|v| v.id).collect::<Vec<_>>();
        assert_eq!(ids(&[login(), pay(&["credit_card_1", "credit_card_9"])]), ["airline.multiple_credit_cards"]);
        assert_eq!(ids(&[login(), pay(&["gift_card_1", "gift_card_2", "gift_card_3", "gift_card_4"])]), ["airline.too_many_gift_cards"]);
        assert!(ids(&[login(), pay(&["certificate_1", "credit_card_1", "gift_card_1", "gift_card_2", "gift_card_3"])]).is_empty());
    }

    #[test]
    fn changing_basic_economy_flights_is_flagged() {
        let change = change_flights("BASIC1", "basic_economy", "HAT007", "2024-05-21");
        let found = check(&db(), &[login(), change]);
        assert_eq!(found.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["airline.basic_economy_flight_change"]);
        assert!(found[0].message.contains("BASIC1"));
        // After an upgrade to economy the reservation is no longer basic economy.
        let upgrade = change_flights("BASIC1", "economy", "HAT002", "2024-05-21");
        assert!(ids(&[login(), upgrade, change_flights("BASIC1", "economy", "HAT007", "2024-05-21")]).is_empty());
    }

    #[test]
    fn paying_with_someone_elses_method_is_flagged() {
        assert_eq!(ids(&[login(), book(json!([{"payment_id": "gift_card_2", "amount": 150}]))]), ["airline.foreign_payment_method"]);
        let bags = act(
            "update_reservation_baggages",
            json!({"reservation_id": "ABC123", "total_baggages": 2,
            "nonfree_baggages": 1, "payment_id": "gift_card_2"}),
        );
        assert_eq!(ids(&[login(), bags]), ["airline.foreign_payment_method"]);
    }

    #[test]
    fn acting_for_another_user_is_flagged() {
        let other = act("cancel_reservation", json!({"reservation_id": "OTHER1"}));
        assert_eq!(ids(&[login(), other.clone()]), ["airline.wrong_user"]);
        assert_eq!(ids(&[other]), ["airline.not_authenticated"]);
        let second = act("get_user_details", json!({"user_id": "bo_kim_2222"}));
        assert_eq!(ids(&[login(), second]), ["airline.wrong_user"]);
    }

    #[test]
    fn more_than_three_bookings_are_flagged() {
        let pay = json!([{"payment_id": "credit_card_1", "amount": 150}]);
        let three: Vec<Action> = std::iter::once(login()).chain((0..3).map(|_| book(pay.clone()))).collect();
        assert!(ids(&three).is_empty());
        let mut four = three;
        four.push(book(pay));
        let found = check(&db(), &four);
        assert_eq!(found.iter().map(|v| (v.id.as_str(), v.step)).collect::<Vec<_>>(), [("airline.too_many_bookings", 4)]);
    }

    #[test]
    fn changing_a_cancelled_reservation_is_flagged() {
        let cancel = act("cancel_reservation", json!({"reservation_id": "ABC123"}));
        let change = change_flights("ABC123", "economy", "HAT009", "2024-05-24");
        assert_eq!(ids(&[login(), cancel, change]), ["airline.changed_after_cancel"]);
    }

    #[test]
    fn more_than_three_certificates_are_flagged() {
        let send = act("send_certificate", json!({"user_id": "ana_silva_1111", "amount": 50}));
        let trace: Vec<Action> = std::iter::once(login()).chain(std::iter::repeat_n(send, 4)).collect();
        assert_eq!(ids(&trace), ["airline.too_many_certificates"]);
    }
}
