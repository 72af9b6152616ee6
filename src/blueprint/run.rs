//! A blueprint run: attempts in parallel, committed in task-index order.
//!
//! Workers take task indices in order and run attempts against the role models; the committing
//! thread hands each attempt's line to the [`Sink`] only when every lower index has been
//! committed, and deduplicates against what it has committed so far. Output therefore depends
//! on the seed alone, never on timing: the run stops after the attempt that brings the
//! validated count to N, and attempts with higher indices that happened to be in flight are
//! cancelled (the in-process engine drops their requests at its next step; a server's call runs
//! to its end, and no further call is made) and discarded. After each task the sink gets a
//! checkpoint ([`Progress`]) from which a killed run resumes exactly where it stopped.
//!
//! Reverse recombination ([`super::recombine`]) happens on the committing thread, when the last
//! task of a group is committed. Whether a group is recombined depends on its index alone, and
//! what it combines on its own attempts alone, so that a shard ([`crate::shard`]), which sees
//! only its own groups and never stops early, writes the lines an unsharded run writes for
//! those groups; `merge` then applies the deduplication and the cut in attempt order. Every
//! figure of the stats is a fold of [`Stats::count`] over the committed lines.

use std::collections::BTreeMap;
use std::sync::{mpsc, Condvar, Mutex};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Settings;
use crate::engine::{CancelToken, SamplingParams};
use crate::progress::PhaseProgress;
use crate::prompts::Prompts;
use crate::roles::Models;
use crate::schedule::{Priority, Slots};
use crate::shard::{Attempts, Shard};
use crate::validate::{dedup, Committee, Stage};

use super::attempt::{self, Attempt, AttemptConfig};
use super::{recombine, Blueprint};

/// One run's settings.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub attempt: AttemptConfig,
    /// Stop after this many validated blueprints...
    pub count: usize,
    /// ...or after this many attempts.
    pub max_attempts: usize,
    /// The share of attempt groups whose validated blueprints are recombined (0: none).
    pub recombine: f64,
    /// The share of users whose validated blueprints are held out (see [`held_out`]).
    pub holdout: f64,
    /// The model names per role, recorded with every blueprint.
    pub models: RoleModels,
    pub trace: bool,
    #[serde(skip)]
    pub progress: bool,
    /// The share of the attempts this process does (`None`: all, stopping at `count`).
    #[serde(skip)]
    pub shard: Option<Shard>,
}

impl RunConfig {
    /// Phase 1's configuration from the run's settings; `trace` keeps every prompt and
    /// completion. The whole run is done unless [`RunConfig::shard`] is set.
    pub fn from_settings(s: &Settings, trace: bool) -> anyhow::Result<Self> {
        Ok(RunConfig {
            attempt: AttemptConfig {
                domain: crate::env::resolve(&s.domain)?,
                run_seed: s.seed,
                group: if s.recombine > 0.0 { recombine::GROUP } else { 1 },
                rounds: s.rounds,
                actions: s.actions,
                max_writes: s.max_writes,
                generator: s.generator.config(),
                summarizer: s.summarizer.config(),
                committee: Committee { reviewers: s.reviewers, threshold: s.threshold, role: s.reviewer.config() },
            },
            count: s.tasks,
            max_attempts: s.max_attempts,
            recombine: s.recombine,
            holdout: s.holdout,
            models: RoleModels {
                generator: s.generator.model.clone(),
                reviewers: s.reviewer.models.clone(),
                summarizer: s.summarizer.model.clone(),
            },
            trace,
            progress: true,
            shard: None,
        })
    }

    /// The attempt indices this run does.
    pub fn attempts(&self) -> Attempts {
        Attempts { max_attempts: self.max_attempts, group: self.attempt.group, shard: self.shard }
    }

    /// Whether the committed count ends the run: an unsharded run stops at `count` validated
    /// blueprints; a shard cannot know the others' counts, so it does all its attempts and
    /// `merge` applies the cut.
    fn reached_count(&self, stats: &Stats) -> bool {
        self.shard.is_none() && stats.validated >= self.count
    }
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
    /// Validated blueprints held out for `eval` (in `heldout.jsonl`), among `validated`.
    #[serde(default)]
    pub heldout: usize,
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
    // An environment failure happens while the actions run: the funnel counts it there.
    let failed_at = failed_at.map(|s| if s == Stage::Env { Stage::Execution } else { s });
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

