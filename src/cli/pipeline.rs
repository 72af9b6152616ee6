//! The two phases driven from resolved [`Settings`] into a [`RunDir`]: shared by `run`,
//! `blueprints` and `trajectories`, so the three commands cannot drift apart.
//!
//! `run` streams: Phase 1 and Phase 2 run at the same time, and a blueprint's conversations
//! start as soon as the blueprint is committed. Both phases draw on one pool of slots (the
//! concurrency), Phase 2 first, so the engine always has the same amount of work in flight.
//! Each phase still commits in its own order (attempt index, blueprint line), so the files are
//! the same as when the phases run one after the other, at any concurrency.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::Value;

use super::load::Engines;
use crate::blueprint::run::{self as blueprint_run, Progress as BlueprintProgress};
use crate::config::{ModelRef, Settings};
use crate::dataset::rundir::{RunDir, BLUEPRINTS};
use crate::engine::meter::{Meter, RoleUsage};
use crate::prompts::Prompts;
use crate::roles;
use crate::schedule::Slots;
use crate::shard::Shard;
use crate::trajectory::agent;
use crate::trajectory::runner::{self, AttemptRecord, Progress as TrajectoryProgress, Tasks, World};
use crate::trajectory::Task;

/// The roles each phase needs models for.
pub const PHASE1_ROLES: [&str; 3] = ["generator", "reviewer", "summarizer"];
pub const PHASE2_ROLES: [&str; 3] = ["agent", "user", "judge"];

/// The context length a default concurrency is sized for: Phase 2's prompts reach about this
/// many tokens (policy, tools and a conversation of a few turns).
pub const WORKLOAD_CONTEXT: usize = 4096;

/// Most attempts in flight by default, whatever the models could hold: beyond this, more
/// threads add latency to every attempt without adding throughput on a workstation.
pub const MAX_DEFAULT_CONCURRENCY: usize = 64;

/// Attempts in flight: `--concurrency` when given, else as many as every model the roles use can
/// serve at once at [`WORKLOAD_CONTEXT`] (an in-process engine: what its KV budget holds; a
/// server: its most requests in flight), at most [`MAX_DEFAULT_CONCURRENCY`].
pub fn concurrency(settings: &Settings, engines: &Engines, roles: &[&str]) -> Result<usize> {
    if let Some(n) = settings.concurrency {
        return Ok(n);
    }
    let mut fit = MAX_DEFAULT_CONCURRENCY;
    for model in settings.models(roles) {
        if let Some(n) = engines.get(model)?.capacity(WORKLOAD_CONTEXT) {
            fit = fit.min(n);
        }
    }
    Ok(fit.max(1))
}

/// Everything both phases share: the settings, the models, the prompts, and the per-role meter
/// that `stats.json` reports.
pub struct Pipeline<'a> {
    pub settings: &'a Settings,
    pub engines: &'a Engines,
    pub prompts: &'a Prompts,
    pub meter: Arc<Meter>,
    /// The share of the run this process does (`None`: all of it).
    pub shard: Option<Shard>,
    /// Show progress displays on stderr (a command does; a test or library caller may not).
    pub show: bool,
}

impl<'a> Pipeline<'a> {
    pub fn new(settings: &'a Settings, engines: &'a Engines, prompts: &'a Prompts, shard: Option<Shard>) -> Self {
        Self { settings, engines, prompts, meter: Meter::new(), shard, show: true }
    }

    /// Phase 1's configuration for this process.
    fn blueprint_config(&self, trace: bool) -> Result<blueprint_run::RunConfig> {
        let mut config = blueprint_run::RunConfig::from_settings(self.settings, trace)?;
        config.shard = self.shard;
        config.progress = self.show;
        Ok(config)
    }

    /// The handle of `role`'s model, counted under the role.
    fn role(&self, role: &str, model: ModelRef) -> Result<crate::engine::EngineHandle> {
        Ok(self.meter.wrap(role, &self.engines.get(model)?))
    }

    fn phase1_models(&self) -> Result<roles::Models> {
        let s = self.settings;
        Ok(roles::Models {
            generator: self.role("generator", s.generator.model_ref())?,
            reviewers: s.reviewer.model_refs().into_iter().map(|m| self.role("reviewer", m)).collect::<Result<_>>()?,
            summarizer: self.role("summarizer", s.summarizer.model_ref())?,
        })
    }

