//! A run directory: the output files of `run`, `blueprints` and `trajectories`, written
//! append-only in task order, with a checkpoint in `manifest.json` after every committed task.
//!
//! Opening a directory that holds a manifest resumes it: the config must match (else the error
//! names the differing key), every file is cut back to its checkpointed length (dropping a
//! partial line, or lines of a task that was not checkpointed and will be redone), and each
//! phase continues from its saved progress. Since every line is a function of the config and
//! seed alone, the resumed files equal those of an uninterrupted run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::blueprint::run::{self as blueprint_run, Progress as BlueprintProgress};
use crate::config::{Role, Settings};
use crate::engine::meter::RoleUsage;
use crate::env::data::write_atomic;
use crate::env::Blueprint;
use crate::trajectory::runner::{self, AttemptRecord, Progress as TrajectoryProgress};

use super::jsonl::{read_values, JsonlWriter};
use super::manifest::{Manifest, Progress, VERSION};
use super::openai::{to_openai, training_messages};
use super::stats::{self, EngineReport};
use super::{report, sharegpt};

pub const BLUEPRINTS: &str = "blueprints.jsonl";
/// Phase 1's failed attempts. Each phase has its own file of rejections, so that a streaming
/// run, whose phases commit side by side, writes both in an order fixed by the seed.
pub const BLUEPRINTS_REJECTED: &str = "blueprints.rejected.jsonl";
pub const TRAJECTORIES_REJECTED: &str = "trajectories.rejected.jsonl";
pub const TRACE: &str = "trace.jsonl";
pub const TRAJECTORIES: &str = "trajectories.jsonl";
pub const SHAREGPT: &str = "dataset.sharegpt.jsonl";
pub const OPENAI: &str = "dataset.openai.jsonl";
/// `eval`'s trials, one line per (task, trial).
pub const RESULTS: &str = "results.jsonl";
/// Held-out validated blueprints (`run --holdout`): tasks for `eval`, never trained on.
pub const HELDOUT: &str = "heldout.jsonl";
pub const STATS: &str = "stats.json";

/// The JSONL files a run directory may hold, by name.
const FILES: [&str; 9] = [BLUEPRINTS, BLUEPRINTS_REJECTED, HELDOUT, TRACE, TRAJECTORIES, TRAJECTORIES_REJECTED, SHAREGPT, OPENAI, RESULTS];

/// The constant naming `name`, if it is one of a run directory's JSONL files.
pub fn known_file(name: &str) -> Option<&'static str> {
    FILES.into_iter().find(|f| *f == name)
}
pub const REPORT: &str = "report.md";

/// An open run directory.
pub struct RunDir {
    dir: PathBuf,
    manifest: Manifest,
    writers: BTreeMap<&'static str, JsonlWriter>,
    settings: Settings,
    /// The tools the agent had, as OpenAI function schemas, for the dataset records.
    tools: Vec<Value>,
    started: Instant,
}