    /// Counts one committed line of `blueprints.jsonl` or `blueprints.rejected.jsonl`. Every
    /// figure of Phase 1's stats is a fold of this over the lines, so `merge` recounts a merged
    /// run from its files alone.
    pub fn count(&mut self, line: &Value) -> anyhow::Result<()> {
        let stage = |key: &str| -> anyhow::Result<Option<Stage>> {
            match line.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => Stage::deserialize(v).map(Some).with_context(|| format!("line {}: {key} {v} is not a stage", line["id"])),
            }
        };
        let number = |key: &str| line.get(key).and_then(Value::as_u64).unwrap_or(0) as usize;
        let last = stage("stage")?;
        if last.is_none() && line.get("heldout") == Some(&Value::Bool(true)) {
            self.heldout += 1;
        }
        match line.get("recombined").and_then(Value::as_bool).unwrap_or(false) {
            true => self.record_recombination(last, number("tokens")),
            false => self.record(stage("first_failure")?, last, number("rounds"), number("tokens")),
        }
        Ok(())
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
                "heldout": self.heldout,
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
    /// The validated blueprints of the group in progress, duplicates included (id, blueprint):
    /// what the group's recombination combines. Kept in the checkpoint so a resumed run
    /// recombines exactly what an uninterrupted one would.
    #[serde(default)]
    pub group: Vec<(String, Blueprint)>,
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
    /// The in-flight limit this phase shares with any other running beside it.
    pub slots: &'a Slots,
}

