//! Near-duplicate detection among validated blueprints: the same actions, or an instruction
//! whose normalized word set is nearly the same (Jaccard similarity at or above a threshold).

use std::collections::BTreeSet;

use crate::env::Blueprint;

/// Word-set similarity from which two instructions count as the same task.
pub const JACCARD_THRESHOLD: f64 = 0.9;

/// Lower-cased alphanumeric tokens.
fn tokens(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// Jaccard similarity of the two instructions' token sets (1.0 for two empty sets).
pub fn jaccard(a: &str, b: &str) -> f64 {
    let (a, b) = (tokens(a), tokens(b));
    let union = a.union(&b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

/// The reason `candidate` duplicates one of `accepted`, if it does.
pub fn duplicate_of(candidate: &Blueprint, accepted: &[(String, Blueprint)]) -> Option<String> {
    accepted.iter().find_map(|(id, bp)| {
        if !candidate.actions.is_empty() && bp.actions == candidate.actions {
            Some(format!("same actions as {id}"))
        } else {
            let sim = jaccard(&bp.instruction, &candidate.instruction);
            (sim >= JACCARD_THRESHOLD).then(|| format!("instruction {sim:.2} similar to {id}'s"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Action, Args};

    fn bp(instruction: &str, action: &str) -> Blueprint {
        Blueprint {
            thought: String::new(),
            instruction: instruction.into(),
            actions: vec![Action { name: action.into(), kwargs: Args::new() }],
            outputs: vec![],
        }
    }

    #[test]
    fn duplicates_by_actions_or_instruction() {
        let accepted = vec![("bp-0".to_string(), bp("You want to cancel order #W1 because it was a mistake.", "a"))];
        assert!(duplicate_of(&bp("Something else entirely.", "a"), &accepted).unwrap().contains("same actions"));
        let near = bp("you want to CANCEL order #W1, because it was a mistake!", "b");
        assert!(duplicate_of(&near, &accepted).unwrap().contains("similar"));
        assert!(duplicate_of(&bp("You want to return order #W1 for a refund.", "b"), &accepted).is_none());
        assert_eq!(jaccard("a b", "b a"), 1.0);
        assert_eq!(jaccard("a", "b"), 0.0);
    }
}
