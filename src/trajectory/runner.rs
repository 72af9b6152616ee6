//! Runs every blueprint's attempts, verifies them and writes the results.
//!
//! Attempts run concurrently on worker threads that share the engine handles; each attempt's
//! seeds derive from (run seed, blueprint, attempt, role, turn), so its conversation does not
//! depend on scheduling. Results are committed in blueprint order (all attempts of blueprint
//! `i` before any of `i + 1`) into a [`Sink`], with a checkpoint after each blueprint, so the
//! same command gives the same files and an interrupted run resumes where it stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::agent::{converse, Conversation, End, Models, RoleTokens, Setup};
use super::user::UserTurn;
use super::verify::{check_state, expected_state, missing_outputs};
use super::{Blueprint, Rejection, TrajectoryConfig};
use crate::chat::Message;
use crate::env::state::{hash, PatchOp};
use crate::env::{Db, Domain, Env};
use crate::progress::PhaseProgress;
use crate::prompts::Prompts;
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
    domain: &'static Domain,
    world: World,
    generated: Mutex<HashMap<u64, Arc<Db>>>,
}

impl Worlds {
    fn fresh(&self, blueprint: &Blueprint) -> anyhow::Result<Db> {
        match &self.world {
            World::Fixed(db) => Ok(db.clone()),
            World::Generated(seed) => {
                let seed = blueprint.data_seed.unwrap_or(*seed);
                let mut cache = self
                    .generated
                    .lock()
                    .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
                if let Some(db) = cache.get(&seed) {
                    return Ok(Db::clone(db));
                }
                let db = Arc::new(crate::env::generate::generate(self.domain.name, seed)?);
                cache.insert(seed, db.clone());
                Ok(Db::clone(&db))
            }
        }
    }
}

/// One attempt, as written to `trajectories.jsonl` (verified) or `rejected.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// Line number of the blueprint in its file, from 0.
    pub blueprint: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blueprint_id: Option<String>,
    pub attempt: usize,
    pub seed: u64,
    pub domain: String,
    pub instruction: String,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Rejection>,
    /// For a state mismatch: how the final state differs from the expected one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<PatchOp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
fn record(
    blueprint_index: usize,
    attempt: usize,
    seed: u64,
    blueprint: &Blueprint,
    expected: &Db,
    c: Conversation,
) -> AttemptRecord {
    let limit = match c.end {
        End::MaxTurns => Some(Rejection::MaxTurns),
        End::ContextExceeded => Some(Rejection::ContextExceeded),
        End::ParseErrors => Some(Rejection::ParseErrors),
        End::UserStop | End::Terminate => None,
    };
    let diff = check_state(expected, &c.env.db).err().unwrap_or_default();
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
        blueprint: blueprint_index,
        blueprint_id: blueprint.id.clone(),
        attempt,
        seed,
        domain: c.env.domain.name.to_string(),
        instruction: blueprint.instruction.clone(),
        verified: reason.is_none(),
        reason,
        diff,
        missing_outputs: missing,
        end: c.end,
        user_turns: c.user_turns,
        agent_steps: c.agent_steps,
        tool_calls: c.tool_calls,
        parse_errors: c.parse_errors,
        tokens: c.tokens,
        final_hash: hash(&c.env.db),
        expected_hash: hash(expected),
        messages: c.messages,
    }
}

/// Plays and judges attempt `attempt` of blueprint `index`.
#[allow(clippy::too_many_arguments)]
pub fn run_attempt(
    models: &Models,
    prompts: &Prompts,
    config: &TrajectoryConfig,
    policy: &str,
    domain: &'static Domain,
    fresh: Db,
    index: usize,
    blueprint: &Blueprint,
    attempt: usize,
) -> anyhow::Result<AttemptRecord> {
    let seed = derive(
        config.run_seed,
        &["blueprint", &index.to_string(), "attempt", &attempt.to_string()],
    );
    let expected = expected_state(domain, fresh.clone(), &blueprint.actions);
    let setup = Setup {
        models,
        prompts,
        config,
        policy,
        blueprint,
        seed,
    };
    let conversation = converse(&setup, Env::new(domain, fresh))?;
    Ok(record(index, attempt, seed, blueprint, &expected, conversation))
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
}

