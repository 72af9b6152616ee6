//! `send_certificate`: issue a travel certificate to a user as compensation.

use serde_json::{json, Value};

use crate::env::airline::py::{arg, arg_num, num_str};
use crate::env::lookup::{arg_str, field_mut, object_mut, table_mut};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};

pub const TOOL: Tool = Tool {
    name: "send_certificate",
    kind: ToolKind::Write,
    description: "Add a travel certificate worth the given amount to a user's payment methods, \
                  as compensation. Only issue one when the policy allows it, and only for the \
                  amount it allows.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "user_id": {"type": "string", "description": "The id of the user who receives the certificate, for example 'ana_ruiz_123'."},
            "amount": {"type": "number", "description": "The certificate's value in dollars."}
        },
        "required": ["user_id", "amount"]
    })
}

/// The certificate ids τ-bench issues, tried in order: the first one the user does not hold
/// yet is used.
const CERTIFICATE_IDS: [&str; 3] = ["certificate_3221322", "certificate_3221323", "certificate_3221324"];

/// Adds `{"source": "certificate", "amount": amount, "id": id}` to the user's payment methods
/// and confirms in τ-bench's words. Errors: `Error: user not found`; and, our own, an error
/// when the user already holds all three certificate ids (τ-bench returns nothing there).
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let user_id = arg_str(args, "user_id")?;
    let amount_text = num_str(arg_num(args, "amount")?);
    let amount = arg(args, "amount")?.clone();
    let Some(user) = table_mut(db, "users")?.get_mut(user_id) else {
        return Err("Error: user not found".into());
    };
    let methods = object_mut(field_mut(user, "payment_methods", &format!("user {user_id}"))?, "payment methods")?;
    let Some(id) = CERTIFICATE_IDS.iter().find(|id| !methods.contains_key(**id)) else {
        return Err(format!("Error: user {user_id} already holds every certificate id this tool can issue"));
    };
    methods.insert(id.to_string(), json!({"source": "certificate", "amount": amount, "id": id}));
    Ok(format!("Certificate {id} added to user {user_id} with amount {amount_text}."))
}

#[cfg(test)]
mod tests {
    use super::TOOL;
    use crate::env::airline::fixture::{call, db};
    use crate::env::airline::golden;
    use serde_json::json;

    #[test]
    fn matches_tau_bench() {
        golden::check(TOOL.name);
    }

    #[test]
    fn all_certificate_ids_taken_is_our_error() {
        let mut data = db();
        let err = call(&TOOL, &mut data, json!({"user_id": "lena_park_303", "amount": 40})).unwrap_err();
        assert_eq!(err, "Error: user lena_park_303 already holds every certificate id this tool can issue");
        assert_eq!(data, db());
    }
}
