//! Runs every blueprint's attempts, verifies them and writes the results.
//!
//! Attempts run concurrently on worker threads that share the engine handles; each attempt's
//! seeds derive from (run seed, blueprint, attempt, role, turn), so its conversation does not
//! depend on scheduling. Results are committed in blueprint order (all attempts of blueprint
//! `i` before any of `i + 1`) into a [`Sink`], with a checkpoint after each blueprint, so the
//! same command gives the same files and an interrupted run resumes where it stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::agent::{converse, Conversation, End, Models, RoleTokens, Setup};
use super::user::UserTurn;
use super::verify::{check_state, expected_state, missing_outputs};
use super::{Rejection, Task, TrajectoryConfig};
use crate::chat::Message;
use crate::env::state::{hash, PatchOp};
use crate::env::{Db, Environment};
use crate::progress::PhaseProgress;
use crate::prompts::Prompts;
use crate::schedule::{Priority, Slots};
use crate::seeds::derive;

/// Where each conversation's fresh data comes from.
pub enum World {
    /// A generated world: the blueprint's own `data_seed` when it has one, else this seed.
    Generated(u64),
    /// One fixed database (`--data-dir`), copied for every attempt.
    Fixed(Db),
}

/// Fresh databases, generating each world once.
struct Worlds {
    domain: &'static dyn Environment,
    world: World,
    generated: Mutex<HashMap<u64, Arc<Db>>>,
}

impl Worlds {
    fn fresh(&self, blueprint: &Task) -> anyhow::Result<Db> {
        match &self.world {
            World::Fixed(db) => Ok(db.clone()),
            World::Generated(seed) => {
                let seed = blueprint.data_seed.unwrap_or(*seed);
                let mut cache = self.generated.lock().map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
                if let Some(db) = cache.get(&seed) {
                    return Ok(Db::clone(db));
                }
                let db = Arc::new(self.domain.generate(seed)?);
                cache.insert(seed, db.clone());
                Ok(Db::clone(&db))
            }
        }
    }
}

/// One attempt, as written to `trajectories.jsonl` (verified) or `trajectories.rejected.jsonl`
/// (every other attempt, duplicates of a kept conversation included).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The task's [`Task::key`]: its id, or a digest of its content.
    pub blueprint_id: String,
    pub attempt: usize,
    pub seed: u64,
    pub domain: String,
    pub instruction: String,
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Rejection>,
    /// For `backend_error`: what the model server answered; for `env_error`: the call that
    /// failed and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a state mismatch: how the final state differs from the expected one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<PatchOp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_outputs: Vec<String>,
    pub end: End,
    pub messages: Vec<Message>,
    pub user_turns: Vec<UserTurn>,
    pub agent_steps: usize,
    pub tool_calls: usize,
    pub parse_errors: usize,
    pub tokens: RoleTokens,
    pub final_hash: String,
    pub expected_hash: String,
}

/// Judges a finished conversation.
fn record(domain: &str, attempt: usize, seed: u64, blueprint: &Task, expected: &Db, c: Conversation) -> AttemptRecord {
    let limit = match c.end {
        End::MaxTurns => Some(Rejection::MaxTurns),
        End::ContextExceeded => Some(Rejection::ContextExceeded),
        End::ParseErrors => Some(Rejection::ParseErrors),
        End::BackendError => Some(Rejection::BackendError),
        End::EnvError => Some(Rejection::EnvError),
        End::UserStop | End::Terminate => None,
    };
    let diff = match c.end {
        End::EnvError => Vec::new(),
        _ => check_state(expected, &c.state).err().unwrap_or_default(),
    };
    let missing = missing_outputs(&blueprint.outputs, &c.messages);
    let reason = limit.or_else(|| {
        if !diff.is_empty() {
            Some(Rejection::StateMismatch)
        } else if !missing.is_empty() {
            Some(Rejection::MissingOutputs)
        } else {
            None
        }
    });
    AttemptRecord {
        blueprint_id: blueprint.key(),
        attempt,
        seed,
        domain: domain.to_string(),
        instruction: blueprint.instruction.clone(),
        verified: reason.is_none(),
        reason,
        error: c.error,
        diff,
        missing_outputs: missing,
        end: c.end,
        user_turns: c.user_turns,
        agent_steps: c.agent_steps,
        tool_calls: c.tool_calls,
        parse_errors: c.parse_errors,
        tokens: c.tokens,
        final_hash: hash(&c.state),
        expected_hash: hash(expected),
        messages: c.messages,
    }
}