    fn phase2_models(&self) -> Result<agent::Models> {
        let s = self.settings;
        Ok(agent::Models {
            agent: self.role("agent", s.agent.model_ref())?,
            user: self.role("user", s.user.model_ref())?,
            judge: self.role("judge", s.judge.model_ref())?,
        })
    }

    /// Each role's totals, for `stats.json`.
    pub fn roles(&self) -> BTreeMap<String, RoleUsage> {
        self.meter.snapshot()
    }

    /// Runs (or resumes) Phase 1 alone into `out`.
    pub fn blueprints(&self, pool: &[Value], trace: bool, out: &mut RunDir) -> Result<BlueprintProgress> {
        let slots = Slots::new(concurrency(self.settings, self.engines, &PHASE1_ROLES)?);
        let config = self.blueprint_config(trace)?;
        let models = self.phase1_models()?;
        let run = blueprint_run::Run { models: &models, prompts: self.prompts, config: &config, pool, slots: &slots };
        let (progress, accepted) = (out.blueprint_progress(), out.accepted()?);
        blueprint_run::run(run, out, progress, accepted)
    }

    /// Runs (or resumes) Phase 2 alone on `tasks` into `out`; a shard takes every N-th task.
    pub fn trajectories(&self, policy: &str, world: World, tasks: Vec<Task>, out: &mut RunDir) -> Result<TrajectoryProgress> {
        let progress = out.trajectory_progress();
        self.act(policy, world, tasks, progress, out)
    }

    /// Acts `tasks` out (from `progress.next_blueprint` on) into any Phase 2 sink: the
    /// training files of `trajectories`, or the trials of `eval`. A shard takes the tasks at
    /// positions I, I+N, I+2N, ...
    pub fn act(
        &self,
        policy: &str,
        world: World,
        tasks: Vec<Task>,
        progress: TrajectoryProgress,
        sink: &mut dyn runner::Sink,
    ) -> Result<TrajectoryProgress> {
        let slots = Slots::new(concurrency(self.settings, self.engines, &PHASE2_ROLES)?);
        let config = crate::trajectory::TrajectoryConfig::from_settings(self.settings);
        let models = self.phase2_models()?;
        let tasks: Vec<Task> = match self.shard {
            Some(shard) => tasks.into_iter().enumerate().filter(|(i, _)| shard.owns_group(*i)).map(|(_, t)| t).collect(),
            None => tasks,
        };
        let expected = tasks.len();
        let tasks = runner::tasks_of(tasks.into_iter().skip(progress.next_blueprint));
        let domain = crate::env::resolve(&self.settings.domain)?;
        let run = runner::Run {
            models: &models,
            prompts: self.prompts,
            config: &config,
            policy,
            domain,
            world,
            slots: &slots,
            expected,
            show: self.show,
        };
        runner::run(run, tasks, sink, progress)
    }

    /// Runs (or resumes) both phases at once into `out`: every blueprint Phase 1 commits is
    /// acted out by Phase 2 while Phase 1 goes on.
    pub fn stream(&self, pool: &[Value], trace: bool, policy: &str, world: World, out: RunDir) -> Result<RunDir> {
        let mut roles = PHASE1_ROLES.to_vec();
        roles.extend(PHASE2_ROLES);
        let slots = Slots::new(concurrency(self.settings, self.engines, &roles)?);
        let p1_config = self.blueprint_config(trace)?;
        let p2_config = crate::trajectory::TrajectoryConfig::from_settings(self.settings);
        let (p1_models, p2_models) = (self.phase1_models()?, self.phase2_models()?);
        let (p1_progress, p2_progress, accepted) = (out.blueprint_progress(), out.trajectory_progress(), out.accepted()?);
        // Blueprints committed before a crash whose conversations were not: they go first.
        let committed = committed_tasks(&out)?;
        let (sender, tasks): (mpsc::Sender<Task>, Tasks) = mpsc::channel();
        for task in committed.into_iter().skip(p2_progress.next_blueprint) {
            sender.send(task).context("queueing committed blueprints")?;
        }
        let out = Mutex::new(out);
        let domain = crate::env::resolve(&self.settings.domain)?;
        let (phase1, phase2) = std::thread::scope(|scope| {
            let phase2 = scope.spawn(|| {
                let run = runner::Run {
                    models: &p2_models,
                    prompts: self.prompts,
                    config: &p2_config,
                    policy,
                    domain,
                    world,
                    slots: &slots,
                    expected: self.settings.tasks,
                    show: self.show,
                };
                runner::run(run, tasks, &mut Phase2Sink { out: &out, records: Vec::new() }, p2_progress)
            });
            let run = blueprint_run::Run { models: &p1_models, prompts: self.prompts, config: &p1_config, pool, slots: &slots };
            let mut sink = Phase1Sink { out: &out, lines: Vec::new(), tasks: sender };
            let phase1 = blueprint_run::run(run, &mut sink, p1_progress, accepted);
            // Closing the stream lets Phase 2 finish once it has acted out what it received.
            drop(sink);
            (phase1, phase2.join())
        });
        let phase2 = phase2.map_err(|_| anyhow::anyhow!("Phase 2 panicked"))?;
        // A Phase 2 failure also stops Phase 1 (its stream is gone): report the cause.
        phase2.context("Phase 2")?;
        phase1.context("Phase 1")?;
        out.into_inner().map_err(|_| anyhow::anyhow!("a phase panicked while writing the run directory"))
    }
}

