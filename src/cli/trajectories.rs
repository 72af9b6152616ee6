//! `apigen-mt trajectories`: Phase 2, turning blueprints into verified multi-turn trajectories.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use super::load::{Engines, LoadArgs};
use super::output::FormatArgs;
use super::pipeline::{Pipeline, PHASE2_ROLES};
use super::settings::{self, BlueprintFlags, CommonFlags, TrajectoryFlags};
use crate::dataset::formats;
use crate::dataset::rundir::{RunDir, TRAJECTORIES, TRAJECTORIES_REJECTED};
use crate::prompts::Prompts;
use crate::trajectory::runner::World;
use crate::trajectory::Task;

/// Act out blueprints with a simulated user and an agent in the live environment, and keep the
/// conversations that verifiably reach each blueprint's outcome.
#[derive(Debug, Args)]
#[command(long_about = "Act out blueprints with a simulated user and an agent in the live environment.

Each blueprint (one JSON object per line with `instruction`, `actions` [{name, kwargs}] and
`outputs`; `id`, `user_id`, `persona`, `data_seed` optional) gets --attempts conversations. An
attempt is verified when the final database equals fresh data after replaying `actions`, and every
output appears in some agent message. Writes OUT/trajectories.jsonl (distinct verified
conversations), OUT/trajectories.rejected.jsonl (every other attempt with its reason), the training
files OUT/dataset.sharegpt.jsonl and OUT/dataset.openai.jsonl and their .parquet copies (--formats
picks fewer), OUT/stats.json, OUT/report.md, OUT/report.html, the dataset card OUT/README.md and
OUT/manifest.json. Re-running the same command resumes.

Example:
  apigen-mt trajectories --domain retail --blueprints blueprints.jsonl -m qwen2.5-0.5b-instruct --out runs/p2")]
pub struct TrajectoriesArgs {
    #[command(flatten)]
    pub common: CommonFlags,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Blueprints, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    pub blueprints: PathBuf,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Run on the tables in DIR instead of a generated world (without it, blueprints that
    /// carry no `data_seed` run on the world of --seed).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The agent's policy document (default: the domain's own).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Prompt templates overriding the compiled-in ones (user.jinja, judge.jinja).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    #[command(flatten)]
    pub phase2: TrajectoryFlags,
    #[command(flatten)]
    pub formats: FormatArgs,
}

pub fn run(args: TrajectoriesArgs) -> Result<()> {
    let mut settings = settings::resolve(&args.common, None, &BlueprintFlags::default(), &args.phase2)?;
    let domain = crate::env::resolve(&settings.domain)?;
    let path = args.blueprints.display().to_string();
    let text = std::fs::read_to_string(&args.blueprints).with_context(|| format!("reading blueprints {path}"))?;
    let blueprints = Task::parse_jsonl(&text, &path)?;
    let policy = match &args.policy {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading policy {}", file.display()))?,
        None => domain.policy().to_string(),
    };
    let prompts = Prompts::load(args.prompts.as_deref())?;
    let world = match &args.data_dir {
        Some(dir) => World::Fixed(domain.load(dir)?),
        None => World::Generated(settings.seed),
    };
    let formats = args.formats.chosen()?;
    // The inputs are part of the run: resuming with other blueprints or another policy is refused.
    let shard = args.common.shard()?;
    let options = json!({
        "formats": formats::to_json(&formats),
        "blueprints": crate::seeds::sha256_hex(text.as_bytes()),
        "blueprints_path": std::fs::canonicalize(&args.blueprints).unwrap_or_else(|_| args.blueprints.clone()),
        "shard": shard.map(|s| s.to_string()),
        "policy": crate::seeds::sha256_hex(policy.as_bytes()),
        "data_dir": args.data_dir,
        "prompts": args.prompts,
        "load": args.load.recorded()?,
    });
    // Models load before the directory is touched: a typo in a model name leaves no run behind.
    let engines = Engines::load(&args.load, &mut settings, &PHASE2_ROLES)?;
    let mut files = vec![TRAJECTORIES, TRAJECTORIES_REJECTED];
    files.extend(formats::jsonl_files(&formats));
    let mut out = RunDir::open(&args.out, "trajectories", &settings, options, &files)?;
    let pipeline = Pipeline::new(&settings, &engines, &prompts, shard);
    pipeline.trajectories(&policy, world, blueprints, &mut out)?;
    let stats = out.finish(&engines.reports(), &pipeline.roles())?;
    let t = &stats["trajectories"];
    eprintln!(
        "{} attempts, {} verified, {} rejected, {} duplicates; wrote {}",
        t["attempted"],
        t["verified"],
        t["rejected"],
        t["duplicates"],
        args.out.display()
    );
    Ok(())
}
