//! A blueprint run: attempts in parallel, committed in task-index order.
//!
//! Workers take task indices from a shared counter and run attempts against the role models;
//! the committing thread hands each attempt's lines to the [`Sink`] only when every lower index
//! has been committed, and deduplicates against what it has committed so far. Output therefore
//! depends on the seed alone, never on timing: the run stops after the attempt that brings the
//! validated count to N, and attempts with higher indices that happened to be in flight are
//! discarded. After each task the sink gets a checkpoint ([`Progress`]) from which a killed run
//! resumes exactly where it stopped.
//!
//! Reverse recombination ([`super::recombine`]) happens on the committing thread, when the last
//! task of a group is committed: it reads only committed blueprints, so it is as deterministic
//! as the rest, and its lines belong to that task's checkpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::engine::SamplingParams;
use crate::prompts::Prompts;
use crate::progress::PhaseProgress;
use crate::validate::{dedup, Failure, Stage};

use super::attempt::{self, Attempt, AttemptConfig};
use super::caller::Models;
use super::{recombine, Blueprint};

/// One run's settings.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub attempt: AttemptConfig,
    /// Stop after this many validated blueprints...
    pub count: usize,
    /// ...or after this many attempts.
    pub max_attempts: usize,
    pub concurrency: usize,
    /// The share of the validated blueprints to make by reverse recombination (0: none).
    pub recombine: f64,
    /// The model names per role, recorded with every blueprint.
    pub models: RoleModels,
    pub trace: bool,
    #[serde(skip)]
    pub progress: bool,
}

/// Which model plays each Phase 1 role, by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleModels {
    pub generator: String,
    pub reviewers: Vec<String>,
    pub summarizer: String,
}

/// Pass counts of one stage: how many drafts reached it and how many got through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageCount {
    pub entered: usize,
    pub passed: usize,
}

/// What `stats.json` reports about Phase 1; also the state a resumed run continues from.
/// `attempted`, `validated` and `rejected_by_stage` count every line written, recombinations
/// included; the pass-rate tables cover generated blueprints, `recombination` the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub attempted: usize,
    pub validated: usize,
    pub rejected_by_stage: BTreeMap<String, usize>,
    /// Per stage, over first drafts only (no feedback) and over final drafts (with feedback).
    pub without_feedback: BTreeMap<Stage, StageCount>,
    pub with_feedback: BTreeMap<Stage, StageCount>,
    pub rounds: usize,
    pub tokens: usize,
    #[serde(default)]
    pub recombination: RecombinationStats,
}

/// Reverse recombination's own counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecombinationStats {
    pub attempted: usize,
    pub validated: usize,
    pub rejected_by_stage: BTreeMap<String, usize>,
    /// Per stage, in the order a recombination meets them ([`recombine::STAGES`]).
    pub stages: BTreeMap<Stage, StageCount>,
}

/// Counts one pass through `order` that stopped at `failed_at` (or went through).
fn count_stages(table: &mut BTreeMap<Stage, StageCount>, order: &[Stage], failed_at: Option<Stage>) {
    for &stage in order {
        let entry = table.entry(stage).or_default();
        entry.entered += 1;
        if failed_at == Some(stage) {
            break;
        }
        entry.passed += 1;
    }
}

impl Stats {
    /// Counts a line: validated when `last` is `None`, else rejected at `last`.
    fn count_line(&mut self, last: Option<Stage>, tokens: usize) {
        self.attempted += 1;
        match last {
            None => self.validated += 1,
            Some(stage) => *self.rejected_by_stage.entry(stage.name().to_string()).or_default() += 1,
        }
        self.tokens += tokens;
    }

    fn record(&mut self, first: Option<Stage>, last: Option<Stage>, rounds: usize, tokens: usize) {
        self.count_line(last, tokens);
        count_stages(&mut self.without_feedback, &Stage::ALL, first);
        count_stages(&mut self.with_feedback, &Stage::ALL, last);
        self.rounds += rounds;
    }

    fn record_recombination(&mut self, last: Option<Stage>, tokens: usize) {
        self.count_line(last, tokens);
        let r = &mut self.recombination;
        r.attempted += 1;
        match last {
            None => r.validated += 1,
            Some(stage) => *r.rejected_by_stage.entry(stage.name().to_string()).or_default() += 1,
        }
        count_stages(&mut r.stages, &recombine::STAGES, last);
    }

