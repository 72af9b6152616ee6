//! `get_user_details`: a user's profile, payment methods and reservation ids.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

pub const TOOL: Tool = Tool {
    name: "get_user_details",
    kind: ToolKind::Read,
    description: "Look up a user's profile by user id: name, contact details, date of birth, \
                  membership tier, stored payment methods (with gift card and certificate \
                  balances), saved passengers and the ids of their reservations.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "user_id": {"type": "string", "description": "The user's id, for example 'ana_ruiz_123'."}
        },
        "required": ["user_id"]
    })
}

/// The user's record as JSON, or `Error: user not found`.
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let user_id = arg_str(args, "user_id")?;
    match table(db, "users")?.get(user_id) {
        Some(user) => Ok(dumps(user)),
        None => Err("Error: user not found".into()),
    }
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
    fn missing_table_is_a_key_error() {
        let mut data = db();
        data.remove("users");
        assert_eq!(call(&TOOL, &mut data, json!({"user_id": "ivy_moreau_101"})).unwrap_err(), "Error: the database has no 'users' table");
    }
}
