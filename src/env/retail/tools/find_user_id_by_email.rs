//! `find_user_id_by_email`: the id of the customer with this email, ignoring case.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, field_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};

/// Returns the bare user id (not JSON) of the first user, in stored order, whose email equals
/// the given one after lowercasing both. Errors: `Error: user not found`.
pub const TOOL: Tool = Tool {
    name: "find_user_id_by_email",
    kind: ToolKind::Read,
    description: "Find a customer's user id from their email address (case does not matter). \
                  This is the first way to identify a customer.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "email": {"type": "string", "description": "The customer's email, e.g. 'ana.silva@example.com'."}
        },
        "required": ["email"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let wanted = arg_str(args, "email")?.to_lowercase();
    for (user_id, profile) in table(db, "users")? {
        if field_str(profile, "email", &format!("user {user_id}"))?.to_lowercase() == wanted {
            return Ok(user_id.clone());
        }
    }
    Err("Error: user not found".into())
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{call, db};
    use serde_json::json;

    #[test]
    fn matches_ignoring_case() {
        let mut db = db();
        let find = |db: &mut _, email: &str| call(db, "find_user_id_by_email", json!({"email": email}));
        assert_eq!(find(&mut db, "t.lindqvist@example.ORG").unwrap(), "tomas_lindqvist_5520");
        assert_eq!(find(&mut db, "mokafor@example.com").unwrap(), "mira_okafor_3301");
        assert_eq!(find(&mut db, "mira@example.net").unwrap_err(), "Error: user not found");
    }
}
