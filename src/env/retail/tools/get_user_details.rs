//! `get_user_details`: one customer profile as JSON.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

/// Errors: `Error: user not found`.
pub const TOOL: Tool = Tool {
    name: "get_user_details",
    kind: ToolKind::Read,
    description: "Look up a customer's profile: name, default address, email, saved payment \
                  methods (with gift card balances) and the ids of their orders.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "user_id": {"type": "string", "description": super::USER_ID_HELP}
        },
        "required": ["user_id"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let user_id = arg_str(args, "user_id")?;
    match table(db, "users")?.get(user_id) {
        Some(user) => Ok(dumps(user)),
        None => Err("Error: user not found".into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{call, db};
    use serde_json::json;

    #[test]
    fn returns_the_user_or_not_found() {
        let mut db = db();
        let out = call(&mut db, "get_user_details", json!({"user_id": "tomas_lindqvist_5520"})).unwrap();
        assert!(out.contains(r#""first_name": "Tom\u00e1s""#), "{out}");
        assert!(out.ends_with(r##""orders": ["#R8800201", "#R8800202", "#R8800203", "#R8800204"]}"##), "{out}");
        assert_eq!(call(&mut db, "get_user_details", json!({"user_id": "Tomas"})).unwrap_err(), "Error: user not found");
    }
}