impl Progress {
    /// Folds one blueprint's attempts into the counts and hands each to `sink`.
    fn commit(&mut self, attempts: Vec<AttemptRecord>, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let mut seen = HashSet::new();
        let mut any = false;
        for record in attempts {
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
            if let Some(reason) = record.reason {
                stats.trajectories.rejected += 1;
                *stats.rejected_by_reason.entry(reason.name().to_string()).or_default() += 1;
                sink.rejected(&record)?;
                continue;
            }
            if !seen.insert(fingerprint(&record.messages)) {
                stats.trajectories.duplicates += 1;
                continue;
            }
            any = true;
            stats.trajectories.verified += 1;
            for (sum, value) in self.sums.iter_mut().zip([
                record.agent_steps,
                record.user_turns.len(),
                record.tool_calls,
                record.tokens.total(),
            ]) {
                *sum += value;
            }
            sink.verified(&record)?;
        }
        self.stats.blueprints.total += 1;
        self.stats.blueprints.with_verified += usize::from(any);
        let n = self.stats.trajectories.verified.max(1) as f64;
        let [steps, turns, calls, tokens] = self.sums.map(|s| s as f64 / n);
        self.stats.per_verified = PerTrajectory {
            agent_steps: steps,
            user_turns: turns,
            tool_calls: calls,
            tokens,
        };
        self.next_blueprint += 1;
        sink.committed(self)
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
    pub domain: &'static Domain,
    pub world: World,
}

/// Runs every attempt of the blueprints from `progress.next_blueprint` on, handing the records
/// to `sink` in blueprint order, and returns the final progress. `show` turns the progress
/// display on.
pub fn run(run: Run, blueprints: &[Blueprint], sink: &mut dyn Sink, mut progress: Progress, show: bool) -> anyhow::Result<Progress> {
    let Run {
        models,
        prompts,
        config,
        policy,
        domain,
        world,
    } = run;
    let attempts = config.attempts.max(1);
    let worlds = Worlds {
        domain,
        world,
        generated: Mutex::new(HashMap::new()),
    };
    let first_job = progress.next_blueprint * attempts;
    let jobs = blueprints.len() * attempts;
    if first_job >= jobs {
        // Nothing (left) to run; the checkpoint still records that this phase took place.
        sink.committed(&progress)?;
        return Ok(progress);
    }
    let bar = PhaseProgress::new("trajectories", "verified", blueprints.len(), show);
    let tokens_before = progress.stats.tokens.total();
    let next = AtomicUsize::new(first_job);
    let failed = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<(usize, anyhow::Result<AttemptRecord>)>();
    let result = std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..config.concurrency.clamp(1, (jobs - first_job).max(1)) {
            let sender = sender.clone();
            let (next, failed, worlds) = (&next, &failed, &worlds);
            scope.spawn(move || loop {
                let job = next.fetch_add(1, Ordering::SeqCst);
                if job >= jobs || failed.load(Ordering::SeqCst) {
                    break;
                }
                let (index, attempt) = (job / attempts, job % attempts);
                let blueprint = &blueprints[index];
                let result = worlds.fresh(blueprint).and_then(|fresh| {
                    run_attempt(
                        models, prompts, config, policy, domain, fresh, index, blueprint, attempt,
                    )
                });
                let result = result.with_context(|| format!("blueprint {index}, attempt {attempt}"));
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                if sender.send((job, result)).is_err() {
                    break;
                }
            });
        }
        drop(sender);
        // Commit blueprints in order as soon as all their attempts are in.
        let mut pending: BTreeMap<usize, AttemptRecord> = BTreeMap::new();
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
                let first = progress.next_blueprint * attempts;
                if first >= jobs || !(first..first + attempts).all(|j| pending.contains_key(&j)) {
                    break;
                }
                let batch = (first..first + attempts).filter_map(|j| pending.remove(&j)).collect();
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
    result.map(|()| progress)
}
