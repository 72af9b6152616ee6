//! The airline world: flights between the twenty airports the airline tools list, flown every
//! day of May 2024; members with saved passengers and payment methods; reservations.
//!
//! The calendar is τ-bench's: the tools treat 2024-05-15 15:00 EST as "now", so flights before
//! that have landed (or were cancelled), flights in the air are flying, later ones today are on
//! time or delayed, and from 2024-05-16 on every flight is bookable with seats and prices.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::env::generate::words::{self, pick};
use crate::env::generate::{digits, Ids};
use crate::env::Db;

pub const USERS: usize = 500;
pub const FLIGHTS: usize = 300;
pub const RESERVATIONS: usize = 2000;
pub const CABINS: &[&str] = &["basic_economy", "economy", "business"];
/// The first and last day of May 2024 on which flights are scheduled.
pub const FIRST_DAY: i64 = 1;
pub const LAST_DAY: i64 = 30;
/// "Now", as minutes since 2024-05-01 00:00: 2024-05-15 15:00.
const NOW: i64 = 14 * DAY + 15 * 60;
const DAY: i64 = 24 * 60;
/// Ids the airline tools assign themselves; never generated.
const TOOL_RESERVATION_IDS: &[&str] = &["HATHAT", "HATHAU", "HATHAV"];
const TOOL_CERTIFICATE_IDS: &[&str] = &["certificate_3221322", "certificate_3221323", "certificate_3221324"];
pub const INSURANCE_PER_PASSENGER: i64 = 30;
pub const PRICE_PER_EXTRA_BAG: i64 = 50;

/// The airports served, with rough coordinates (latitude, longitude) for flight durations.
const AIRPORTS: &[(&str, f64, f64)] = &[
    ("SFO", 37.6, -122.4),
    ("JFK", 40.6, -73.8),
    ("LAX", 33.9, -118.4),
    ("ORD", 42.0, -87.9),
    ("DFW", 32.9, -97.0),
    ("DEN", 39.9, -104.7),
    ("SEA", 47.4, -122.3),
    ("ATL", 33.6, -84.4),
    ("MIA", 25.8, -80.3),
    ("BOS", 42.4, -71.0),
    ("PHX", 33.4, -112.0),
    ("IAH", 30.0, -95.3),
    ("LAS", 36.1, -115.2),
    ("MCO", 28.4, -81.3),
    ("EWR", 40.7, -74.2),
    ("CLT", 35.2, -80.9),
    ("MSP", 44.9, -93.2),
    ("DTW", 42.2, -83.4),
    ("PHL", 39.9, -75.2),
    ("LGA", 40.8, -73.9),
];

/// Checked bags each passenger flies with free of charge, by membership and cabin.
pub fn free_bags(membership: &str, cabin: &str) -> i64 {
    match (cabin, membership) {
        ("business", "gold") => 3,
        ("business", _) => 2,
        ("economy", "gold") => 2,
        ("economy", _) => 1,
        (_, "regular") => 0,
        _ => 1,
    }
}

struct Flight {
    number: String,
    origin: usize,
    destination: usize,
    /// Scheduled departure and duration, in minutes.
    departs: i64,
    duration: i64,
    /// The flight's usual economy fare; the other cabins and each day vary around it.
    fare: i64,
    dates: Map<String, Value>,
}

struct User {
    id: String,
    membership: &'static str,
    first: &'static str,
    last: &'static str,
    dob: String,
    saved: Vec<Value>,
    payers: Vec<String>,
    reservations: Vec<String>,
}