/// An attempt the environment failed before the conversation began.
fn env_failed(domain: &str, attempt: usize, seed: u64, blueprint: &Task, error: &str) -> AttemptRecord {
    AttemptRecord {
        blueprint_id: blueprint.key(),
        attempt,
        seed,
        domain: domain.to_string(),
        instruction: blueprint.instruction.clone(),
        verified: false,
        reason: Some(Rejection::EnvError),
        error: Some(error.to_string()),
        diff: Vec::new(),
        missing_outputs: Vec::new(),
        end: End::EnvError,
        messages: Vec::new(),
        user_turns: Vec::new(),
        agent_steps: 0,
        tool_calls: 0,
        parse_errors: 0,
        tokens: RoleTokens::default(),
        final_hash: String::new(),
        expected_hash: String::new(),
    }
}

/// The seed of attempt `attempt` of `task`: a function of the run seed and the task's identity
/// alone, so that the conversation is the same wherever the task sits in its file.
pub fn attempt_seed(run_seed: u64, task: &Task, attempt: usize) -> u64 {
    derive(run_seed, &["task", &task.key(), "attempt", &attempt.to_string()])
}

/// Plays and judges attempt `attempt` of `blueprint`.
#[allow(clippy::too_many_arguments)]
pub fn run_attempt(
    models: &Models,
    prompts: &Prompts,
    config: &TrajectoryConfig,
    policy: &str,
    domain: &'static dyn Environment,
    fresh: Db,
    blueprint: &Task,
    attempt: usize,
) -> anyhow::Result<AttemptRecord> {
    let seed = attempt_seed(config.run_seed, blueprint, attempt);
    let expected = match expected_state(domain, fresh.clone(), &blueprint.actions) {
        Ok(expected) => expected,
        Err(e) if e.fatal => return Err(e.into()),
        Err(e) => return Ok(env_failed(domain.name(), attempt, seed, blueprint, &format!("replaying the ground truth: {}", e.message))),
    };
    let setup = Setup { models, prompts, config, policy, env: domain, blueprint, seed };
    let mut session = match domain.open(fresh) {
        Ok(session) => session,
        Err(e) if e.fatal => return Err(e.into()),
        Err(e) => return Ok(env_failed(domain.name(), attempt, seed, blueprint, &e.message)),
    };
    let conversation = converse(&setup, session.as_mut())?;
    Ok(record(domain.name(), attempt, seed, blueprint, &expected, conversation))
}

