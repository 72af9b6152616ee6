//! The retail tools' place in the API dependency graph: where each required argument comes
//! from, and what each output yields.

use crate::env::graph::{field, Dataflow, GraphHints, Said};

use super::policy::FORBIDDEN_PAIRS;

/// What a call that returns an order makes available.
const ORDER_FIELDS: &[&str] = &["item_id", "product_id", "payment_method_id"];

pub(super) fn hints() -> GraphHints {
    let dataflow = vec![
        Dataflow::new("find_user_id_by_email", vec![("email", Said)], &["user_id"]),
        Dataflow::new("find_user_id_by_name_zip", vec![("first_name", Said), ("last_name", Said), ("zip", Said)], &["user_id"]),
        Dataflow::new("get_user_details", vec![("user_id", field("user_id"))], &["order_id", "payment_method_id"]),
        Dataflow::new("get_order_details", vec![("order_id", field("order_id"))], ORDER_FIELDS),
        Dataflow::new("get_product_details", vec![("product_id", field("product_id"))], &["new_item_id"]),
        Dataflow::new("list_all_product_types", vec![], &["product_id"]),
        Dataflow::new("cancel_pending_order", vec![("order_id", field("order_id")), ("reason", Said)], ORDER_FIELDS),
        Dataflow::new(
            "modify_pending_order_address",
            vec![
                ("order_id", field("order_id")),
                ("address1", Said),
                ("address2", Said),
                ("city", Said),
                ("state", Said),
                ("country", Said),
                ("zip", Said),
            ],
            ORDER_FIELDS,
        ),
        Dataflow::new(
            "modify_pending_order_items",
            vec![
                ("order_id", field("order_id")),
                ("item_ids", field("item_id")),
                ("new_item_ids", field("new_item_id")),
                ("payment_method_id", field("payment_method_id")),
            ],
            ORDER_FIELDS,
        ),
        Dataflow::new(
            "modify_pending_order_payment",
            vec![("order_id", field("order_id")), ("payment_method_id", field("payment_method_id"))],
            ORDER_FIELDS,
        ),
        Dataflow::new(
            "modify_user_address",
            vec![
                ("user_id", field("user_id")),
                ("address1", Said),
                ("address2", Said),
                ("city", Said),
                ("state", Said),
                ("country", Said),
                ("zip", Said),
            ],
            &["order_id", "payment_method_id"],
        ),
        Dataflow::new(
            "return_delivered_order_items",
            vec![("order_id", field("order_id")), ("item_ids", field("item_id")), ("payment_method_id", field("payment_method_id"))],
            ORDER_FIELDS,
        ),
        Dataflow::new(
            "exchange_delivered_order_items",
            vec![
                ("order_id", field("order_id")),
                ("item_ids", field("item_id")),
                ("new_item_ids", field("new_item_id")),
                ("payment_method_id", field("payment_method_id")),
            ],
            ORDER_FIELDS,
        ),
        Dataflow::new("calculate", vec![("expression", Said)], &[]),
        Dataflow::new("think", vec![("thought", Said)], &[]),
        Dataflow::new("transfer_to_human_agents", vec![("summary", Said)], &[]),
    ];
    let forbidden = FORBIDDEN_PAIRS.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    GraphHints { dataflow, forbidden }
}
