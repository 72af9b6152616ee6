//! The two checks a trajectory must pass to be kept.
//!
//! * **State:** the database the conversation left behind hashes the same as fresh data after
//!   replaying the blueprint's ground-truth actions. Comparing end states, not action lists,
//!   accepts any order or read pattern that reaches the same world.
//! * **Outputs:** each expected output appears in some agent message, compared as τ-bench does:
//!   lower-cased on both sides, with commas removed from the agent's text only (so `1,234.50`
//!   said by the agent matches an expected `1234.50`).

use crate::chat::{Message, Role};
use crate::env::state::{diff, hash, PatchOp};
use crate::env::{Action, Db, EnvError, Environment};

/// The database after replaying `actions` on `fresh`. Tool errors are part of the replay (the
/// state stays as the tool left it); an environment that fails is an error.
pub fn expected_state(env: &dyn Environment, fresh: Db, actions: &[Action]) -> Result<Db, EnvError> {
    let mut session = env.open(fresh)?;
    for action in actions {
        // A refused call is part of the replay: it leaves the state as it was.
        let _observation = session.call(action)?;
    }
    let state = session.state()?.into_owned();
    Ok(state)
}

/// `Ok` when the states hash alike; otherwise the changes that turn the expected state into
/// the actual one.
pub fn check_state(expected: &Db, actual: &Db) -> Result<(), Vec<PatchOp>> {
    if hash(expected) == hash(actual) {
        Ok(())
    } else {
        Err(diff(expected, actual))
    }
}

/// The expected outputs that no assistant message contains.
pub fn missing_outputs(outputs: &[String], messages: &[Message]) -> Vec<String> {
    let said: Vec<String> =
        messages.iter().filter(|m| m.role == Role::Assistant).map(|m| m.content.to_lowercase().replace(',', "")).collect();
    outputs.iter().filter(|o| !said.iter().any(|s| s.contains(&o.to_lowercase()))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_match_lowercased_with_commas_dropped_from_the_agent_text_only() {
        let messages = vec![Message::user("the total is 1,234.50"), Message::assistant("Your refund of $1,234.50 goes to PayPal.")];
        assert!(missing_outputs(&["1234.50".into(), "paypal".into()], &messages).is_empty());
        // Commas stay in the expected output, so this one cannot match.
        assert_eq!(missing_outputs(&["1,234.50".into()], &messages), vec!["1,234.50".to_string()]);
        // Only the agent's messages count.
        assert_eq!(missing_outputs(&["the total".into()], &messages), vec!["the total".to_string()]);
    }

    #[test]
    fn state_check_passes_on_equal_hashes_and_diffs_otherwise() {
        let a: Db = json!({"users": {"u1": {"zip": "12345"}}}).as_object().cloned().unwrap_or_default();
        let mut b = a.clone();
        assert!(check_state(&a, &b).is_ok());
        b["users"]["u1"]["zip"] = json!("54321");
        let ops = check_state(&a, &b).unwrap_err();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].path, "/users/u1/zip");
        assert_eq!(ops[0].value, Some(json!("54321")));
    }
}
