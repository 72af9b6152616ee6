//! One attempt: sample a context, generate a blueprint, validate it, and while it fails let the
//! summarizer turn the failure into feedback and the generator revise, up to the round limit.

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Actions, RoleConfig};
use crate::engine::CancelToken;
use crate::env::state::hash;
use crate::env::{Db, Environment};
use crate::prompts::Prompts;
use crate::roles::{Caller, Models, Who};
use crate::samplers::{self, grounded::Sampled, Context};
use crate::seeds::derive;
use crate::validate::{validate, Committee, Failure, Stage, Validated};

use super::schema::{blueprint_schema, writeup_schema};
use super::Blueprint;

/// Everything an attempt needs besides the engine and the prompts.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptConfig {
    #[serde(skip)]
    pub domain: &'static dyn Environment,
    pub run_seed: u64,
    /// Consecutive attempts that share one user and database (1: none share). Reverse
    /// recombination needs blueprints of one user on one database, so it groups attempts.
    pub group: usize,
    /// Revision rounds after the first draft.
    pub rounds: usize,
    /// Where the ground-truth actions come from.
    pub actions: Actions,
    /// With sampled actions, the most writes per task.
    pub max_writes: usize,
    pub generator: RoleConfig,
    pub summarizer: RoleConfig,
    pub committee: Committee,
}

/// The result of one attempt, or of one reverse recombination, before deduplication.
#[derive(Debug)]
pub struct Attempt {
    /// The attempt's task index; for a recombination, its group's first task.
    pub task: usize,
    /// The ids of the blueprints a recombination combined; empty for a generated blueprint.
    pub recombined_from: Vec<String>,
    pub data_seed: u64,
    pub data_hash: String,
    pub context: Context,
    /// The last draft that could be read, if any.
    pub draft: Option<Blueprint>,
    pub outcome: Result<Validated, Failure>,
    /// Where the first draft alone ended: `None` when it passed, else the failing stage.
    pub first_failure: Option<Stage>,
    /// Revision rounds used (0 when the first draft passed).
    pub rounds: usize,
    /// Each revision round's cause and the feedback the generator got for it:
    /// `{round, stage, reason, feedback}`, `round` counting the failed draft from 0.
    pub feedback: Vec<Value>,
    pub trace: Vec<Value>,
    pub tokens: usize,
}

/// The first task of `task`'s group, whose database and user the whole group shares.
pub fn lead(config: &AttemptConfig, task: usize) -> usize {
    task - task % config.group.max(1)
}

/// The generated database of the group led by `lead`, and its seed.
pub fn world(config: &AttemptConfig, lead: usize) -> anyhow::Result<(u64, Db)> {
    let data_seed = derive(config.run_seed, &["blueprint", &lead.to_string(), "data"]);
    Ok((data_seed, config.domain.generate(data_seed)?))
}

