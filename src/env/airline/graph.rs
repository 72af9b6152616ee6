//! The airline tools' place in the API dependency graph: where each required argument comes
//! from, and what each output yields.

use crate::env::graph::{field, Dataflow, GraphHints, Said};

use super::policy::FORBIDDEN_PAIRS;

pub(super) fn hints() -> GraphHints {
    let dataflow = vec![
        Dataflow::new("get_user_details", vec![("user_id", Said)], &["user_id", "reservation_id", "payment_id"]),
        Dataflow::new("get_reservation_details", vec![("reservation_id", field("reservation_id"))], &["user_id", "flight", "payment_id"]),
        Dataflow::new("list_all_airports", vec![], &["airport"]),
        Dataflow::new("search_direct_flight", vec![("origin", Said), ("destination", Said), ("date", Said)], &["flight"]),
        Dataflow::new("search_onestop_flight", vec![("origin", Said), ("destination", Said), ("date", Said)], &["flight"]),
        Dataflow::new(
            "book_reservation",
            vec![
                ("user_id", field("user_id")),
                ("origin", Said),
                ("destination", Said),
                ("flight_type", Said),
                ("cabin", Said),
                ("flights", field("flight")),
                ("passengers", Said),
                ("payment_methods", field("payment_id")),
                ("total_baggages", Said),
                ("nonfree_baggages", Said),
                ("insurance", Said),
            ],
            &["reservation_id"],
        ),
        Dataflow::new("cancel_reservation", vec![("reservation_id", field("reservation_id"))], &["reservation_id"]),
        Dataflow::new(
            "update_reservation_baggages",
            vec![
                ("reservation_id", field("reservation_id")),
                ("total_baggages", Said),
                ("nonfree_baggages", Said),
                ("payment_id", field("payment_id")),
            ],
            &["reservation_id"],
        ),
        Dataflow::new(
            "update_reservation_flights",
            vec![
                ("reservation_id", field("reservation_id")),
                ("cabin", Said),
                ("flights", field("flight")),
                ("payment_id", field("payment_id")),
            ],
            &["reservation_id"],
        ),
        Dataflow::new(
            "update_reservation_passengers",
            vec![("reservation_id", field("reservation_id")), ("passengers", Said)],
            &["reservation_id"],
        ),
        Dataflow::new("send_certificate", vec![("user_id", field("user_id")), ("amount", Said)], &["payment_id"]),
        Dataflow::new("calculate", vec![("expression", Said)], &[]),
        Dataflow::new("think", vec![("thought", Said)], &[]),
        Dataflow::new("transfer_to_human_agents", vec![("summary", Said)], &[]),
    ];
    let forbidden = FORBIDDEN_PAIRS.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    GraphHints { dataflow, forbidden }
}
