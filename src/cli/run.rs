//! `apigen-mt run`: the whole pipeline in one command. Phase 1 until N blueprints validate (or
//! the attempt cap), then Phase 2 on them, into one directory holding the training files, both
//! phases' records, the stats, a report and the manifest that makes the run resumable.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::load::{Engines, LoadArgs};
use super::output::FormatArgs;
use super::pipeline::{Pipeline, PHASE1_ROLES, PHASE2_ROLES};
use super::settings::{self, BlueprintFlags, CommonFlags, TrajectoryFlags};
use crate::dataset::formats;
use crate::dataset::rundir::{RunDir, BLUEPRINTS, BLUEPRINTS_REJECTED, HELDOUT, TRACE, TRAJECTORIES, TRAJECTORIES_REJECTED};
use crate::prompts::Prompts;
use crate::samplers::fewshot;
use crate::trajectory::runner::World;

/// Generate a verified multi-turn tool-use dataset: blueprints, then trajectories.
#[derive(Debug, Args)]
#[command(long_about = "Generate a verified multi-turn tool-use dataset: Phase 1 writes and validates task
blueprints until --tasks validate (or --max-attempts is reached), and Phase 2 acts each validated
blueprint out with a simulated user and an agent, keeping the verified conversations. The phases
run side by side: a blueprint's conversations start as soon as it is committed.

DIR receives dataset.sharegpt.jsonl (LLaMA-Factory sharegpt, the APIGen-MT-5k layout),
dataset.openai.jsonl (messages + tools, for transformers chat templates and TRL), both also as
.parquet (--formats picks fewer), blueprints.jsonl and blueprints.rejected.jsonl (Phase 1),
trajectories.jsonl and trajectories.rejected.jsonl (Phase 2), stats.json, report.md, report.html
(charts and a browser of every record), README.md (a Hugging Face dataset card) and
manifest.json. Each file is committed in task order, so the files do not depend on
--concurrency; after a crash, re-running the same command resumes and gives the same files as an
uninterrupted run. A changed config is refused.

Example:
  apigen-mt run --domain retail --model smollm2-135m-instruct --tasks 5 --out runs/r1
  apigen-mt run --config run.toml --out runs/r2")]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Validated blueprints to produce, each then acted out (default 10).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// The output directory.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub phase1: BlueprintFlags,
    #[command(flatten)]
    pub phase2: TrajectoryFlags,
    /// A directory of *.jinja files overriding the compiled-in prompts.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// JSONL files of validated blueprints to use as few-shot examples.
    #[arg(long, num_args = 1..)]
    pub few_shot: Vec<PathBuf>,
    /// Also write every Phase 1 request (the prompt as the model's chat template renders it)
    /// and its completion to DIR/trace.jsonl.
    #[arg(long)]
    pub trace: bool,
    #[command(flatten)]
    pub formats: FormatArgs,
}

pub fn run(args: RunArgs) -> Result<()> {
    let mut settings = settings::resolve(&args.common, args.tasks, &args.phase1, &args.phase2)?;
    let domain = crate::env::resolve(&settings.domain)?;
    let prompts = Prompts::load(args.prompts.as_deref())?;
    let pool = fewshot::pool(&settings.domain, &args.few_shot)?;
    let shard = args.common.shard()?;
    let formats = args.formats.chosen()?;
    let options = json!({"prompts": args.prompts, "few_shot": args.few_shot, "trace": args.trace, "shard": shard.map(|s| s.to_string()),
                         "formats": formats::to_json(&formats), "load": args.load.recorded()?});
    let mut files = vec![BLUEPRINTS, BLUEPRINTS_REJECTED, TRAJECTORIES, TRAJECTORIES_REJECTED];
    files.extend(formats::jsonl_files(&formats));
    if args.trace {
        files.push(TRACE);
    }
    if settings.holdout > 0.0 {
        files.push(HELDOUT);
    }
    // Models load before the directory is touched: a typo in a model name leaves no run behind.
    let mut roles = PHASE1_ROLES.to_vec();
    roles.extend(PHASE2_ROLES);
    let engines = Engines::load(&args.load, &mut settings, &roles)?;
    let out = RunDir::open(&args.out, "run", &settings, options, &files)?;
    let policy = domain.policy();
    let pipeline = Pipeline::new(&settings, &engines, &prompts, shard);
    let mut out = pipeline.stream(&pool, args.trace, policy, World::Generated(settings.seed), out)?;
    let stats = out.finish(&engines.reports(), &pipeline.roles())?;
    let records = &stats["dataset"]["records"];
    eprintln!("{records} dataset records; report: {}", out.dir().join("report.md").display());
    Ok(())
}