/// The validated blueprints committed to `out` so far, as Phase 2 tasks.
fn committed_tasks(out: &RunDir) -> Result<Vec<Task>> {
    let path = out.dir().join(BLUEPRINTS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Task::parse_jsonl(&text, &path.display().to_string())
}

/// One buffered write of a phase, applied with its checkpoint under one lock so that the other
/// phase's checkpoint never records half of a task.
enum Line {
    Validated(Value),
    Rejected(Value),
    Trace(Vec<Value>),
}

/// Phase 1's side of a streaming run: lines are written with their checkpoint, and the
/// blueprints they validated are handed to Phase 2 only once that checkpoint is on disk, so a
/// conversation is never committed for a blueprint that a crash would take back.
struct Phase1Sink<'a> {
    out: &'a Mutex<RunDir>,
    lines: Vec<Line>,
    tasks: mpsc::Sender<Task>,
}

impl blueprint_run::Sink for Phase1Sink<'_> {
    fn validated(&mut self, line: &Value) -> Result<()> {
        self.lines.push(Line::Validated(line.clone()));
        Ok(())
    }
    fn rejected(&mut self, line: &Value) -> Result<()> {
        self.lines.push(Line::Rejected(line.clone()));
        Ok(())
    }
    fn trace(&mut self, entries: &[Value]) -> Result<()> {
        self.lines.push(Line::Trace(entries.to_vec()));
        Ok(())
    }
    fn committed(&mut self, progress: &BlueprintProgress) -> Result<()> {
        let mut tasks = Vec::new();
        {
            let mut out = self.out.lock().map_err(|_| anyhow::anyhow!("Phase 2 panicked while writing"))?;
            for line in self.lines.drain(..) {
                match line {
                    Line::Validated(line) => {
                        blueprint_run::Sink::validated(&mut *out, &line)?;
                        // A held-out blueprint is a task for `eval`, never trained on.
                        if line.get("heldout") != Some(&Value::Bool(true)) {
                            tasks.push(serde_json::from_value::<Task>(line).context("a validated blueprint as a Phase 2 task")?);
                        }
                    }
                    Line::Rejected(line) => blueprint_run::Sink::rejected(&mut *out, &line)?,
                    Line::Trace(entries) => blueprint_run::Sink::trace(&mut *out, &entries)?,
                }
            }
            blueprint_run::Sink::committed(&mut *out, progress)?;
        }
        for task in tasks {
            self.tasks.send(task).map_err(|_| anyhow::anyhow!("Phase 2 stopped"))?;
        }
        Ok(())
    }
}

/// Phase 2's side of a streaming run: a blueprint's records are written with its checkpoint.
struct Phase2Sink<'a> {
    out: &'a Mutex<RunDir>,
    records: Vec<(bool, AttemptRecord)>,
}

impl runner::Sink for Phase2Sink<'_> {
    fn verified(&mut self, record: &AttemptRecord) -> Result<()> {
        self.records.push((true, record.clone()));
        Ok(())
    }
    fn rejected(&mut self, record: &AttemptRecord) -> Result<()> {
        self.records.push((false, record.clone()));
        Ok(())
    }
    fn committed(&mut self, progress: &TrajectoryProgress) -> Result<()> {
        let mut out = self.out.lock().map_err(|_| anyhow::anyhow!("Phase 1 panicked while writing"))?;
        for (verified, record) in self.records.drain(..) {
            match verified {
                true => runner::Sink::verified(&mut *out, &record)?,
                false => runner::Sink::rejected(&mut *out, &record)?,
            }
        }
        runner::Sink::committed(&mut *out, progress)
    }
}
