//! Reverse recombination: two or three validated blueprints of one user become one longer task.
//!
//! Recombination needs blueprints of the same user on the same database, so with it on the run
//! groups consecutive attempts: the [`GROUP`] attempts of a group share their first attempt's
//! database and user (each still samples its own tools, persona and examples). When the last
//! attempt of a group is committed and the output is short of its recombined share ([`due`]),
//! the group's validated blueprints are combined:
//!
//! 1. their actions are concatenated in task order and their outputs merged ([`combine`]);
//! 2. the result is replayed and policy-checked on the group's database before any model is
//!    asked, because this is where the parts can conflict (one part cancels an order that
//!    another returns) and the check costs nothing;
//! 3. the recombination writer (`recombination.jinja`, on the generator's model) writes one
//!    instruction that asks for all of it;
//! 4. the format check and the reviewer committee judge the whole, as they judge any blueprint.
//!
//! There is no revision loop: a recombination that fails is recorded with its stage and reason.

use serde_json::{json, Value};

use crate::env::{Action, Environment, ToolKind};
use crate::prompts::Prompts;
use crate::roles::{Caller, Models, Who};
use crate::samplers::{self, policy};
use crate::validate::{self, format, Failure, Stage};

use super::attempt::{self, Attempt, AttemptConfig};
use super::schema::instruction_schema;
use super::Blueprint;

/// Attempts per group, which is also the most blueprints one recombination combines.
pub const GROUP: usize = 3;

/// The prompt the recombination writer gets.
const TEMPLATE: &str = "recombination.jinja";

/// The order of a recombination's stages: the replay (execution, policy) comes before the
/// writer (generation) and the committee.
pub const STAGES: [Stage; 6] = [Stage::Execution, Stage::Policy, Stage::Generation, Stage::Format, Stage::Committee, Stage::Duplicate];

/// Whether attempt group `group` is recombined: `share` of the groups, spread evenly from the
/// first (group g is when `⌈(g+1)·share⌉` steps up). A rule on the group's index alone, not on
/// what validated so far, so that every shard of a run decides it alike; a share of 0 never
/// fires and a share of 1 always does.
pub fn due(share: f64, group: usize) -> bool {
    // The tolerance keeps exact products (5 × 0.2) from rounding up to the next integer.
    let steps = |g: usize| (g as f64 * share - 1e-9).ceil();
    steps(group + 1) > steps(group)
}

/// The `parts` (id and blueprint, in task order) as one blueprint without an instruction: the
/// actions concatenated and the outputs merged. A read action that repeats an earlier one
/// exactly (the second part identifying the same user again) is dropped: it changes nothing and
/// only lengthens the task. Writes are all kept, so conflicts between the parts stay visible.
pub fn combine(domain: &dyn Environment, parts: &[(String, Blueprint)]) -> Blueprint {
    let mut actions: Vec<Action> = Vec::new();
    let mut outputs: Vec<String> = Vec::new();
    for (_, bp) in parts {
        for action in &bp.actions {
            let read = domain.tool(&action.name).is_some_and(|t| t.kind == ToolKind::Read);
            if !(read && actions.contains(action)) {
                actions.push(action.clone());
            }
        }
        for output in &bp.outputs {
            if !outputs.contains(output) {
                outputs.push(output.clone());
            }
        }
    }
    let ids: Vec<&str> = parts.iter().map(|(id, _)| id.as_str()).collect();
    let thoughts: Vec<&str> = parts.iter().map(|(_, bp)| bp.thought.trim()).collect();
    Blueprint {
        thought: format!("Combines {}. {}", ids.join(" + "), thoughts.join(" Then: ")),
        instruction: String::new(),
        actions,
        outputs,
    }
}

