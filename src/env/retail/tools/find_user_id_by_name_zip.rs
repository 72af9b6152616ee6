//! `find_user_id_by_name_zip`: the id of the customer with this name and zip code.

use serde_json::{json, Value};

use crate::env::lookup::{arg_str, field, field_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};

/// Returns the bare user id of the first user, in stored order, whose first and last names
/// match ignoring case and whose zip matches exactly. Errors: `Error: user not found`.
pub const TOOL: Tool = Tool {
    name: "find_user_id_by_name_zip",
    kind: ToolKind::Read,
    description: "Find a customer's user id from their first name, last name and zip code. \
                  Use it only when the customer cannot be found by email.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "first_name": {"type": "string", "description": "Given name, e.g. 'Ana'."},
            "last_name": {"type": "string", "description": "Family name, e.g. 'Silva'."},
            "zip": {"type": "string", "description": "Zip code of the customer's default address, e.g. '30301'."}
        },
        "required": ["first_name", "last_name", "zip"]
    })
}

fn run(db: &mut Db, args: &Args) -> ToolResult {
    let first = arg_str(args, "first_name")?.to_lowercase();
    let last = arg_str(args, "last_name")?.to_lowercase();
    let zip = arg_str(args, "zip")?;
    for (user_id, profile) in table(db, "users")? {
        let what = format!("user {user_id}");
        let name = field(profile, "name", &what)?;
        // Checked in τ-bench's order, stopping at the first mismatch as Python's `and` does.
        if field_str(name, "first_name", &what)?.to_lowercase() == first
            && field_str(name, "last_name", &what)?.to_lowercase() == last
            && field(field(profile, "address", &what)?, "zip", &what)?.as_str() == Some(zip)
        {
            return Ok(user_id.clone());
        }
    }
    Err("Error: user not found".into())
}

#[cfg(test)]
mod tests {
    use crate::env::retail::records::fixture::{call, db};
    use serde_json::json;

    fn find(db: &mut crate::env::Db, first: &str, last: &str, zip: &str) -> Result<String, String> {
        call(db, "find_user_id_by_name_zip", json!({"first_name": first, "last_name": last, "zip": zip}))
    }

    #[test]
    fn the_zip_tells_namesakes_apart() {
        let mut db = db();
        assert_eq!(find(&mut db, "mira", "OKAFOR", "10003").unwrap(), "mira_okafor_3301");
        assert_eq!(find(&mut db, "Mira", "Okafor", "97012").unwrap(), "mira_okafor_1187");
        assert_eq!(find(&mut db, "TOMÁS", "lindqvist", "60614").unwrap(), "tomas_lindqvist_5520");
        assert_eq!(find(&mut db, "Mira", "Okafor", "60614").unwrap_err(), "Error: user not found");
    }
}
