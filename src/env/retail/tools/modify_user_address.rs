//! `modify_user_address`: change a customer's default address.

use serde_json::Value;

use crate::env::lookup::{arg_str, object_mut, table};
use crate::env::retail::records::store;
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

/// Replaces the user's `address` (in place among its keys) and returns the user as JSON.
///
/// Errors: `Error: user not found`.
pub const TOOL: Tool = Tool {
    name: "modify_user_address",
    kind: ToolKind::Write,
    description: "Change a customer's default address on their profile (existing orders keep \
                  theirs). Before calling, read the new address back to the customer and get a clear yes.",
    parameters,
    run,
};

fn parameters() -> Value {
    super::address_schema(("user_id", super::USER_ID_HELP))
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let user_id = arg_str(args, "user_id")?;
    let mut user = table(db, "users")?.get(user_id).cloned().ok_or_else(|| "Error: user not found".to_string())?;
    let address = super::address_from_args(args)?;
    object_mut(&mut user, &format!("user {user_id}"))?.insert("address".into(), address);
    store(db, "users", user_id, user.clone())?;
    Ok(dumps(&user))
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{at, call, db};
    use serde_json::json;

    #[test]
    fn replaces_the_default_address() {
        let mut db = db();
        let kwargs = json!({"user_id": "mira_okafor_3301", "address1": "1 Elm St", "address2": "Fl 2",
                            "city": "Harlow", "state": "NY", "country": "USA", "zip": "10004"});
        let out = call(&mut db, "modify_user_address", kwargs.clone()).unwrap();
        assert_eq!(at(&db, "/users/mira_okafor_3301/address/zip"), "10004");
        assert!(out.contains(r#""address": {"address1": "1 Elm St", "address2": "Fl 2", "city": "Harlow", "state": "NY", "country": "USA", "zip": "10004"}, "email""#), "{out}");
        let mut missing = kwargs;
        missing["user_id"] = json!("nobody");
        assert_eq!(call(&mut db, "modify_user_address", missing).unwrap_err(), "Error: user not found");
    }
}
