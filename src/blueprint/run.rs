//! A blueprint run: attempts in parallel, committed in task-index order.
//!
//! Workers take task indices from a shared counter and run attempts against one engine handle;
//! the committing thread writes each attempt's lines only when every lower index has been
//! written, and deduplicates against what it has committed so far. Output therefore depends on
//! the seed alone, never on timing: the run stops after the attempt that brings the validated
//! count to N, and attempts with higher indices that happened to be in flight are discarded.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};

use crate::engine::EngineHandle;
use crate::env::data::write_atomic;
use crate::prompts::Prompts;
use crate::validate::{dedup, Failure, Stage};

use super::attempt::{self, Attempt, AttemptConfig};
use super::Blueprint;

/// One run's settings.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    pub attempt: AttemptConfig,
    /// Stop after this many validated blueprints...
    pub count: usize,
    /// ...or after this many attempts.
    pub max_attempts: usize,
    pub concurrency: usize,
    /// The model name each role uses, recorded with every blueprint.
    pub model: String,
    pub trace: bool,
    #[serde(skip)]
    pub progress: bool,
}

/// Pass counts of one stage: how many drafts reached it and how many got through.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct StageCount {
    entered: usize,
    passed: usize,
}

/// What `stats.json` reports.
#[derive(Debug, Default)]
struct Stats {
    attempted: usize,
    validated: usize,
    rejected_by_stage: BTreeMap<&'static str, usize>,
    /// Per stage, over first drafts only (no feedback) and over final drafts (with feedback).
    without_feedback: BTreeMap<Stage, StageCount>,
    with_feedback: BTreeMap<Stage, StageCount>,
    rounds: usize,
    tokens: usize,
}

fn count_stages(table: &mut BTreeMap<Stage, StageCount>, failed_at: Option<Stage>) {
    for stage in Stage::ALL {
        if failed_at.is_some_and(|f| f < stage) {
            break;
        }
        let entry = table.entry(stage).or_default();
        entry.entered += 1;
        entry.passed += (failed_at != Some(stage)) as usize;
    }
}

impl Stats {
    fn record(&mut self, first: Option<Stage>, last: Option<Stage>, rounds: usize, tokens: usize) {
        self.attempted += 1;
        match last {
            None => self.validated += 1,
            Some(stage) => *self.rejected_by_stage.entry(stage.name()).or_default() += 1,
        }
        count_stages(&mut self.without_feedback, first);
        count_stages(&mut self.with_feedback, last);
        self.rounds += rounds;
        self.tokens += tokens;
    }

    fn to_json(&self, seconds: f64) -> Value {
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
        json!({
            "blueprints": {
                "attempted": self.attempted,
                "validated": self.validated,
                "rejected": self.attempted - self.validated,
                "rejected_by_stage": self.rejected_by_stage,
                "recombined": 0,
            },
            "pass_rate": {"without_feedback": rates(&self.without_feedback), "with_feedback": rates(&self.with_feedback)},
            "revision_rounds": self.rounds,
            "tokens": self.tokens,
            "tokens_per_validated": per_validated(self.tokens),
            "wall_seconds": seconds,
        })
    }
}

/// The output files of a run, opened append-only.
struct Outputs {
    dir: PathBuf,
    blueprints: File,
    rejected: File,
    trace: Option<File>,
}

impl Outputs {
    /// Creates the files; existing output is refused, since resuming is not supported and
    /// appending to another run's lines would mix two runs silently.
    fn create(dir: &Path, trace: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let open = |name: &str| -> anyhow::Result<File> {
            let path = dir.join(name);
            if path.exists() {
                bail!("{} already exists; give an empty output directory (resuming a run is not supported)", path.display());
            }
            OpenOptions::new().create_new(true).append(true).open(&path).with_context(|| format!("creating {}", path.display()))
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            blueprints: open("blueprints.jsonl")?,
            rejected: open("rejected.jsonl")?,
            trace: if trace { Some(open("trace.jsonl")?) } else { None },
        })
    }
}