/// A fresh world; the same generator state gives the same bytes.
pub(super) fn generate(rng: &mut ChaCha8Rng) -> Db {
    let mut ids = Ids::default();
    ids.reserve(TOOL_RESERVATION_IDS);
    ids.reserve(TOOL_CERTIFICATE_IDS);
    let flights = flights(rng, &mut ids);
    let (mut users, mut user_json) = users(rng, &mut ids);
    let mut reservations = Map::new();
    while reservations.len() < RESERVATIONS {
        let u = rng.random_range(0..users.len());
        if let Some((id, r)) = reservation(rng, &mut ids, &flights, &users[u]) {
            users[u].reservations.push(id.clone());
            reservations.insert(id, r);
        }
    }
    for user in &users {
        if let Some(u) = user_json.get_mut(&user.id) {
            u["reservations"] = json!(user.reservations);
        }
    }
    let mut flight_json = Map::new();
    for f in flights {
        let arrives = f.departs + f.duration;
        let arrival = if arrives >= DAY { format!("{}+1", clock(arrives - DAY)) } else { clock(arrives) };
        flight_json.insert(
            f.number.clone(),
            json!({
                "flight_number": f.number,
                "origin": AIRPORTS[f.origin].0,
                "destination": AIRPORTS[f.destination].0,
                "scheduled_departure_time_est": clock(f.departs),
                "scheduled_arrival_time_est": arrival,
                "dates": f.dates,
            }),
        );
    }
    let mut db = Db::new();
    db.insert("flights".into(), Value::Object(flight_json));
    db.insert("reservations".into(), Value::Object(reservations));
    db.insert("users".into(), Value::Object(std::mem::take(&mut user_json)));
    db
}

/// 300 flights on routes that always run both ways, so every trip has a way back.
fn flights(rng: &mut ChaCha8Rng, ids: &mut Ids) -> Vec<Flight> {
    let n = AIRPORTS.len();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let add = |a: usize, b: usize, pairs: &mut Vec<(usize, usize)>| {
        let pair = (a.min(b), a.max(b));
        if a != b && !pairs.contains(&pair) {
            pairs.push(pair);
        }
    };
    for a in 0..n {
        for _ in 0..2 {
            add(a, rng.random_range(0..n), &mut pairs);
        }
    }
    while pairs.len() < 54 {
        add(rng.random_range(0..n), rng.random_range(0..n), &mut pairs);
    }
    let routes: Vec<(usize, usize)> = pairs.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
    let mut flights: Vec<Flight> = (0..FLIGHTS)
        .map(|i| {
            // Every route gets two flights, the rest go to random routes.
            let (origin, destination) =
                if i < 2 * routes.len() { routes[i % routes.len()] } else { routes[rng.random_range(0..routes.len())] };
            let km = distance_km(origin, destination);
            let duration = (((40.0 + km / 13.0) / 30.0).round() as i64).max(2) * 30;
            let departs = rng.random_range(10..48) * 30;
            let fare = (100.0 + (km / 45.0).min(95.0) + rng.random_range(-5.0..5.0)).round() as i64;
            let number = ids.fresh(rng, |r| format!("HAT{:03}", r.random_range(1..1000)));
            let mut f = Flight { number, origin, destination, departs, duration, fare, dates: Map::new() };
            f.dates = (FIRST_DAY..=LAST_DAY).map(|day| (date(day), day_status(rng, &f, day))).collect();
            f
        })
        .collect();
    flights.sort_by(|a, b| a.number.cmp(&b.number));
    flights
}