/// Runs attempts from `progress.next_task` on until the count or the attempt cap is reached,
/// committing each one into `sink`; `accepted` holds the validated blueprints already
/// committed. Returns the final progress.
pub fn run(run: Run, sink: &mut dyn Sink, mut progress: Progress, mut accepted: Vec<(String, Blueprint)>) -> anyhow::Result<Progress> {
    let Run { models, prompts, config, pool, slots } = run;
    if !(0.0..=1.0).contains(&config.recombine) {
        bail!("the recombination share must be between 0 and 1, got {}", config.recombine);
    }
    if config.count == 0 || config.max_attempts == 0 {
        bail!("count and max attempts must both be at least 1");
    }
    let attempts = config.attempts();
    let first = attempts.next_from(progress.next_task);
    if config.reached_count(&progress.stats) || first.is_none() {
        progress.finished = true;
    }
    // A shard's first attempt need not be 0.
    progress.next_task = first.unwrap_or(progress.next_task);
    if progress.finished {
        return Ok(progress);
    }
    let bar = PhaseProgress::new("blueprints", "validated", config.count, config.progress);
    bar.update(progress.stats.validated, progress.stats.validated, progress.stats.attempted, 0);
    let tokens_before = progress.stats.tokens;
    let pace = Pace::new(first, &progress.stats, config);
    let mut failure: Option<anyhow::Error> = None;

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, anyhow::Result<Attempt>)>();
        for _ in 0..slots.size().min(attempts.count_from(progress.next_task)) {
            let tx = tx.clone();
            let pace = &pace;
            scope.spawn(move || {
                let _unwinding = StopOnPanic(pace);
                // A worker waits for a task without a slot, so that conversations can use the
                // slots while the validated count is in sight.
                while let Some(task) = pace.take(&attempts) {
                    let slot = slots.acquire(Priority::Normal);
                    // The run may have stopped while this worker waited for its slot.
                    if pace.stopped() {
                        break;
                    }
                    let result = attempt::run(models, prompts, &config.attempt, pool, task, Some(pace.cancel.clone()));
                    drop(slot);
                    if tx.send((task, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, anyhow::Result<Attempt>> = BTreeMap::new();
        for (task, result) in rx {
            let validated = validates(&result);
            pending.insert(task, result);
            while let Some(result) = pending.remove(&progress.next_task) {
                let task = progress.next_task;
                if pace.stopped() {
                    continue;
                }
                let committed = result
                    .and_then(|a| commit(a, config, sink, &mut progress, &mut accepted))
                    .and_then(|()| recombine_group(run, task, sink, &mut progress, &mut accepted))
                    .and_then(|()| {
                        let next = attempts.next_from(task + 1);
                        progress.next_task = next.unwrap_or(config.max_attempts);
                        progress.finished = config.reached_count(&progress.stats) || next.is_none();
                        sink.committed(&progress)
                    });
                if let Err(e) = committed {
                    failure = Some(e.context(format!("attempt {task}")));
                    pace.stop();
                    continue;
                }
                if progress.finished {
                    pace.stop();
                }
                bar.update(
                    progress.stats.validated,
                    progress.stats.validated,
                    progress.stats.attempted,
                    progress.stats.tokens - tokens_before,
                );
            }
            pace.finished(validated, progress.stats.validated + pending.values().filter(|r| validates(r)).count());
        }
    });
    bar.finish();
    match failure {
        Some(e) => Err(e),
        // Every worker stopped, yet the run is not done: an attempt was never committed. Never
        // report that as success, or the run's output would silently lack it.
        None if !progress.finished => bail!("attempt {} was never committed", progress.next_task),
        None => Ok(progress),
    }
}

/// Whether a finished attempt's blueprint validated (before deduplication, which only the commit
/// decides).
fn validates(result: &anyhow::Result<Attempt>) -> bool {
    matches!(result, Ok(a) if a.outcome.is_ok())
}

/// Which attempt a worker takes next, and whether it may take one yet.
///
/// An unsharded run stops at `count` validated blueprints, and discards the attempts past the one
/// that reached it. Starting every slot's attempt at once would waste most of them on a small
/// run (the README's quick-start asks for 2 blueprints, and 8 slots would start 8 attempts), and
/// the discarded ones would share every forward pass with the work that counts. So a worker takes
/// a new attempt only while the blueprints in sight fall short of `count`: those validated so far
/// (committed, or finished and waiting for a lower index), plus the running attempts times the
/// pass rate seen so far. The rate starts at 1 (an optimistic prior of one passing attempt), so
/// the first wave is as large as the count, and it widens as attempts fail. Pacing changes only
/// when attempts run, never which ones are committed, so the output stays a function of the seed.
/// A shard never stops early (`merge` makes the cut), so its workers are never held back.
struct Pace {
    state: Mutex<PaceState>,
    changed: Condvar,
    /// `None` for a shard: no count to pace towards.
    count: Option<usize>,
    /// Set when the run stops, and the one record that it has: the attempts still running are
    /// discarded, so their requests end (the in-process engine drops them at its next step)
    /// instead of sharing its passes to the end, and they make no further call.
    cancel: CancelToken,
}

#[derive(Debug)]
struct PaceState {
    next: Option<usize>,
    running: usize,
    /// Validated blueprints in sight: committed, or finished and not yet committed.
    expected: usize,
    /// Attempts finished and how many of them validated, the resumed run's included.
    tried: usize,
    passed: usize,
}

impl Pace {
    fn new(first: Option<usize>, stats: &Stats, config: &RunConfig) -> Self {
        let state = PaceState { next: first, running: 0, expected: stats.validated, tried: stats.attempted, passed: stats.validated };
        let count = config.shard.is_none().then_some(config.count);
        Self { state: Mutex::new(state), changed: Condvar::new(), count, cancel: CancelToken::default() }
    }

    /// Whether `state` lets a worker start another attempt now.
    fn open(&self, state: &PaceState) -> bool {
        let Some(count) = self.count else { return true };
        let rate = (state.passed + 1) as f64 / (state.tried + 1) as f64;
        (state.expected as f64) + state.running as f64 * rate < count as f64
    }

    /// The next attempt to run, once the pace allows it; `None` when the run stops or has no
    /// attempt left. A poisoned lock ends the worker (the committing thread reports the run).
    fn take(&self, attempts: &Attempts) -> Option<usize> {
        let mut state = self.state.lock().ok()?;
        loop {
            if self.cancel.is_cancelled() {
                return None;
            }
            if state.running == 0 || self.open(&state) {
                let task = state.next.take()?;
                state.next = attempts.next_from(task + 1);
                state.running += 1;
                return Some(task);
            }
            state = self.changed.wait(state).ok()?;
        }
    }

    /// An attempt finished (`validated`: its blueprint passed), and what could be committed has
    /// been; `expected` is the validated blueprints now in sight.
    fn finished(&self, validated: bool, expected: usize) {
        self.update(|s| {
            s.running = s.running.saturating_sub(1);
            s.tried += 1;
            s.passed += usize::from(validated);
            s.expected = expected;
        });
    }

    /// Sets the token, then takes the lock to wake the waiting workers: a worker checks the token
    /// while it holds the lock, so it either sees it set or is already waiting for this wake-up.
    fn stop(&self) {
        self.cancel.cancel();
        self.update(|_| {});
    }

    /// A poisoned lock counts as stopped, as the workers end on it too.
    fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.state.is_poisoned()
    }

    fn update(&self, change: impl FnOnce(&mut PaceState)) {
        if let Ok(mut state) = self.state.lock() {
            change(&mut state);
        }
        self.changed.notify_all();
    }
}

/// Stops the run when a worker unwinds: its attempt would count as running forever, and the other
/// workers could wait on the pace for good instead of letting the panic reach the caller.
struct StopOnPanic<'a>(&'a Pace);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// Whether the blueprints of `user` are held out for `eval`: a share `holdout` of users,
/// chosen by a hash of the run seed and the user id. Deciding by user keeps every held-out task
/// apart from the training data: a group's attempts (and so its recombination) share one user
/// and one database, and a user is either wholly in or wholly out.
pub fn held_out(holdout: f64, run_seed: u64, user: &str) -> bool {
    holdout > 0.0 && (crate::seeds::derive(run_seed, &["holdout", user]) as f64 / u64::MAX as f64) < holdout
}

/// The id of task `task`'s blueprint.
fn blueprint_id(config: &AttemptConfig, task: usize) -> String {
    format!("{}-{}-{}", config.domain.name(), config.run_seed, task)
}

/// After task `task` is committed: when it closes its group (the group's last task, or the
/// run's last attempt), the run has not reached its count, the group is one of those
/// [`recombine::due`], and at least two of its attempts validated (duplicates too: whether a
/// blueprint duplicates another group's is decided at commit, which a shard cannot see),
/// combines them and commits the result.
fn recombine_group(
    run: Run,
    task: usize,
    sink: &mut dyn Sink,
    progress: &mut Progress,
    accepted: &mut Vec<(String, Blueprint)>,
) -> anyhow::Result<()> {
    let (config, a) = (run.config, &run.config.attempt);
    let lead = attempt::lead(a, task);
    let closes = task + 1 == lead + a.group || task + 1 == config.max_attempts;
    if !closes {
        return Ok(());
    }
    let parts = std::mem::take(&mut progress.group);
    if a.group < 2 || parts.len() < 2 || config.reached_count(&progress.stats) || !recombine::due(config.recombine, lead / a.group) {
        return Ok(());
    }
    let attempt = recombine::run(run.models, run.prompts, a, run.pool, lead, &parts).context("recombination")?;
    commit(attempt, config, sink, progress, accepted)
}

/// Writes the lines of one attempt or recombination: a validated blueprint (unless it
/// duplicates an earlier one, see [`deduplicate`]) or a rejection, then its trace.
fn commit(
    attempt: Attempt,
    config: &RunConfig,
    sink: &mut dyn Sink,
    progress: &mut Progress,
    accepted: &mut Vec<(String, Blueprint)>,
) -> anyhow::Result<()> {
    let line = line(&attempt, config)?;
    // Generated blueprints that validated are the parts of their group's recombination.
    let validated = line.get("stage").is_none();
    if let (true, true, Some(bp)) = (validated, attempt.recombined_from.is_empty(), &attempt.draft) {
        progress.group.push((line["id"].as_str().unwrap_or_default().to_string(), bp.clone()));
    }
    // A shard cannot see the blueprints of the others: `merge` deduplicates across all of them.
    let line = match config.shard {
        None => deduplicate(line, accepted)?,
        Some(_) => line,
    };
    progress.stats.count(&line)?;
    match line.get("stage") {
        None => sink.validated(&line)?,
        Some(_) => sink.rejected(&line)?,
    }
    if config.trace {
        sink.trace(&attempt.trace)?;
    }
    Ok(())
}

/// A validated line that duplicates one of `accepted` becomes a rejection at the `duplicate`
/// stage; otherwise it joins `accepted`. Rejections pass through. `merge` calls this too, over
/// the shards' lines in attempt order, which is how a merged run rejects the same duplicates as
/// an unsharded one.
pub fn deduplicate(line: Value, accepted: &mut Vec<(String, Blueprint)>) -> anyhow::Result<Value> {
    if line.get("stage").is_some() {
        return Ok(line);
    }
    let id = line["id"].as_str().context("a blueprint line without an id")?.to_string();
    let bp = Blueprint::deserialize(&line).with_context(|| format!("blueprint line {id}"))?;
    match dedup::duplicate_of(&bp, accepted) {
        None => {
            accepted.push((id, bp));
            Ok(line)
        }
        Some(reason) => {
            let first = match (&line["first_failure"], line["rounds"].as_u64()) {
                (Value::Null, Some(0)) => json!(Stage::Duplicate.name()),
                (first, _) => first.clone(),
            };
            let draft = json!({"thought": bp.thought, "instruction": bp.instruction, "actions": bp.actions, "outputs": bp.outputs});
            Ok(rejection(&line, first, Stage::Duplicate, &reason, &[], draft))
        }
    }
}

/// A rejected line: the fields every line shares, taken from `base`, then why it failed.
fn rejection(base: &Value, first_failure: Value, stage: Stage, reason: &str, violations: &[String], draft: Value) -> Value {
    let mut line = serde_json::Map::new();
    line.insert("id".into(), base["id"].clone());
    line.insert("task".into(), base["task"].clone());
    line.insert("stage".into(), json!(stage.name()));
    line.insert("reason".into(), json!(reason));
    line.insert("violations".into(), json!(violations));
    line.insert("draft".into(), draft);
    for key in [
        "data_seed",
        "user_id",
        "first_failure",
        "rounds",
        "feedback",
        "recombined",
        "recombined_from",
        "models",
        "sampling",
        "seed",
        "tokens",
    ] {
        let value = if key == "first_failure" { first_failure.clone() } else { base[key].clone() };
        line.insert(key.into(), value);
    }
    Value::Object(line)
}

/// The line an attempt or recombination commits, before deduplication: its blueprint when it
/// validated, else its rejection.
fn line(attempt: &Attempt, config: &RunConfig) -> anyhow::Result<Value> {
    let recombined = !attempt.recombined_from.is_empty();
    let id = match recombined {
        false => blueprint_id(&config.attempt, attempt.task),
        true => format!("{}-recombined", blueprint_id(&config.attempt, attempt.task)),
    };
    let sampling = |s: &SamplingParams| json!({"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p, "repeat_penalty": s.repeat_penalty});
    let a = &config.attempt;
    let sampling = json!({
        "generator": sampling(&a.generator.sampling),
        "reviewer": sampling(&a.committee.role.sampling),
        "summarizer": sampling(&a.summarizer.sampling),
    });
    let persona = attempt.context.persona.as_ref().map(|p| p.to_string());
    // Where the first draft alone stopped; a recombination has no drafts before its last.
    let first_failure = match (&attempt.outcome, recombined) {
        (_, true) => None,
        (Ok(_), false) => attempt.first_failure,
        (Err(f), false) => attempt.first_failure.or((attempt.rounds == 0).then_some(f.stage)),
    };
    let line = json!({
        "id": id,
        "task": attempt.task,
        "data_seed": attempt.data_seed,
        "user_id": attempt.context.data.user_id,
        "first_failure": first_failure.map(Stage::name),
        "rounds": attempt.rounds,
        "feedback": attempt.feedback,
        "recombined": recombined,
        "recombined_from": attempt.recombined_from,
        "models": config.models,
        "sampling": sampling,
        "seed": config.attempt.run_seed,
        "tokens": attempt.tokens,
    });
    let heldout = held_out(config.holdout, config.attempt.run_seed, &attempt.context.data.user_id);
    Ok(match (&attempt.outcome, &attempt.draft) {
        (Ok(validated), Some(bp)) => {
            let mut line = json!({
            "id": id,
            "task": attempt.task,
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
            "first_failure": line["first_failure"],
            "rounds": attempt.rounds,
            "feedback": attempt.feedback,
            "recombined": recombined,
            "recombined_from": attempt.recombined_from,
            "models": config.models,
            "sampling": line["sampling"],
            "seed": config.attempt.run_seed,
            "tokens": attempt.tokens,
            });
            if heldout {
                line["heldout"] = json!(true);
            }
            line
        }
        (Ok(_), None) => bail!("a validated attempt without a draft"),
        (Err(failure), _) => {
            let draft = serde_json::to_value(&attempt.draft)?;
            rejection(&line, line["first_failure"].clone(), failure.stage, &failure.reason, &failure.violations, draft)
        }
    })
}