    /// The stats as `stats.json` shows them (without timings, which the caller adds).
    pub fn to_json(&self) -> Value {
        let rates = |table: &BTreeMap<Stage, StageCount>| -> Value {
            table
                .iter()
                .map(|(stage, c)| {
                    let rate = if c.entered == 0 { Value::Null } else { json!(c.passed as f64 / c.entered as f64) };
                    (stage.name().to_string(), json!({"entered": c.entered, "passed": c.passed, "rate": rate}))
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let per_validated = |n: usize| if self.validated == 0 { Value::Null } else { json!(n as f64 / self.validated as f64) };
        let r = &self.recombination;
        json!({
            "blueprints": {
                "attempted": self.attempted,
                "validated": self.validated,
                "rejected": self.attempted - self.validated,
                "rejected_by_stage": self.rejected_by_stage,
                "recombined": r.validated,
                "recombination": {
                    "attempted": r.attempted,
                    "validated": r.validated,
                    "rejected": r.attempted - r.validated,
                    "rejected_by_stage": r.rejected_by_stage,
                    "pass_rate": rates(&r.stages),
                },
            },
            "pass_rate": {"without_feedback": rates(&self.without_feedback), "with_feedback": rates(&self.with_feedback)},
            "revision_rounds": self.rounds,
            "tokens": self.tokens,
            "tokens_per_validated": per_validated(self.tokens),
        })
    }
}

/// Where a run stands: the next task to commit and the stats so far. A fresh run starts from
/// `Progress::default()`; a resumed one from the last checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub next_task: usize,
    pub stats: Stats,
    /// The run reached its count or its attempt cap.
    pub finished: bool,
}

/// Where a run's lines go. Lines of one task arrive together, in task order, followed by
/// `committed`, after which they must survive a crash.
pub trait Sink {
    fn validated(&mut self, line: &Value) -> anyhow::Result<()>;
    fn rejected(&mut self, line: &Value) -> anyhow::Result<()>;
    fn trace(&mut self, entries: &[Value]) -> anyhow::Result<()>;
    fn committed(&mut self, progress: &Progress) -> anyhow::Result<()>;
}

/// The validated blueprints already committed (from `blueprints.jsonl`), which new ones are
/// deduplicated against when a run resumes.
pub fn accepted_from(lines: &[Value]) -> anyhow::Result<Vec<(String, Blueprint)>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let id = line["id"].as_str().with_context(|| format!("blueprint line {} has no id", i + 1))?;
            let bp = Blueprint::deserialize(line).with_context(|| format!("blueprint line {} ({id})", i + 1))?;
            Ok((id.to_string(), bp))
        })
        .collect()
}

/// Everything a run needs besides where its lines go.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub models: &'a Models,
    pub prompts: &'a Prompts,
    pub config: &'a RunConfig,
    /// Few-shot examples.
    pub pool: &'a [Value],
}

/// Runs attempts from `progress.next_task` on until the count or the attempt cap is reached,
/// committing each one into `sink`; `accepted` holds the validated blueprints already
/// committed. Returns the final progress.
pub fn run(
    run: Run,
    sink: &mut dyn Sink,
    mut progress: Progress,
    mut accepted: Vec<(String, Blueprint)>,
) -> anyhow::Result<Progress> {
    let Run { models, prompts, config, pool } = run;
    if !(0.0..=1.0).contains(&config.recombine) {
        bail!("the recombination share must be between 0 and 1, got {}", config.recombine);
    }
    if config.count == 0 || config.max_attempts == 0 || config.concurrency == 0 {
        bail!("count, max attempts and concurrency must all be at least 1");
    }
    if progress.stats.validated >= config.count || progress.next_task >= config.max_attempts {
        progress.finished = true;
    }
    if progress.finished {
        return Ok(progress);
    }
    let bar = PhaseProgress::new("blueprints", "validated", config.count, config.progress);
    bar.update(progress.stats.validated, progress.stats.validated, progress.stats.attempted, 0);
    let tokens_before = progress.stats.tokens;
    let next = AtomicUsize::new(progress.next_task);
    let stop = AtomicBool::new(false);
    let mut failure: Option<anyhow::Error> = None;

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, anyhow::Result<Attempt>)>();
        for _ in 0..config.concurrency.min(config.max_attempts - progress.next_task) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                let task = next.fetch_add(1, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) || task >= config.max_attempts {
                    break;
                }
                let result = attempt::run(models, prompts, &config.attempt, pool, task);
                if tx.send((task, result)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, anyhow::Result<Attempt>> = BTreeMap::new();
        for (task, result) in rx {
            pending.insert(task, result);
            while let Some(result) = pending.remove(&progress.next_task) {
                let task = progress.next_task;
                if stop.load(Ordering::SeqCst) {
                    continue;
                }
                let committed = result
                    .and_then(|a| commit(a, config, sink, &mut progress.stats, &mut accepted))
                    .and_then(|()| recombine_group(run, task, sink, &mut progress.stats, &mut accepted))
                    .and_then(|()| {
                        progress.next_task = task + 1;
                        progress.finished = progress.stats.validated >= config.count || progress.next_task >= config.max_attempts;
                        sink.committed(&progress)
                    });
                if let Err(e) = committed {
                    failure = Some(e.context(format!("attempt {task}")));
                    stop.store(true, Ordering::SeqCst);
                    continue;
                }
                if progress.finished {
                    stop.store(true, Ordering::SeqCst);
                }
                bar.update(progress.stats.validated, progress.stats.validated, progress.stats.attempted, progress.stats.tokens - tokens_before);
            }
        }
    });
    bar.finish();
    match failure {
        Some(e) => Err(e),
        None => Ok(progress),
    }
}

