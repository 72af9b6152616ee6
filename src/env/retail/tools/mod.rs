//! The retail tools, one per file, and the parameter wording they share.

pub mod cancel_pending_order;
pub mod exchange_delivered_order_items;
pub mod find_user_id_by_email;
pub mod find_user_id_by_name_zip;
pub mod get_order_details;
pub mod get_product_details;
pub mod get_user_details;
pub mod list_all_product_types;
pub mod modify_pending_order_address;
pub mod modify_pending_order_items;
pub mod modify_pending_order_payment;
pub mod modify_user_address;
pub mod return_delivered_order_items;

use serde_json::{json, Map, Value};

use crate::env::lookup::arg_str;
use crate::env::Args;

const ORDER_ID_HELP: &str = "The order id, which starts with '#', e.g. '#R1234567'.";
const USER_ID_HELP: &str = "The customer's user id, e.g. 'ana_silva_1234'.";
const PAYMENT_METHOD_HELP: &str = "A payment method id saved on the customer's profile, e.g. \
    'gift_card_1234567', 'credit_card_1234567' or 'paypal_1234567'; get_user_details lists them.";

/// The six address fields, in the order τ-bench stores them.
const ADDRESS_FIELDS: [(&str, &str); 6] = [
    ("address1", "Street line, e.g. '12 Harbor Lane'."),
    ("address2", "Second line such as a unit or suite; '' when there is none."),
    ("city", "City, e.g. 'Portland'."),
    ("state", "State or region code, e.g. 'OR'."),
    ("country", "Country, e.g. 'USA'."),
    ("zip", "Zip code, e.g. '97201'."),
];

/// Adds the address fields to a schema's `properties`.
fn address_properties(properties: &mut Map<String, Value>) {
    for (name, help) in ADDRESS_FIELDS {
        properties.insert(name.into(), json!({"type": "string", "description": help}));
    }
}

/// The address object built from the arguments, keys in τ-bench's order.
fn address_from_args(args: &Args) -> Result<Value, String> {
    let mut address = Map::new();
    for (name, _) in ADDRESS_FIELDS {
        address.insert(name.into(), json!(arg_str(args, name)?));
    }
    Ok(Value::Object(address))
}

/// A schema whose properties are `leading` followed by the address fields, all required.
fn address_schema(leading: (&str, &str)) -> Value {
    let mut properties = Map::new();
    properties.insert(leading.0.into(), json!({"type": "string", "description": leading.1}));
    address_properties(&mut properties);
    let required: Vec<String> = properties.keys().cloned().collect();
    json!({"type": "object", "properties": properties, "required": required})
}