/// Recombines `parts`, validated blueprints of the group led by task `lead`, in task order.
/// Model calls are seeded under the lead's task index with the label "recombination". As in
/// an attempt, only a broken setup is an `Err`; a failed recombination is a failed outcome.
pub fn run(
    models: &Models,
    prompts: &Prompts,
    config: &AttemptConfig,
    pool: &[Value],
    lead: usize,
    parts: &[(String, Blueprint)],
) -> anyhow::Result<Attempt> {
    let domain = config.domain;
    let (data_seed, db) = attempt::world(config, lead)?;
    let mut context = samplers::sample(domain, &db, config.run_seed, lead, lead, pool)?;
    let mut draft = combine(domain, parts);
    context.tools = Vec::new();
    for tool in draft.actions.iter().filter_map(|a| domain.tool(&a.name)) {
        if !context.tools.contains(&tool.name.as_str()) {
            context.tools.push(&tool.name);
        }
    }
    context.policy = policy::excerpt(domain.policy(), &context.tools);
    let mut caller = Caller::new(models, prompts, config.run_seed, lead);

    let outcome = match validate::replay(domain, &db, &draft) {
        Err(failure) if failure.fatal => anyhow::bail!("the environment cannot run: {}", failure.reason),
        Err(failure) => Err(failure),
        Ok(executed) => {
            let prompt = json!({
                "domain": domain.name(),
                "user_id": context.data.user_id,
                "persona": context.persona.as_ref().map(|p| p.to_string()),
                "parts": parts.iter().map(|(_, bp)| json!({"instruction": bp.instruction, "outputs": bp.outputs})).collect::<Vec<_>>(),
                "actions": draft.actions,
                "outputs": draft.outputs,
            });
            // A template that does not render is a setup error, not a model error.
            prompts.render(TEMPLATE, &prompt)?;
            let written = caller
                .ask(Who::Recombiner, &config.generator, TEMPLATE, &prompt, &["recombination"], Some(instruction_schema()))
                .map_err(|e| Failure::new(Stage::Generation, format!("{e:#}")))
                .and_then(|reply| {
                    serde_json::from_str::<Value>(&reply.text)
                        .ok()
                        .and_then(|v| v.get("instruction").and_then(Value::as_str).map(str::to_string))
                        .ok_or_else(|| {
                            Failure::new(Stage::Generation, "the recombination writer's output is not an {\"instruction\": ...} object")
                        })
                });
            written.and_then(|instruction| {
                draft.instruction = instruction;
                format::check(domain, &draft)?;
                validate::review(domain, &draft, executed, &context.policy, &config.committee, &mut caller, "recombination")
            })
        }
    };
    caller.available()?;
    Ok(Attempt {
        task: lead,
        recombined_from: parts.iter().map(|(id, _)| id.clone()).collect(),
        data_seed,
        data_hash: crate::env::state::hash(&db),
        context,
        draft: Some(draft),
        first_failure: outcome.as_ref().err().map(|f| f.stage),
        outcome,
        rounds: 0,
        feedback: Vec::new(),
        tokens: caller.prompt_tokens + caller.completion_tokens,
        trace: caller.trace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{domain, Args};

    fn action(name: &str, arg: &str) -> Action {
        let mut kwargs = Args::new();
        kwargs.insert("order_id".into(), json!(arg));
        Action { name: name.into(), kwargs }
    }

    fn bp(thought: &str, actions: Vec<Action>, outputs: &[&str]) -> Blueprint {
        Blueprint { thought: thought.into(), instruction: "i".into(), actions, outputs: outputs.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn combining_concatenates_writes_drops_repeated_reads_and_merges_outputs() {
        let retail = domain("retail").unwrap();
        let find = action("get_order_details", "#W1");
        let a = bp("cancel it", vec![find.clone(), action("cancel_pending_order", "#W1")], &["pending", "12.50"]);
        let b = bp(
            "return it",
            vec![find.clone(), action("get_order_details", "#W2"), action("return_delivered_order_items", "#W1")],
            &["12.50", "refund"],
        );
        let c = combine(retail, &[("x-0".into(), a), ("x-1".into(), b)]);
        let names: Vec<&str> = c.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["get_order_details", "cancel_pending_order", "get_order_details", "return_delivered_order_items"]);
        assert_eq!(c.actions[2], action("get_order_details", "#W2"), "only the exact repeat is dropped");
        assert_eq!(c.outputs, ["pending", "12.50", "refund"]);
        assert_eq!(c.thought, "Combines x-0 + x-1. cancel it Then: return it");
        assert!(c.instruction.is_empty(), "the writer supplies the instruction");
        // A repeated write is kept: replaying it is what exposes the conflict.
        let twice = bp("t", vec![action("cancel_pending_order", "#W1")], &[]);
        assert_eq!(combine(retail, &[("a".into(), twice.clone()), ("b".into(), twice)]).actions.len(), 2);
    }

    #[test]
    fn recombination_is_due_for_an_even_share_of_the_groups() {
        assert!((0..100).all(|g| !due(0.0, g)), "a share of 0 turns it off");
        assert!((0..100).all(|g| due(1.0, g)));
        let picked: Vec<usize> = (0..10).filter(|&g| due(0.2, g)).collect();
        assert_eq!(picked, [0, 5], "every fifth group, from the first");
        for share in [0.1, 0.25, 0.5, 0.7] {
            let n = (0..1000).filter(|&g| due(share, g)).count();
            assert_eq!(n, (1000.0 * share) as usize, "share {share}");
        }
    }
}
