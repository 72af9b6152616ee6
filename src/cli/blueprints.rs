//! `apigen-mt blueprints`: Phase 1 of APIGen-MT, validated task blueprints into a directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::load::{Engines, LoadArgs};
use super::pipeline::{Pipeline, PHASE1_ROLES};
use super::settings::{self, BlueprintFlags, CommonFlags, TrajectoryFlags};
use crate::dataset::rundir::{RunDir, BLUEPRINTS, BLUEPRINTS_REJECTED, HELDOUT, TRACE};
use crate::prompts::Prompts;
use crate::samplers::fewshot;

/// Generate task blueprints and keep those that pass format, execution, policy and review.
#[derive(Debug, Args)]
#[command(long_about = "Generate task blueprints and keep those that pass format, execution, policy and review.

Writes DIR/blueprints.jsonl (validated), DIR/blueprints.rejected.jsonl (every failed attempt with
its stage and reason), DIR/stats.json, DIR/report.md, DIR/report.html (charts and a browser of every
blueprint), the dataset card DIR/README.md and DIR/manifest.json; with --trace also
DIR/trace.jsonl. The same command and seed give the same files whatever --concurrency is.
Re-running the same command into the same DIR resumes it.

Example:
  apigen-mt blueprints --domain retail --model smollm2-135m-instruct --count 20 --out runs/r1")]
pub struct BlueprintsArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Stop after this many validated blueprints (default 10).
    #[arg(long)]
    pub count: Option<usize>,
    /// The output directory.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub phase1: BlueprintFlags,
    /// A directory of *.jinja files overriding the compiled-in prompts.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// JSONL files of validated blueprints to use as few-shot examples.
    #[arg(long, num_args = 1..)]
    pub few_shot: Vec<PathBuf>,
    /// Also write every request (the role's prompt, and the text the model's chat template made
    /// of it) and its completion to DIR/trace.jsonl.
    #[arg(long)]
    pub trace: bool,
}

pub fn run(args: BlueprintsArgs) -> Result<()> {
    let mut settings = settings::resolve(&args.common, args.count, &args.phase1, &TrajectoryFlags::default())?;
    let prompts = Prompts::load(args.prompts.as_deref())?;
    let pool = fewshot::pool(&settings.domain, &args.few_shot)?;
    let shard = args.common.shard()?;
    let options = json!({"prompts": args.prompts, "few_shot": args.few_shot, "trace": args.trace, "shard": shard.map(|s| s.to_string()),
                         "load": args.load.recorded()?});
    let mut files = vec![BLUEPRINTS, BLUEPRINTS_REJECTED];
    if args.trace {
        files.push(TRACE);
    }
    if settings.holdout > 0.0 {
        files.push(HELDOUT);
    }
    // Models load before the directory is touched: a typo in a model name leaves no run behind.
    let engines = Engines::load(&args.load, &mut settings, &PHASE1_ROLES)?;
    let mut out = RunDir::open(&args.out, "blueprints", &settings, options, &files)?;
    let pipeline = Pipeline::new(&settings, &engines, &prompts, shard);
    pipeline.blueprints(&pool, args.trace, &mut out)?;
    let stats = out.finish(&engines.reports(), &pipeline.roles())?;
    println!("{}", serde_json::to_string_pretty(&stats["blueprints"])?);
    Ok(())
}
