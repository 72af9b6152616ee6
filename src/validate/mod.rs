//! Blueprint validation, in the order the method prescribes: format, execution, policy, then
//! the reviewer committee. The first failing stage stops validation, and its [`Failure`]
//! (stage and reason) is what the summarizer turns into feedback. Deduplication against the
//! already validated blueprints runs last, when a blueprint is committed.

pub mod committee;
pub mod dedup;
pub mod execution;
pub mod format;

use serde::Serialize;

pub use committee::{Committee, Review, Verdict};
pub use execution::Executed;

/// The validation stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The generator's output could not be read as a blueprint at all.
    Generation,
    Format,
    Execution,
    Policy,
    Committee,
    Duplicate,
    /// The environment itself failed (a tool server that crashed, hung or answered garbage):
    /// not the blueprint's fault, so the attempt ends without revision rounds. Not a step of
    /// the funnel ([`Stage::ALL`]); the funnel counts it where it happened, at execution.
    #[serde(rename = "env_error")]
    Env,
}

impl Stage {
    pub const ALL: [Stage; 6] = [Stage::Generation, Stage::Format, Stage::Execution, Stage::Policy, Stage::Committee, Stage::Duplicate];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Generation => "generation",
            Stage::Format => "format",
            Stage::Execution => "execution",
            Stage::Policy => "policy",
            Stage::Committee => "committee",
            Stage::Duplicate => "duplicate",
            Stage::Env => "env_error",
        }
    }
}

/// Why a blueprint failed: the stage, a reason written for the summarizer, and the ids of the
/// broken policy rules when the policy stage failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub stage: Stage,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    /// The environment cannot work at all (its tool server does not start): the run stops
    /// instead of recording the attempt.
    #[serde(skip)]
    pub fatal: bool,
}

impl Failure {
    pub fn new(stage: Stage, reason: impl Into<String>) -> Self {
        Self { stage, reason: reason.into(), violations: Vec::new(), fatal: false }
    }

    /// The environment failed: an `env_error` naming `what` was being done.
    pub fn env(what: &str, e: &EnvError) -> Self {
        Self { stage: Stage::Env, reason: format!("{what}: {}", e.message), violations: Vec::new(), fatal: e.fatal }
    }
}

use serde_json::{json, Value};

use crate::env::state::PatchOp;
use crate::env::{Blueprint, Db, EnvError, Environment};
use crate::roles::Caller;

/// A blueprint that passed every stage: its diff and the committee's verdict.
#[derive(Debug, Clone)]
pub struct Validated {
    pub diff: Vec<PatchOp>,
    pub verdict: Verdict,
}

/// Runs the stages in order on `bp` over `db` in revision round `round`; the first failure
/// stops it.
pub fn validate(
    domain: &dyn Environment,
    db: &Db,
    bp: &Blueprint,
    policy_excerpt: &str,
    committee: &Committee,
    caller: &mut Caller,
    round: usize,
) -> Result<Validated, Failure> {
    format::check(domain, bp)?;
    let executed = replay(domain, db, bp)?;
    review(domain, bp, executed, policy_excerpt, committee, caller, &format!("round-{round}"))
}

/// Stages 2 and 3, which need no model: the actions replayed on `db`, then the policy rules run
/// over them. Reverse recombination runs these before it asks for an instruction, because a
/// conflict between the combined parts is found here for free.
pub fn replay(domain: &dyn Environment, db: &Db, bp: &Blueprint) -> Result<Executed, Failure> {
    let executed = execution::check(domain, db, bp)?;
    let violations = domain.check(db, &bp.actions).map_err(|e| match e.downcast_ref::<EnvError>() {
        Some(env) => Failure::env("env/check", env),
        None => Failure::new(Stage::Policy, format!("{e:#}")),
    })?;
    if !violations.is_empty() {
        let reason = violations.iter().map(|v| format!("{} at action {}: {}", v.id, v.step, v.message)).collect::<Vec<_>>().join("; ");
        return Err(Failure { stage: Stage::Policy, reason, violations: violations.into_iter().map(|v| v.id).collect(), fatal: false });
    }
    Ok(executed)
}

/// Stage 4: the committee reviews `bp` with the diff of its replay. `label` names the call in
/// the seed path ("round-2", "recombination"), so that each review samples apart.
pub fn review(
    domain: &dyn Environment,
    bp: &Blueprint,
    executed: Executed,
    policy_excerpt: &str,
    committee: &Committee,
    caller: &mut Caller,
    label: &str,
) -> Result<Validated, Failure> {
    let tools: Vec<Value> = bp.actions.iter().filter_map(|a| domain.tool(&a.name)).map(|t| t.openai_schema()).collect();
    let context = json!({
        "domain": domain.name(),
        "instruction": bp.instruction,
        "actions": bp.actions,
        "outputs": bp.outputs,
        "tools": tools,
        "diff": executed.diff,
        "policy": policy_excerpt,
    });
    let verdict = committee.review(caller, &context, label);
    match verdict.failure() {
        Some(f) => Err(f),
        None => Ok(Validated { diff: executed.diff, verdict }),
    }
}