fn write_line(file: &mut File, value: &Value, dir: &Path) -> anyhow::Result<()> {
    let mut line = serde_json::to_string(value)?;
    line.push('\n');
    file.write_all(line.as_bytes()).with_context(|| format!("writing into {}", dir.display()))
}

/// Runs the whole thing into `dir` and returns the stats it wrote.
pub fn run(engine: &EngineHandle, prompts: &Prompts, config: &RunConfig, pool: &[Value], dir: &Path) -> anyhow::Result<Value> {
    if config.count == 0 || config.max_attempts == 0 || config.concurrency == 0 {
        bail!("count, max attempts and concurrency must all be at least 1");
    }
    let mut out = Outputs::create(dir, config.trace)?;
    write_atomic(&dir.join("config.json"), &serde_json::to_string_pretty(config)?)?;
    let started = Instant::now();
    let bar = progress_bar(config);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut stats = Stats::default();
    let mut accepted: Vec<(String, Blueprint)> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, anyhow::Result<Attempt>)>();
        for _ in 0..config.concurrency.min(config.max_attempts) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                let task = next.fetch_add(1, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) || task >= config.max_attempts {
                    break;
                }
                let result = attempt::run(engine, prompts, &config.attempt, pool, task);
                if tx.send((task, result)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, anyhow::Result<Attempt>> = BTreeMap::new();
        let mut due = 0;
        for (task, result) in rx {
            pending.insert(task, result);
            while let Some(result) = pending.remove(&due) {
                due += 1;
                if stop.load(Ordering::SeqCst) {
                    continue;
                }
                let committed = result.and_then(|a| commit(a, config, &mut out, &mut stats, &mut accepted));
                if let Err(e) = committed {
                    failure = Some(e.context(format!("attempt {}", due - 1)));
                    stop.store(true, Ordering::SeqCst);
                    continue;
                }
                if stats.validated >= config.count {
                    stop.store(true, Ordering::SeqCst);
                }
                bar.set_position(stats.validated as u64);
                let rate = stats.validated as f64 / stats.attempted.max(1) as f64;
                bar.set_message(format!("rejected {} · pass rate {:.0}%", stats.attempted - stats.validated, 100.0 * rate));
            }
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    let stats = stats.to_json(started.elapsed().as_secs_f64());
    write_atomic(&dir.join("stats.json"), &serde_json::to_string_pretty(&stats)?)?;
    Ok(stats)
}

fn progress_bar(config: &RunConfig) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(config.count as u64);
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} validated {pos}/{len} {bar:30} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// Writes one attempt's lines: a validated blueprint (unless it duplicates an earlier one) or
/// a rejection, then its trace.
fn commit(
    attempt: Attempt,
    config: &RunConfig,
    out: &mut Outputs,
    stats: &mut Stats,
    accepted: &mut Vec<(String, Blueprint)>,
) -> anyhow::Result<()> {
    let id = format!("{}-{}-{}", config.attempt.domain.name, config.attempt.run_seed, attempt.task);
    let outcome = match (&attempt.outcome, &attempt.draft) {
        (Ok(validated), Some(bp)) => match dedup::duplicate_of(bp, accepted) {
            Some(reason) => Err(Failure::new(Stage::Duplicate, reason)),
            None => Ok((validated, bp)),
        },
        (Ok(_), None) => bail!("a validated attempt without a draft"),
        (Err(f), _) => Err(f.clone()),
    };
    let models = json!({"generator": config.model, "reviewer": config.model, "summarizer": config.model});
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
                "recombined": false,
                "models": models,
                "seed": config.attempt.run_seed,
            });
            write_line(&mut out.blueprints, &line, &out.dir)?;
            accepted.push((id, bp.clone()));
            stats.record(attempt.first_failure, None, attempt.rounds, attempt.tokens);
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
                "models": models,
                "seed": config.attempt.run_seed,
            });
            write_line(&mut out.rejected, &line, &out.dir)?;
            stats.record(first, Some(failure.stage), attempt.rounds, attempt.tokens);
        }
    }
    if let Some(trace) = out.trace.as_mut() {
        for entry in &attempt.trace {
            write_line(trace, entry, &out.dir)?;
        }
    }
    Ok(())
}