/// The id of task `task`'s blueprint.
fn blueprint_id(config: &AttemptConfig, task: usize) -> String {
    format!("{}-{}-{}", config.domain.name, config.run_seed, task)
}

/// After task `task` is committed: when it closes its group (the group's last task, or the
/// run's last attempt), the run still needs blueprints and recombination is [`recombine::due`],
/// combines the group's validated blueprints (at least two) and commits the result.
fn recombine_group(run: Run, task: usize, sink: &mut dyn Sink, stats: &mut Stats, accepted: &mut Vec<(String, Blueprint)>) -> anyhow::Result<()> {
    let (config, a) = (run.config, &run.config.attempt);
    let lead = attempt::lead(a, task);
    let closes = task + 1 == lead + a.group || task + 1 == config.max_attempts;
    if a.group < 2 || !closes || stats.validated >= config.count || !recombine::due(config.recombine, stats.recombination.validated, stats.validated) {
        return Ok(());
    }
    let ids: Vec<String> = (lead..=task).map(|t| blueprint_id(a, t)).collect();
    let parts: Vec<(String, Blueprint)> = accepted.iter().filter(|(id, _)| ids.contains(id)).cloned().collect();
    if parts.len() < 2 {
        return Ok(());
    }
    let attempt = recombine::run(run.models, run.prompts, a, run.pool, lead, &parts).context("recombination")?;
    commit(attempt, config, sink, stats, accepted)
}

/// Writes the lines of one attempt or recombination: a validated blueprint (unless it
/// duplicates an earlier one) or a rejection, then its trace.
fn commit(
    attempt: Attempt,
    config: &RunConfig,
    sink: &mut dyn Sink,
    stats: &mut Stats,
    accepted: &mut Vec<(String, Blueprint)>,
) -> anyhow::Result<()> {
    let recombined = !attempt.recombined_from.is_empty();
    let id = match recombined {
        false => blueprint_id(&config.attempt, attempt.task),
        true => format!("{}-recombined", blueprint_id(&config.attempt, attempt.task)),
    };
    let outcome = match (&attempt.outcome, &attempt.draft) {
        (Ok(validated), Some(bp)) => match dedup::duplicate_of(bp, accepted) {
            Some(reason) => Err(Failure::new(Stage::Duplicate, reason)),
            None => Ok((validated, bp)),
        },
        (Ok(_), None) => bail!("a validated attempt without a draft"),
        (Err(f), _) => Err(f.clone()),
    };
    let sampling = |s: &SamplingParams| json!({"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p, "repeat_penalty": s.repeat_penalty});
    let a = &config.attempt;
    let sampling = json!({
        "generator": sampling(&a.generator.sampling),
        "reviewer": sampling(&a.committee.role.sampling),
        "summarizer": sampling(&a.summarizer.sampling),
    });
    let persona = attempt.context.persona.as_ref().map(|p| p.to_string());
    match outcome {
        Ok((validated, bp)) => {
            let line = json!({
                "id": id,
                "instruction": bp.instruction,
                "actions": bp.actions,
                "outputs": bp.outputs,
                "thought": bp.thought,
                "data_seed": attempt.data_seed,
                "data_hash": attempt.data_hash,
                "user_id": attempt.context.data.user_id,
                "persona": persona,
                "diff": validated.diff,
                "votes": {"reviews": validated.verdict.reviews, "voted": validated.verdict.voted, "mean": validated.verdict.mean},
                "rounds": attempt.rounds,
                "feedback": attempt.feedback,
                "recombined": recombined,
                "recombined_from": attempt.recombined_from,
                "models": config.models,
                "sampling": sampling,
                "seed": config.attempt.run_seed,
                "tokens": attempt.tokens,
            });
            sink.validated(&line)?;
            accepted.push((id, bp.clone()));
            match recombined {
                false => stats.record(attempt.first_failure, None, attempt.rounds, attempt.tokens),
                true => stats.record_recombination(None, attempt.tokens),
            }
        }
        Err(failure) => {
            let first = attempt.first_failure.or((attempt.rounds == 0).then_some(failure.stage));
            let line = json!({
                "id": id,
                "stage": failure.stage.name(),
                "reason": failure.reason,
                "violations": failure.violations,
                "draft": attempt.draft,
                "data_seed": attempt.data_seed,
                "user_id": attempt.context.data.user_id,
                "rounds": attempt.rounds,
                "feedback": attempt.feedback,
                "recombined": recombined,
                "recombined_from": attempt.recombined_from,
                "models": config.models,
                "sampling": sampling,
                "seed": config.attempt.run_seed,
                "tokens": attempt.tokens,
            });
            sink.rejected(&line)?;
            match recombined {
                false => stats.record(first, Some(failure.stage), attempt.rounds, attempt.tokens),
                true => stats.record_recombination(Some(failure.stage), attempt.tokens),
            }
        }
    }
    if config.trace {
        sink.trace(&attempt.trace)?;
    }
    Ok(())
}