/// Great-circle distance between two airports.
fn distance_km(a: usize, b: usize) -> f64 {
    let (_, lat1, lon1) = AIRPORTS[a];
    let (_, lat2, lon2) = AIRPORTS[b];
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// A cabin's fare on one day: the flight's economy fare scaled for the cabin, with the day's
/// demand on top, kept inside each cabin's band.
fn fare(rng: &mut ChaCha8Rng, f: &Flight, cabin: &str) -> i64 {
    let demand = rng.random_range(0.8..1.2);
    let (scale, lo, hi) = match cabin {
        "basic_economy" => (0.55, 50.0, 100.0),
        "economy" => (1.0, 100.0, 200.0),
        _ => (2.4, 200.0, 500.0),
    };
    (f.fare as f64 * scale * demand).clamp(lo, hi).round() as i64
}

/// What the flight did, or will do, on one day, in τ-bench's per-date shape.
fn day_status(rng: &mut ChaCha8Rng, f: &Flight, day: i64) -> Value {
    let departs = (day - 1) * DAY + f.departs;
    let arrives = departs + f.duration;
    let dep_late = rng.random_range(-10..45);
    let arr_late = dep_late + rng.random_range(-20..20);
    if day > 15 {
        let seats: Map<String, Value> = CABINS.iter().map(|c| (c.to_string(), json!(rng.random_range(0..=20)))).collect();
        let prices: Map<String, Value> = CABINS.iter().map(|c| (c.to_string(), json!(fare(rng, f, c)))).collect();
        return json!({"status": "available", "available_seats": seats, "prices": prices});
    }
    if arrives + arr_late <= NOW {
        if rng.random_bool(0.07) {
            return json!({"status": "cancelled"});
        }
        return json!({
            "status": "landed",
            "actual_departure_time_est": stamp(departs + dep_late),
            "actual_arrival_time_est": stamp(arrives + arr_late),
        });
    }
    if departs + dep_late <= NOW {
        return json!({
            "status": "flying",
            "actual_departure_time_est": stamp(departs + dep_late),
            "estimated_arrival_time_est": stamp(arrives + arr_late),
        });
    }
    let (status, late) = if rng.random_bool(0.3) { ("delayed", rng.random_range(30..240)) } else { ("on time", 0) };
    json!({
        "status": status,
        "estimated_departure_time_est": stamp(departs + late),
        "estimated_arrival_time_est": stamp(arrives + late),
    })
}

fn users(rng: &mut ChaCha8Rng, ids: &mut Ids) -> (Vec<User>, Map<String, Value>) {
    let mut users = Vec::with_capacity(USERS);
    let mut json_users = Map::new();
    for _ in 0..USERS {
        let who = words::person(rng);
        let stem = format!("{}_{}", who.first.to_lowercase(), who.last.to_lowercase());
        let id = ids.fresh(rng, |r| format!("{stem}_{}", r.random_range(1000..10000)));
        let dob = words::date_of_birth(rng, 1950, 2003);
        let address = words::address(rng);
        let email = words::email(rng, &who);
        let methods = payment_methods(rng, ids);
        let saved: Vec<Value> = (0..rng.random_range(0..=2))
            .map(|_| {
                let p = words::person(rng);
                json!({"first_name": p.first, "last_name": p.last, "dob": words::date_of_birth(rng, 1940, 2020)})
            })
            .collect();
        let membership = pick(rng, &["regular", "silver", "gold"]);
        let payers =
            methods.values().filter(|m| m["source"] != "certificate").filter_map(|m| m["id"].as_str()).map(str::to_string).collect();
        json_users.insert(
            id.clone(),
            json!({
                "name": {"first_name": who.first, "last_name": who.last},
                "address": address,
                "email": email,
                "dob": dob,
                "payment_methods": methods,
                "saved_passengers": saved,
                "membership": membership,
                "reservations": [],
            }),
        );
        users.push(User { id, membership, first: who.first, last: who.last, dob, saved, payers, reservations: Vec::new() });
    }
    (users, json_users)
}

/// One to four payment methods, at least one of them a credit card or gift card (certificates
/// alone cannot pay for changes).
fn payment_methods(rng: &mut ChaCha8Rng, ids: &mut Ids) -> Map<String, Value> {
    let n = rng.random_range(1..=4);
    let mut methods = Map::new();
    for i in 0..n {
        let kind = if i == 0 { pick(rng, &["credit_card", "gift_card"]) } else { pick(rng, &["credit_card", "gift_card", "certificate"]) };
        let id = ids.fresh(rng, |r| format!("{kind}_{}", digits(r, 7)));
        let method = match kind {
            "credit_card" => json!({
                "source": "credit_card",
                "brand": pick(rng, &["visa", "mastercard", "amex"]),
                "last_four": format!("{:04}", rng.random_range(0..10000)),
                "id": id,
            }),
            "gift_card" => json!({"source": "gift_card", "amount": rng.random_range(0..=300), "id": id}),
            _ => json!({"source": "certificate", "amount": pick(rng, &[100, 150, 200, 250, 500]), "id": id}),
        };
        methods.insert(id, method);
    }
    methods
}

/// One leg of a trip: a flight on a day.
type Leg<'a> = (&'a Flight, i64);

