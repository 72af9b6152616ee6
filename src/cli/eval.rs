//! `apigen-mt eval`: pass^k of an agent model on held-out tasks.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

use super::load::{Engines, LoadArgs};
use super::pipeline::{Pipeline, PHASE2_ROLES};
use super::settings::{self, BlueprintFlags, CommonFlags, TrajectoryFlags};
use crate::dataset::jsonl::read_values;
use crate::dataset::rundir::{RunDir, RESULTS, STATS};
use crate::prompts::Prompts;
use crate::trajectory::runner::World;
use crate::trajectory::Task;

/// Score an agent model on tasks by pass^k, as τ-bench does.
#[derive(Debug, Args)]
#[command(long_about = "Score an agent model on tasks by pass^k, as τ-bench does: each task runs --trials
times with a simulated user, in the live environment, and a trial succeeds when Phase 2 would
verify it (the final database equals the ground truth's, and every expected output is said).
pass^k is the chance that all k of k trials of a task succeed, estimated per task as
C(c, k) / C(n, k) from its c successes in n trials, and averaged over tasks.

Tasks are blueprints in the `trajectories` input format: a run's blueprints.jsonl or
heldout.jsonl (`run --holdout`), or τ-bench's test tasks exported with scripts/tau_tasks.py.
The user model defaults to the agent's, best-of to 1 (no judge), and the user samples at
temperature 0.8, so trials differ. Writes DIR/results.jsonl (one line per task and trial: reward,
reason, conversation, tokens), DIR/stats.json (pass_hat_k, a 95% interval for pass^1, failures
by reason, per task), DIR/report.md and DIR/manifest.json; re-running resumes.

Examples:
  apigen-mt eval --domain retail --blueprints runs/r1/heldout.jsonl --agent-model qwen2.5-0.5b-instruct --trials 4 --out runs/eval-base
  apigen-mt eval --compare runs/eval-base runs/eval-tuned")]
pub struct EvalArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    #[command(flatten)]
    pub load: LoadArgs,
    /// The tasks, one JSON object per line.
    #[arg(long, value_name = "FILE", required_unless_present = "compare")]
    pub blueprints: Option<PathBuf>,
    /// Trials per task (K of pass^K; default 4).
    #[arg(long, value_name = "K")]
    pub trials: Option<usize>,
    /// Output directory.
    #[arg(long, value_name = "DIR", required_unless_present = "compare")]
    pub out: Option<PathBuf>,
    /// Run on the tables in DIR (for example τ-bench's data) instead of generated worlds.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The agent's policy document (default: the domain's own).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Prompt templates overriding the compiled-in ones.
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    #[command(flatten)]
    pub phase2: TrajectoryFlags,
    /// Print two finished evals side by side (pass^k and the tasks whose successes differ)
    /// instead of running one.
    #[arg(long, num_args = 2, value_names = ["DIR_A", "DIR_B"], conflicts_with_all = ["blueprints", "out"])]
    pub compare: Option<Vec<PathBuf>>,
}

pub fn run(mut args: EvalArgs) -> Result<()> {
    if let Some(dirs) = &args.compare {
        let read = |dir: &PathBuf| -> Result<Value> {
            let path = dir.join(STATS);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let stats: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            anyhow::ensure!(stats["eval"].is_object(), "{} is not an eval's stats", path.display());
            Ok(stats)
        };
        let (a, b) = (read(&dirs[0])?, read(&dirs[1])?);
        print!("{}", crate::dataset::scores::compare(&a, &b, &dirs[0].display().to_string(), &dirs[1].display().to_string()));
        return Ok(());
    }
    let (Some(blueprints), Some(out)) = (args.blueprints.clone(), args.out.clone()) else {
        anyhow::bail!("eval needs --blueprints and --out (or --compare DIR_A DIR_B)");
    };
    // τ-bench's defaults: the user is the agent's model unless named, and no judge.
    if args.common.model.is_none() && args.common.config.is_none() {
        args.common.model = args.phase2.agent_model.clone();
    }
    let mut phase2 = args.phase2.clone();
    phase2.attempts = Some(args.trials.unwrap_or(4));
    if phase2.best_of.is_none() {
        phase2.best_of = Some(1);
    }
    let mut settings = settings::resolve(&args.common, None, &BlueprintFlags::default(), &phase2)?;
    let domain = crate::env::resolve(&settings.domain)?;
    let path = blueprints.display().to_string();
    let text = std::fs::read_to_string(&blueprints).with_context(|| format!("reading tasks {path}"))?;
    let tasks = Task::parse_jsonl(&text, &path)?;
    anyhow::ensure!(!tasks.is_empty(), "{path} holds no tasks");
    let policy = match &args.policy {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading policy {}", file.display()))?,
        None => domain.policy().to_string(),
    };
    let prompts = Prompts::load(args.prompts.as_deref())?;
    let world = match &args.data_dir {
        Some(dir) => World::Fixed(domain.load(dir)?),
        None => World::Generated(settings.seed),
    };
    let shard = args.common.shard()?;
    let options = json!({
        "blueprints": crate::seeds::sha256_hex(text.as_bytes()),
        "blueprints_path": std::fs::canonicalize(&blueprints).unwrap_or(blueprints.clone()),
        "policy": crate::seeds::sha256_hex(policy.as_bytes()),
        "data_dir": args.data_dir,
        "prompts": args.prompts,
        "shard": shard.map(|s| s.to_string()),
        "load": args.load.recorded()?,
    });
    // Models load before the directory is touched: a typo in a model name leaves no run behind.
    let engines = Engines::load(&args.load, &mut settings, &PHASE2_ROLES)?;
    let stats = evaluate(&Pipeline::new(&settings, &engines, &prompts, shard), &policy, world, tasks, &out, options)?;
    let e = &stats["eval"];
    eprintln!("{} tasks × {} trials: pass^k {}; wrote {}", e["tasks"], e["trials_per_task"], e["pass_hat_k"], out.display());
    Ok(())
}

/// Runs (or resumes) an eval of `tasks` into `out` and returns its stats: every trial into
/// `results.jsonl`, then `stats.json` and `report.md` recounted from it. `options` are the
/// inputs outside the config that a resume must match.
pub fn evaluate(pipeline: &Pipeline, policy: &str, world: World, tasks: Vec<Task>, out: &Path, options: Value) -> Result<Value> {
    let mut dir = RunDir::open(out, "eval", pipeline.settings, options, &[RESULTS])?;
    let progress = dir.trajectory_progress();
    pipeline.act(policy, world, tasks, progress, &mut crate::eval::Sink { out: &mut dir })?;
    let results = read_values(&out.join(RESULTS))?;
    let timing = crate::dataset::stats::timing(dir.elapsed_seconds(), &pipeline.engines.reports(), &pipeline.roles());
    let stats = crate::dataset::scores::stats(&results, timing)?;
    dir.finish_custom(&stats, &crate::dataset::scores::report(&stats, &out.display().to_string()))?;
    Ok(stats)
}
