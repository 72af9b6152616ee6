//! Stage 1, format: every part is present and well formed.
//!
//! Outputs must not contain commas: τ-bench strips commas from the agent's text before it
//! looks for an expected output, so an output with a comma could never be matched. A task
//! must ask for something: at least one write action, or at least one output (information and
//! refusal tasks are legitimate and have no writes).

use crate::env::Blueprint;
use crate::env::{Environment, ToolKind};

use super::{Failure, Stage};

pub fn check(domain: &dyn Environment, bp: &Blueprint) -> Result<(), Failure> {
    let fail = |reason: String| Err(Failure::new(Stage::Format, reason));
    if bp.thought.trim().is_empty() {
        return fail("the thought is empty".into());
    }
    if bp.instruction.trim().is_empty() {
        return fail("the instruction is empty".into());
    }
    let mut writes = 0;
    for (i, action) in bp.actions.iter().enumerate() {
        match domain.tool(&action.name) {
            None => return fail(format!("action {i} calls '{}', which is not a {} tool", action.name, domain.name())),
            Some(tool) => writes += (tool.kind == ToolKind::Write) as usize,
        }
    }
    for output in &bp.outputs {
        if output.trim().is_empty() {
            return fail("an expected output is empty".into());
        }
        if output.contains(',') {
            return fail(format!("the expected output {output:?} contains a comma, which can never be matched"));
        }
    }
    if writes == 0 && bp.outputs.is_empty() {
        return fail("the task has neither a write action nor an expected output, so nothing can be checked".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{domain, Action, Args};

    fn bp(actions: &[&str], outputs: &[&str]) -> Blueprint {
        Blueprint {
            thought: "t".into(),
            instruction: "You want things.".into(),
            actions: actions.iter().map(|n| Action { name: n.to_string(), kwargs: Args::new() }).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn format_rules() {
        let d = domain("retail").unwrap();
        assert!(check(d, &bp(&["cancel_pending_order"], &[])).is_ok());
        assert!(check(d, &bp(&["get_order_details"], &["delivered"])).is_ok());
        let err = |b: Blueprint| check(d, &b).unwrap_err().reason;
        assert!(err(bp(&["get_order_details"], &[])).contains("neither a write action"));
        assert!(err(bp(&[], &["1,200"])).contains("comma"));
        assert!(err(bp(&["fly_to_moon"], &["x"])).contains("not a retail tool"));
        let mut empty = bp(&[], &["x"]);
        empty.instruction = " ".into();
        assert!(err(empty).contains("instruction is empty"));
    }
}