/// Runs attempt `task`. Only a broken setup (a template that does not render, a domain
/// without a generator) is an `Err`; everything the model does wrong is a failed outcome.
/// `cancel`, once set, makes the attempt's remaining calls fail at once (see
/// [`Caller::cancellable`]); the run sets it only for attempts it will discard.
pub fn run(
    models: &Models,
    prompts: &Prompts,
    config: &AttemptConfig,
    pool: &[Value],
    task: usize,
    cancel: Option<CancelToken>,
) -> anyhow::Result<Attempt> {
    let domain = config.domain;
    let lead = lead(config, task);
    let (data_seed, db) = world(config, lead)?;
    let mut context = samplers::sample(domain, &db, config.run_seed, task, lead, pool)?;
    let mut caller = Caller::new(models, prompts, config.run_seed, task).cancellable(cancel);
    if config.actions == Actions::Sampled {
        let grounded = samplers::ground(domain, &db, &mut context, config.run_seed, task, config.max_writes);
        let failure = match grounded {
            Err(e) if e.fatal => return Err(anyhow::anyhow!("{e}")),
            Err(e) => Some(Failure::env("sampling the actions", &e)),
            Ok(()) if context.sampled.is_none() => Some(Failure::new(
                Stage::Generation,
                format!("the environment found no write that succeeds for {} within the policy", context.data.user_id),
            )),
            Ok(()) => None,
        };
        if let Some(failure) = failure {
            let first_failure = Some(failure.stage);
            return Ok(Attempt {
                task,
                recombined_from: Vec::new(),
                data_seed,
                data_hash: hash(&db),
                context,
                draft: None,
                outcome: Err(failure),
                first_failure,
                rounds: 0,
                feedback: Vec::new(),
                tokens: 0,
                trace: caller.trace,
            });
        }
    }
    let schema = match &context.sampled {
        Some(sampled) => writeup_schema(&sampled.outputs),
        None => blueprint_schema(domain, &context),
    };
    let tools: Vec<Value> = context.tools.iter().filter_map(|n| domain.tool(n)).map(|t| t.openai_schema()).collect();

    let mut draft: Option<Blueprint> = None;
    let mut feedback: Option<String> = None;
    let mut history = Vec::new();
    let mut first_failure = None;
    let mut round = 0;
    let outcome = loop {
        let prompt = json!({
            "domain": domain.name(),
            "tools": tools,
            "policy": context.policy,
            "records": context.data.records,
            "user_id": context.data.user_id,
            "persona": context.persona.as_ref().map(|p| p.to_string()),
            "examples": context.examples,
            "actions": context.sampled.as_ref().map(|s| &s.actions),
            "results": context.sampled.as_ref().map(|s| &s.results),
            "choices": context.sampled.as_ref().map(|s| &s.outputs),
            "feedback": feedback,
            "previous": draft,
        });
        let label = format!("round-{round}");
        let result = caller
            .ask(Who::Generator, &config.generator, "generator.jinja", &prompt, &[&label], Some(schema.clone()))
            .map_err(|e| Failure::new(Stage::Generation, format!("{e:#}")))
            .and_then(|reply| read_draft(&reply.text, context.sampled.as_ref()))
            .and_then(|bp| {
                draft = Some(bp.clone());
                validate(domain, &db, &bp, &context.policy, &config.committee, &mut caller, round)
            });
        if round == 0 {
            first_failure = result.as_ref().err().map(|f| f.stage);
        }
        match result {
            Ok(v) => break Ok(v),
            Err(f) if f.fatal => anyhow::bail!("the environment cannot run: {}", f.reason),
            // Revising cannot mend an environment that failed.
            Err(f) if round >= config.rounds || f.stage == Stage::Env => break Err(f),
            Err(f) => {
                let text = summarize(&mut caller, config, &f, draft.as_ref(), round)?;
                history.push(json!({"round": round, "stage": f.stage.name(), "reason": f.reason, "feedback": text}));
                feedback = Some(text);
            }
        }
        round += 1;
    };
    caller.available()?;
    Ok(Attempt {
        task,
        recombined_from: Vec::new(),
        data_seed,
        data_hash: hash(&db),
        context,
        draft,
        outcome,
        first_failure,
        rounds: round,
        feedback: history,
        tokens: caller.prompt_tokens + caller.completion_tokens,
        trace: caller.trace,
    })
}

/// The generator's reply as a blueprint: the whole blueprint, or, when the environment fixed the
/// actions, the write-up (thought, instruction, outputs) around them.
fn read_draft(text: &str, sampled: Option<&Sampled>) -> Result<Blueprint, Failure> {
    let unreadable = |e: serde_json::Error| Failure::new(Stage::Generation, format!("the output is not a blueprint: {e}"));
    let Some(sampled) = sampled else { return serde_json::from_str::<Blueprint>(text).map_err(unreadable) };
    #[derive(serde::Deserialize)]
    struct WriteUp {
        thought: String,
        instruction: String,
        outputs: Vec<String>,
    }
    let mut up: WriteUp = serde_json::from_str(text).map_err(unreadable)?;
    let mut seen = Vec::new();
    up.outputs.retain(|o| {
        !seen.contains(o) && sampled.outputs.contains(o) && {
            seen.push(o.clone());
            true
        }
    });
    Ok(Blueprint { thought: up.thought, instruction: up.instruction, actions: sampled.actions.clone(), outputs: up.outputs })
}

/// Feedback for the next round. When the summarizer itself fails, the failure's own stage and
/// reason are passed on verbatim, which is the information the summary would have condensed.
fn summarize(
    caller: &mut Caller,
    config: &AttemptConfig,
    failure: &Failure,
    draft: Option<&Blueprint>,
    round: usize,
) -> anyhow::Result<String> {
    let context = json!({
        "stage": failure.stage.name(),
        "reason": failure.reason,
        "violations": failure.violations,
        "draft": draft,
    });
    let label = format!("round-{round}");
    let verbatim = format!("The {} check failed: {}", failure.stage.name(), failure.reason);
    // A template that does not render is a setup error, not a model error.
    caller.prompts.render("summarizer.jinja", &context)?;
    Ok(match caller.ask(Who::Summarizer, &config.summarizer, "summarizer.jinja", &context, &[&label], None) {
        Ok(reply) if !reply.text.trim().is_empty() => format!("{verbatim}\n{}", reply.text.trim()),
        _ => verbatim,
    })
}
