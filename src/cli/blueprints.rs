//! `apigen-mt blueprints`: Phase 1 of APIGen-MT, validated task blueprints into a directory.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::load::ModelArgs;
use crate::blueprint::attempt::AttemptConfig;
use crate::blueprint::caller::RoleConfig;
use crate::blueprint::run::{run as run_blueprints, RunConfig};
use crate::engine::SamplingParams;
use crate::env::domain;
use crate::prompts::Prompts;
use crate::samplers::fewshot;
use crate::validate::Committee;

/// Generate task blueprints and keep those that pass format, execution, policy and review.
#[derive(Debug, Args)]
#[command(long_about = "Generate task blueprints and keep those that pass format, execution, policy and review.

Writes DIR/blueprints.jsonl (validated), DIR/rejected.jsonl (every failed attempt with its stage
and reason), DIR/stats.json and DIR/config.json; with --trace also DIR/trace.jsonl. The same
command and seed give the same files whatever --concurrency is.

Example:
  apigen-mt blueprints --domain retail --model smollm2-135m-instruct --count 20 --out runs/r1")]
pub struct BlueprintsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The domain: retail or airline.
    #[arg(long)]
    pub domain: String,
    /// Stop after this many validated blueprints.
    #[arg(long)]
    pub count: usize,
    /// The output directory (must not already hold a run).
    #[arg(long)]
    pub out: PathBuf,
    /// The run seed every random choice and sampling seed derives from.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this many attempts (default 4 × count).
    #[arg(long)]
    pub max_attempts: Option<usize>,
    /// Reviewers in the committee.
    #[arg(long, default_value_t = 3)]
    pub reviewers: usize,
    /// Mean of the voted criteria a blueprint needs to pass review.
    #[arg(long, default_value_t = 0.75)]
    pub threshold: f64,
    /// Revision rounds after a failed draft (default 3 for retail, 5 for airline).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Attempts in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// A directory of *.jinja files overriding the compiled-in prompts.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// JSONL files of validated blueprints to use as few-shot examples.
    #[arg(long, num_args = 1..)]
    pub few_shot: Vec<PathBuf>,
    /// Also write every prompt and completion to DIR/trace.jsonl.
    #[arg(long)]
    pub trace: bool,
    /// Sampling temperature of the generator (reviewers and summarizer use it too).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Most tokens the generator may write.
    #[arg(long, default_value_t = 768)]
    pub generator_max_tokens: usize,
    /// Most tokens each reviewer may write.
    #[arg(long, default_value_t = 256)]
    pub reviewer_max_tokens: usize,
    /// Most tokens the summarizer may write.
    #[arg(long, default_value_t = 160)]
    pub summarizer_max_tokens: usize,
}

impl BlueprintsArgs {
    /// The run configuration these flags describe.
    pub fn config(&self) -> Result<RunConfig> {
        let domain = domain(&self.domain)?;
        if self.count == 0 || self.reviewers == 0 || self.concurrency == 0 {
            bail!("--count, --reviewers and --concurrency must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            bail!("--threshold must be between 0 and 1, got {}", self.threshold);
        }
        let sampling = SamplingParams { temperature: self.temperature, ..SamplingParams::default() };
        let role = |max_tokens| RoleConfig { sampling: sampling.clone(), max_tokens };
        let default_rounds = if domain.name == "airline" { 5 } else { 3 };
        Ok(RunConfig {
            attempt: AttemptConfig {
                domain,
                run_seed: self.seed,
                rounds: self.rounds.unwrap_or(default_rounds),
                generator: role(self.generator_max_tokens),
                summarizer: role(self.summarizer_max_tokens),
                committee: Committee { reviewers: self.reviewers, threshold: self.threshold, role: role(self.reviewer_max_tokens) },
            },
            count: self.count,
            max_attempts: self.max_attempts.unwrap_or(4 * self.count),
            concurrency: self.concurrency,
            model: self.model.model.clone(),
            trace: self.trace,
            progress: true,
        })
    }
}

pub fn run(args: BlueprintsArgs) -> Result<()> {
    let config = args.config()?;
    let prompts = Prompts::load(args.prompts.as_deref())?;
    let pool = fewshot::pool(&args.domain, &args.few_shot)?;
    let engine = args.model.start()?;
    let stats = run_blueprints(&engine, &prompts, &config, &pool, &args.out)?;
    println!("{}", serde_json::to_string_pretty(&stats["blueprints"])?);
    Ok(())
}