/// A reservation for `user` with its id, or `None` when the random itinerary cannot be completed (the
/// caller simply draws again).
fn reservation(rng: &mut ChaCha8Rng, ids: &mut Ids, flights: &[Flight], user: &User) -> Option<(String, Value)> {
    let round_trip = rng.random_bool(0.5);
    let out_day = rng.random_range(FIRST_DAY..=if round_trip { LAST_DAY - 3 } else { LAST_DAY });
    let first = &flights[rng.random_range(0..flights.len())];
    let outbound = trip(rng, flights, first, out_day)?;
    let mut legs = outbound.clone();
    if round_trip {
        let back_day = out_day + rng.random_range(1..=3);
        legs.extend(return_trip(rng, flights, &outbound, back_day)?);
    }
    let cabin = pick(rng, CABINS);
    let passengers = passengers(rng, user);
    let count = passengers.len() as i64;
    let insurance = if rng.random_bool(0.5) { "yes" } else { "no" };
    let total_bags = rng.random_range(0..=2 * count);
    let nonfree = (total_bags - free_bags(user.membership, cabin) * count).max(0);
    let mut per_person = 0;
    let flights_json: Vec<Value> = legs
        .iter()
        .map(|&(f, day)| {
            let listed = f.dates.get(&date(day)).and_then(|d| d["prices"][cabin].as_i64());
            let price = listed.unwrap_or_else(|| fare(rng, f, cabin));
            per_person += price;
            json!({
                "origin": AIRPORTS[f.origin].0,
                "destination": AIRPORTS[f.destination].0,
                "flight_number": f.number,
                "date": date(day),
                "price": price,
            })
        })
        .collect();
    let total = per_person * count + if insurance == "yes" { INSURANCE_PER_PASSENGER * count } else { 0 } + PRICE_PER_EXTRA_BAG * nonfree;
    let payer = &user.payers[rng.random_range(0..user.payers.len())];
    let mut payments = vec![json!({"payment_id": payer, "amount": total})];
    // Booked up to two weeks ahead, and never after "now".
    let first_departure = (out_day - 1) * DAY + legs[0].0.departs;
    let latest = first_departure.min(NOW) - 60;
    let created = rng.random_range(latest - 14 * DAY..latest);
    let id = ids.fresh(rng, |r| (0..6).map(|_| pick(r, ID_CHARS) as char).collect());
    let destination = AIRPORTS[outbound[outbound.len() - 1].0.destination].0;
    let mut r = json!({
        "reservation_id": id,
        "user_id": user.id,
        "origin": AIRPORTS[legs[0].0.origin].0,
        "destination": destination,
        "flight_type": if round_trip { "round_trip" } else { "one_way" },
        "cabin": cabin,
        "flights": flights_json,
        "passengers": passengers,
        "payment_history": [],
        "created_at": stamp_seconds(created, rng.random_range(0..60)),
        "total_baggages": total_bags,
        "nonfree_baggages": nonfree,
        "insurance": insurance,
    });
    // A few were cancelled already: the cancel tool refunds every payment and marks them.
    if rng.random_bool(0.05) {
        payments.push(json!({"payment_id": payer, "amount": -total}));
        r["status"] = json!("cancelled");
    }
    r["payment_history"] = json!(payments);
    Some((id, r))
}