/// Counts for `stats.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub trajectories: TrajectoryCounts,
    pub blueprints: BlueprintCounts,
    pub rejected_by_reason: BTreeMap<String, usize>,
    /// Means over the verified trajectories that were kept.
    pub per_verified: PerTrajectory,
    pub tokens: RoleTokens,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TrajectoryCounts {
    pub attempted: usize,
    /// Distinct verified trajectories, the lines of `trajectories.jsonl`.
    pub verified: usize,
    pub rejected: usize,
    /// Verified attempts identical to one already kept for the same blueprint.
    pub duplicates: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BlueprintCounts {
    pub total: usize,
    pub with_verified: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PerTrajectory {
    pub agent_steps: f64,
    pub user_turns: f64,
    pub tool_calls: f64,
    pub tokens: f64,
}

/// Where a run stands: the next blueprint to commit and the counts so far. A fresh run starts
/// from `Progress::default()`; a resumed one from the last checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub next_blueprint: usize,
    pub stats: Stats,
    /// Sums over kept trajectories of agent steps, user turns, tool calls and tokens.
    sums: [usize; 4],
    /// The blueprint of the last verified record counted, so a blueprint with several counts
    /// once in `blueprints.with_verified`.
    #[serde(default)]
    last_verified_blueprint: Option<String>,
}

impl Progress {
    /// Folds one blueprint's attempts into the counts and hands each to `sink`. A verified
    /// attempt whose conversation repeats one already kept for the blueprint is written as a
    /// rejection (`duplicate`), so that every attempt has its line and the counts are a fold
    /// over the files (see [`Progress::count`]).
    pub fn commit(&mut self, attempts: Vec<AttemptRecord>, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let mut seen = HashSet::new();
        let mut first = true;
        for mut record in attempts {
            if record.verified && !seen.insert(fingerprint(&record.messages)) {
                record.verified = false;
                record.reason = Some(Rejection::Duplicate);
            }
            self.count(&record, first);
            first = false;
            match record.verified {
                true => sink.verified(&record)?,
                false => sink.rejected(&record)?,
            }
        }
        self.next_blueprint += 1;
        sink.committed(self)
    }

    /// Counts one record; `new_blueprint` when it is the first of its blueprint.
    pub fn count(&mut self, record: &AttemptRecord, new_blueprint: bool) {
        let stats = &mut self.stats;
        stats.trajectories.attempted += 1;
        for (total, used) in [
            (&mut stats.tokens.agent, record.tokens.agent),
            (&mut stats.tokens.user, record.tokens.user),
            (&mut stats.tokens.judge, record.tokens.judge),
        ] {
            total.prompt += used.prompt;
            total.completion += used.completion;
        }
        if new_blueprint {
            stats.blueprints.total += 1;
        }
        match record.reason {
            Some(Rejection::Duplicate) => stats.trajectories.duplicates += 1,
            Some(reason) => {
                stats.trajectories.rejected += 1;
                *stats.rejected_by_reason.entry(reason.name().to_string()).or_default() += 1;
            }
            None => {
                // The first verified attempt of a blueprint marks it as having one.
                if self.last_verified_blueprint.as_deref() != Some(record.blueprint_id.as_str()) {
                    stats.blueprints.with_verified += 1;
                    self.last_verified_blueprint = Some(record.blueprint_id.clone());
                }
                stats.trajectories.verified += 1;
                for (sum, value) in
                    self.sums.iter_mut().zip([record.agent_steps, record.user_turns.len(), record.tool_calls, record.tokens.total()])
                {
                    *sum += value;
                }
                let n = stats.trajectories.verified as f64;
                let [steps, turns, calls, tokens] = self.sums.map(|s| s as f64 / n);
                stats.per_verified = PerTrajectory { agent_steps: steps, user_turns: turns, tool_calls: calls, tokens };
            }
        }
    }
}

/// Where a run's records go. The attempts of one blueprint arrive together, in blueprint order,
/// followed by `committed`, after which they must survive a crash.
pub trait Sink {
    fn verified(&mut self, record: &AttemptRecord) -> anyhow::Result<()>;
    fn rejected(&mut self, record: &AttemptRecord) -> anyhow::Result<()>;
    fn committed(&mut self, progress: &Progress) -> anyhow::Result<()>;
}

/// What makes two conversations the same: who said what and which calls were made, but not the
/// call ids, which differ between attempts by construction.
fn fingerprint(messages: &[Message]) -> String {
    let said: Vec<_> = messages
        .iter()
        .map(|m| {
            let calls: Vec<_> = m.tool_calls.iter().map(|c| (&c.name, &c.arguments)).collect();
            (m.role, &m.content, calls)
        })
        .collect();
    serde_json::to_string(&said).unwrap_or_default()
}

/// Everything a run needs besides the blueprints.
pub struct Run<'a> {
    pub models: &'a Models,
    pub prompts: &'a Prompts,
    pub config: &'a TrajectoryConfig,
    pub policy: &'a str,
    pub domain: &'static dyn Environment,
    pub world: World,
    /// The in-flight limit this phase shares with any other running beside it.
    pub slots: &'a Slots,
    /// Blueprints expected in all, for the progress display only (a stream's length is not
    /// known in advance).
    pub expected: usize,
    /// Show a progress display.
    pub show: bool,
}

/// The blueprints still to act out, in order: a list known up front, or a stream that Phase 1
/// feeds as it commits blueprints. The run ends when the sending side is dropped and every
/// blueprint received has been committed.
pub type Tasks = mpsc::Receiver<Task>;

/// A list of blueprints as a finished stream.
pub fn tasks_of(list: impl IntoIterator<Item = Task>) -> Tasks {
    let (sender, receiver) = mpsc::channel();
    for task in list {
        // The receiver is alive right here, so sending cannot fail.
        let _ = sender.send(task);
    }
    receiver
}