impl RunDir {
    /// Opens `dir` for `command`, resuming it when it holds a manifest of the same run.
    /// `files` are the JSONL files this command writes; `options` are inputs outside the
    /// config that change the output.
    pub fn open(dir: &Path, command: &str, settings: &Settings, options: Value, files: &[&'static str]) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let fresh = Manifest {
            program: "apigen-mt".into(),
            version: VERSION.into(),
            command: command.into(),
            config_hash: settings.hash(),
            config: settings.to_json(),
            options,
            progress: Progress::default(),
        };
        let (manifest, resuming) = match Manifest::read(dir)? {
            Some(old) => {
                old.check_same_run(&fresh, dir)?;
                (old, true)
            }
            None => {
                for name in files.iter().chain(&[STATS, REPORT]) {
                    let path = dir.join(name);
                    if path.metadata().is_ok_and(|m| m.len() > 0) {
                        bail!(
                            "{} exists but {} has no manifest: it holds another run's output; give an empty --out",
                            path.display(),
                            dir.display()
                        );
                    }
                }
                (fresh, false)
            }
        };
        let mut writers = BTreeMap::new();
        for &name in files {
            let committed = if resuming { manifest.progress.files.get(name).copied().or(Some(0)) } else { Some(0) };
            let path = dir.join(name);
            if !resuming {
                std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            }
            writers.insert(name, JsonlWriter::open(&path, committed)?);
        }
        let domain = crate::env::resolve(&settings.domain)?;
        domain.log_to(dir)?;
        let mut run = Self {
            dir: dir.to_path_buf(),
            manifest,
            writers,
            settings: settings.clone(),
            tools: domain.openai_tools(),
            started: Instant::now(),
        };
        if resuming {
            eprintln!("resuming the run in {}", dir.display());
        } else {
            run.checkpoint()?;
        }
        Ok(run)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Seconds since this process opened the directory.
    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Whether this command writes `name`.
    pub fn writes(&self, name: &str) -> bool {
        self.writers.contains_key(name)
    }

    /// Phase 1's saved progress (default for a fresh run).
    pub fn blueprint_progress(&self) -> BlueprintProgress {
        self.manifest.progress.blueprints.clone().unwrap_or_default()
    }

    /// Phase 2's saved progress (default for a fresh run).
    pub fn trajectory_progress(&self) -> TrajectoryProgress {
        self.manifest.progress.trajectories.clone().unwrap_or_default()
    }

    /// The validated blueprints committed so far, for deduplication on resume.
    pub fn accepted(&self) -> Result<Vec<(String, Blueprint)>> {
        match self.writers.get(BLUEPRINTS) {
            Some(w) if !w.is_empty() => blueprint_run::accepted_from(&read_values(w.path())?),
            _ => Ok(Vec::new()),
        }
    }

    fn writer(&mut self, name: &'static str) -> Result<&mut JsonlWriter> {
        self.writers.get_mut(name).with_context(|| format!("this command does not write {name}"))
    }

    /// Appends one line to `name`, to be committed with the next checkpoint.
    pub fn append(&mut self, name: &'static str, value: &impl serde::Serialize) -> Result<()> {
        self.writer(name)?.append(value)
    }

    /// Syncs every file and records their lengths and the progress in the manifest.
    fn checkpoint(&mut self) -> Result<()> {
        for (name, writer) in &self.writers {
            writer.sync()?;
            self.manifest.progress.files.insert(name.to_string(), writer.len());
        }
        self.manifest.write(&self.dir)
    }

    /// Writes `stats.json` and `report.md`, marks the run complete, writes the files made from
    /// the finished directory (`report.html`, the dataset card, Parquet; see
    /// [`super::publish`]) and returns the stats. `roles` are the per-role request tallies of
    /// this process (see [`crate::engine::meter`]).
    pub fn finish(&mut self, engines: &[EngineReport], roles: &BTreeMap<String, RoleUsage>) -> Result<Value> {
        let timing = stats::timing(self.started.elapsed().as_secs_f64(), engines, roles);
        self.finish_with_timing(timing)
    }

    /// Writes a command's own `stats.json` and `report.md` (an eval's), marks the run complete
    /// and writes the files made from the finished directory.
    pub fn finish_custom(&mut self, stats: &Value, report: &str) -> Result<()> {
        write_atomic(&self.dir.join(STATS), &format!("{}\n", serde_json::to_string_pretty(stats)?))?;
        write_atomic(&self.dir.join(REPORT), report)?;
        self.manifest.progress.complete = true;
        self.checkpoint()?;
        super::publish::write(&self.dir)?;
        Ok(())
    }

    /// [`Self::finish`] with a `timing` section made elsewhere (a merge's, from its shards').
    pub fn finish_with_timing(&mut self, timing: Value) -> Result<Value> {
        let p = &self.manifest.progress;
        let stats = stats::build(p.blueprints.as_ref(), p.trajectories.as_ref(), &p.dataset, timing);
        write_atomic(&self.dir.join(STATS), &format!("{}\n", serde_json::to_string_pretty(&stats)?))?;
        write_atomic(&self.dir.join(REPORT), &report::render(&stats, &self.dir.display().to_string()))?;
        self.manifest.progress.complete = true;
        self.checkpoint()?;
        super::publish::write(&self.dir)?;
        Ok(stats)
    }

    /// The training-format records of one verified trajectory, or why it cannot be one.
    fn dataset_records(&self, record: &AttemptRecord) -> Result<(Value, Value)> {
        let messages = to_openai(&training_messages(&record.messages)?);
        let share = sharegpt::from_openai(&messages, &self.tools)?;
        let metadata = self.metadata(record);
        let openai = json!({"messages": messages, "tools": self.tools, "metadata": metadata});
        let sharegpt = json!({"conversations": share.conversations, "system": share.system, "tools": share.tools, "metadata": metadata});
        Ok((sharegpt, openai))
    }

    /// Everything needed to trace a record back to how it was made; no wall-clock values.
    fn metadata(&self, record: &AttemptRecord) -> Value {
        let s = &self.settings;
        let role = |r: &Role| {
            let p = &r.sampling;
            json!({"temperature": p.temperature, "top_p": p.top_p, "top_k": p.top_k, "min_p": p.min_p,
                   "repeat_penalty": p.repeat_penalty, "max_tokens": r.max_tokens})
        };
        let blueprint = &record.blueprint_id;
        json!({
            "id": format!("{blueprint}/attempt-{}", record.attempt),
            "blueprint_id": blueprint,
            "attempt": record.attempt,
            "domain": record.domain,
            "models": {"agent": s.agent.model, "user": s.user.model, "judge": s.judge.model},
            "sampling": {"agent": role(&s.agent), "user": role(&s.user), "judge": role(&s.judge), "best_of": s.best_of},
            "seed": record.seed,
            "run_seed": s.seed,
            "verification": {"verified": record.verified, "end": record.end, "final_hash": record.final_hash, "expected_hash": record.expected_hash},
            "judge_scores": record.user_turns.iter().map(|t| json!({"scores": t.scores, "chosen": t.chosen})).collect::<Vec<_>>(),
            "tokens": record.tokens,
            "program_version": VERSION,
            "config_hash": self.manifest.config_hash,
        })
    }
}

/// A short, stable label for why a conversation could not be converted.
fn reason_label(error: &anyhow::Error) -> String {
    let text = error.to_string();
    let text = match text.split_once(": ") {
        Some((head, rest)) if head.starts_with("message ") || head.starts_with("turn ") => rest.to_string(),
        _ => text,
    };
    text.chars().take(80).collect()
}

impl blueprint_run::Sink for RunDir {
    fn validated(&mut self, line: &Value) -> Result<()> {
        let file = if line.get("heldout") == Some(&Value::Bool(true)) { HELDOUT } else { BLUEPRINTS };
        self.writer(file)?.append(line)
    }
    fn rejected(&mut self, line: &Value) -> Result<()> {
        self.writer(BLUEPRINTS_REJECTED)?.append(line)
    }
    fn trace(&mut self, entries: &[Value]) -> Result<()> {
        let writer = self.writer(TRACE)?;
        entries.iter().try_for_each(|e| writer.append(e))
    }
    fn committed(&mut self, progress: &BlueprintProgress) -> Result<()> {
        self.manifest.progress.blueprints = Some(progress.clone());
        self.checkpoint()
    }
}

impl runner::Sink for RunDir {
    fn verified(&mut self, record: &AttemptRecord) -> Result<()> {
        self.writer(TRAJECTORIES)?.append(record)?;
        self.manifest.progress.dataset.add(record);
        match self.dataset_records(record) {
            Ok((sharegpt, openai)) => {
                // Only the layouts `--formats` chose have a writer.
                for (name, record) in [(SHAREGPT, &sharegpt), (OPENAI, &openai)] {
                    if let Some(writer) = self.writers.get_mut(name) {
                        writer.append(record)?;
                    }
                }
                self.manifest.progress.dataset.records += 1;
            }
            Err(error) => *self.manifest.progress.dataset.unconvertible.entry(reason_label(&error)).or_default() += 1,
        }
        Ok(())
    }
    fn rejected(&mut self, record: &AttemptRecord) -> Result<()> {
        self.writer(TRAJECTORIES_REJECTED)?.append(record)
    }
    fn committed(&mut self, progress: &TrajectoryProgress) -> Result<()> {
        self.manifest.progress.trajectories = Some(progress.clone());
        self.checkpoint()
    }
}