const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The outbound trip starting with `first`: direct, or with one connection on the same day.
fn trip<'a>(rng: &mut ChaCha8Rng, flights: &'a [Flight], first: &'a Flight, day: i64) -> Option<Vec<Leg<'a>>> {
    if rng.random_bool(0.65) {
        return Some(vec![(first, day)]);
    }
    let next: Vec<&Flight> = flights.iter().filter(|g| connects(first, g) && g.destination != first.origin).collect();
    let second = next.get(rng.random_range(0..next.len().max(1)))?;
    Some(vec![(first, day), (*second, day)])
}

/// The way back over the reverse of each outbound route, connecting on the same day.
fn return_trip<'a>(rng: &mut ChaCha8Rng, flights: &'a [Flight], outbound: &[Leg<'a>], day: i64) -> Option<Vec<Leg<'a>>> {
    let mut back: Vec<Leg<'a>> = Vec::new();
    for &(f, _) in outbound.iter().rev() {
        let options: Vec<&Flight> = flights
            .iter()
            .filter(|g| g.origin == f.destination && g.destination == f.origin)
            .filter(|g| back.last().is_none_or(|(prev, _)| connects(prev, g)))
            .collect();
        back.push((*options.get(rng.random_range(0..options.len().max(1)))?, day));
    }
    Some(back)
}

/// Whether `g` can be caught after `f` on the same day (f lands before midnight, an hour to spare).
fn connects(f: &Flight, g: &Flight) -> bool {
    let lands = f.departs + f.duration;
    g.origin == f.destination && lands < DAY && g.departs >= lands + 60
}

/// One to four travellers: usually the member, then saved passengers, then others.
fn passengers(rng: &mut ChaCha8Rng, user: &User) -> Vec<Value> {
    let count = match rng.random_range(0..100) {
        0..=44 => 1,
        45..=77 => 2,
        78..=93 => 3,
        _ => 4,
    };
    let mut people = Vec::new();
    if rng.random_bool(0.8) {
        people.push(json!({"first_name": user.first, "last_name": user.last, "dob": user.dob}));
    }
    people.extend(user.saved.iter().cloned());
    while people.len() < count {
        let p = words::person(rng);
        people.push(json!({"first_name": p.first, "last_name": p.last, "dob": words::date_of_birth(rng, 1940, 2020)}));
    }
    people.truncate(count);
    people
}

/// `2024-05-DD` for a day of May.
fn date(day: i64) -> String {
    format!("2024-05-{day:02}")
}

/// `HH:MM:SS` for minutes after midnight.
fn clock(minutes: i64) -> String {
    format!("{:02}:{:02}:00", minutes / 60, minutes % 60)
}

/// `YYYY-MM-DDTHH:MM:SS` for minutes since 2024-05-01 00:00 (late April to early June).
fn stamp(minutes: i64) -> String {
    stamp_seconds(minutes, 0)
}

fn stamp_seconds(minutes: i64, seconds: i64) -> String {
    let day = minutes.div_euclid(DAY) + 1;
    let (month, dom) = match day {
        ..=0 => (4, day + 30),
        1..=31 => (5, day),
        _ => (6, day - 31),
    };
    let m = minutes.rem_euclid(DAY);
    format!("2024-{month:02}-{dom:02}T{}:{seconds:02}", &clock(m)[..5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_cross_month_boundaries() {
        assert_eq!(stamp(0), "2024-05-01T00:00:00");
        assert_eq!(stamp(NOW), "2024-05-15T15:00:00");
        assert_eq!(stamp(-90), "2024-04-30T22:30:00");
        assert_eq!(stamp(31 * DAY + 61), "2024-06-01T01:01:00");
        assert_eq!(clock(23 * 60 + 30), "23:30:00");
    }

    #[test]
    fn baggage_allowance_grows_with_cabin_and_membership() {
        for m in ["regular", "silver", "gold"] {
            assert!(free_bags(m, "basic_economy") <= free_bags(m, "economy"));
            assert!(free_bags(m, "economy") <= free_bags(m, "business"));
        }
        assert_eq!(free_bags("regular", "basic_economy"), 0);
        assert_eq!(free_bags("gold", "business"), 3);
    }
}