/// Hands out jobs (blueprint index, blueprint, attempt) in order, receiving the next blueprint
/// from the stream when the current one's attempts are all taken.
struct Jobs {
    tasks: Tasks,
    attempts: usize,
    current: Option<(usize, Arc<Task>)>,
    next_attempt: usize,
    next_index: usize,
}

impl Jobs {
    /// The next job, waiting for the stream if needed; `None` once the stream is done or the
    /// run `failed` (checked while waiting, so that a failure is not held up by a producer that
    /// is still working).
    fn next(&mut self, failed: &AtomicBool) -> Option<(usize, Arc<Task>, usize)> {
        if self.current.is_none() || self.next_attempt == self.attempts {
            let task = loop {
                match self.tasks.recv_timeout(Duration::from_millis(100)) {
                    Ok(task) => break task,
                    Err(mpsc::RecvTimeoutError::Timeout) if !failed.load(Ordering::SeqCst) => continue,
                    Err(_) => return None,
                }
            };
            self.current = Some((self.next_index, Arc::new(task)));
            self.next_index += 1;
            self.next_attempt = 0;
        }
        let (index, task) = self.current.as_ref()?;
        let job = (*index, task.clone(), self.next_attempt);
        self.next_attempt += 1;
        Some(job)
    }
}

/// Runs every attempt of the blueprints that `tasks` yields (the first of which is blueprint
/// `progress.next_blueprint`), handing the records to `sink` in blueprint order, and returns
/// the final progress.
pub fn run(run: Run, tasks: Tasks, sink: &mut dyn Sink, mut progress: Progress) -> anyhow::Result<Progress> {
    let Run { models, prompts, config, policy, domain, world, slots, expected, show } = run;
    let attempts = config.attempts.max(1);
    let worlds = Worlds { domain, world, generated: Mutex::new(HashMap::new()) };
    let jobs = Mutex::new(Jobs { tasks, attempts, current: None, next_attempt: 0, next_index: progress.next_blueprint });
    let bar = PhaseProgress::new("trajectories", "verified", expected, show);
    let tokens_before = progress.stats.tokens.total();
    let failed = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<((usize, usize), anyhow::Result<AttemptRecord>)>();
    let result = std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..slots.size() {
            let sender = sender.clone();
            let (jobs, failed, worlds) = (&jobs, &failed, &worlds);
            scope.spawn(move || loop {
                let job = match jobs.lock() {
                    Ok(mut jobs) if !failed.load(Ordering::SeqCst) => jobs.next(failed),
                    _ => None,
                };
                let Some((index, blueprint, attempt)) = job else { break };
                let slot = slots.acquire(Priority::High);
                let result = worlds
                    .fresh(&blueprint)
                    .and_then(|fresh| run_attempt(models, prompts, config, policy, domain, fresh, &blueprint, attempt))
                    .with_context(|| format!("blueprint {} ({}), attempt {attempt}", index, blueprint.key()));
                drop(slot);
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                if sender.send(((index, attempt), result)).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        // Commit blueprints in order as soon as all their attempts are in.
        let mut pending: BTreeMap<(usize, usize), AttemptRecord> = BTreeMap::new();
        for (job, result) in receiver {
            let record = match result {
                Ok(record) => record,
                Err(error) => {
                    failed.store(true, Ordering::SeqCst);
                    return Err(error);
                }
            };
            pending.insert(job, record);
            loop {
                let first = progress.next_blueprint;
                if !(0..attempts).all(|a| pending.contains_key(&(first, a))) {
                    break;
                }
                let batch = (0..attempts).filter_map(|a| pending.remove(&(first, a))).collect();
                if let Err(error) = progress.commit(batch, sink) {
                    failed.store(true, Ordering::SeqCst);
                    return Err(error);
                }
                let t = &progress.stats.trajectories;
                bar.update(progress.next_blueprint, t.verified, t.attempted, progress.stats.tokens.total() - tokens_before);
            }
        }
        Ok(())
    });
    bar.finish();
    result?;
    // The checkpoint records that this phase took place, also when it had nothing to do.
    sink.committed(&progress)?;
    Ok(progress)
}
