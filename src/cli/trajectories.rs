//! `apigen-mt trajectories`: Phase 2, turning blueprints into verified multi-turn trajectories.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::load::ModelArgs;
use crate::engine::{EngineHandle, SamplingParams};
use crate::prompts::Prompts;
use crate::trajectory::agent::Models;
use crate::trajectory::runner::{self, Run, World};
use crate::trajectory::{Blueprint, RoleSettings, TrajectoryConfig};

/// Act out blueprints with a simulated user and an agent in the live environment, and keep the
/// conversations that verifiably reach each blueprint's outcome.
#[derive(Debug, Args)]
#[command(
    long_about = "Act out blueprints with a simulated user and an agent in the live environment.

Each blueprint (one JSON object per line with `instruction`, `actions` [{name, kwargs}] and
`outputs`; `id`, `user_id`, `persona`, `data_seed` optional) gets --attempts conversations. An
attempt is verified when the final database equals fresh data after replaying `actions`, and every
output appears in some agent message. Writes OUT/trajectories.jsonl (distinct verified
conversations), OUT/rejected.jsonl (every failed attempt with its reason) and OUT/stats.json.

Example:
  apigen-mt trajectories --domain retail --blueprints blueprints.jsonl -m qwen2.5-0.5b-instruct --out runs/p2"
)]
pub struct TrajectoriesArgs {
    /// The environment domain (retail, airline).
    #[arg(long)]
    pub domain: String,
    /// Blueprints, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    pub blueprints: PathBuf,
    /// The agent's model, and the user's and judge's unless given their own.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The simulated user's model (default: --model).
    #[arg(long, value_name = "MODEL")]
    pub user_model: Option<String>,
    /// The judge's model (default: --model).
    #[arg(long, value_name = "MODEL")]
    pub judge_model: Option<String>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Run seed; without --data-dir it also picks the generated world of blueprints that carry
    /// no `data_seed`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run on the tables in DIR instead of a generated world.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The agent's policy document (default: the domain's own).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Prompt templates overriding the compiled-in ones (user.jinja, judge.jinja).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Conversations per blueprint.
    #[arg(long, default_value_t = 3)]
    pub attempts: usize,
    /// Candidates per simulated-user turn, scored by the judge (1: no judge).
    #[arg(long, default_value_t = 4)]
    pub best_of: usize,
    /// Agent steps per conversation.
    #[arg(long, default_value_t = 30)]
    pub max_turns: usize,
    /// Conversations in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The agent's sampling temperature.
    #[arg(long, default_value_t = 0.0)]
    pub agent_temperature: f32,
    /// Most tokens per agent turn.
    #[arg(long, default_value_t = 512)]
    pub agent_max_tokens: usize,
    /// The simulated user's sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    pub user_temperature: f32,
    /// Most tokens per user message.
    #[arg(long, default_value_t = 128)]
    pub user_max_tokens: usize,
    /// The judge's sampling temperature.
    #[arg(long, default_value_t = 0.0)]
    pub judge_temperature: f32,
    /// Most tokens per judge answer.
    #[arg(long, default_value_t = 16)]
    pub judge_max_tokens: usize,
}

impl TrajectoriesArgs {
    fn config(&self) -> Result<TrajectoryConfig> {
        for (flag, value) in [
            ("--attempts", self.attempts),
            ("--best-of", self.best_of),
            ("--max-turns", self.max_turns),
            ("--concurrency", self.concurrency),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        let role = |flag: &str, temperature: f32, max_tokens: usize| -> Result<RoleSettings> {
            if !(temperature >= 0.0) {
                bail!("--{flag}-temperature must be 0 or more, not {temperature}");
            }
            if max_tokens == 0 {
                bail!("--{flag}-max-tokens must be at least 1");
            }
            Ok(RoleSettings {
                sampling: SamplingParams {
                    temperature,
                    ..SamplingParams::default()
                },
                max_tokens,
            })
        };
        Ok(TrajectoryConfig {
            run_seed: self.seed,
            attempts: self.attempts,
            best_of: self.best_of,
            max_turns: self.max_turns,
            concurrency: self.concurrency,
            agent: role("agent", self.agent_temperature, self.agent_max_tokens)?,
            user: role("user", self.user_temperature, self.user_max_tokens)?,
            judge: role("judge", self.judge_temperature, self.judge_max_tokens)?,
            ..TrajectoryConfig::default()
        })
    }

    /// One engine per distinct model name, shared by the roles that name it.
    fn models(&self) -> Result<Models> {
        let mut loaded: Vec<(String, EngineHandle)> = Vec::new();
        let mut engine = |name: &str| -> Result<EngineHandle> {
            if let Some((_, engine)) = loaded.iter().find(|(n, _)| n == name) {
                return Ok(engine.clone());
            }
            let args = ModelArgs {
                model: name.to_string(),
                ..self.model.clone()
            };
            let engine = args.start()?;
            loaded.push((name.to_string(), engine.clone()));
            Ok(engine)
        };
        let agent = engine(&self.model.model)?;
        let user = engine(self.user_model.as_deref().unwrap_or(&self.model.model))?;
        let judge = engine(self.judge_model.as_deref().unwrap_or(&self.model.model))?;
        Ok(Models { agent, user, judge })
    }
}

pub fn run(args: TrajectoriesArgs) -> Result<()> {
    let config = args.config()?;
    let domain = crate::env::domain(&args.domain)?;
    let path = args.blueprints.display().to_string();
    let text = std::fs::read_to_string(&args.blueprints).with_context(|| format!("reading blueprints {path}"))?;
    let blueprints = Blueprint::parse_jsonl(&text, &path)?;
    let policy = match &args.policy {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading policy {}", file.display()))?,
        None => crate::env::policy::document(domain.name)?.to_string(),
    };
    let prompts = Prompts::load(args.prompts.as_deref())?;
    let world = match &args.data_dir {
        Some(dir) => World::Fixed(crate::env::data::load_dir(domain, dir)?),
        None => World::Generated(args.seed),
    };
    let models = args.models()?;
    let run = Run {
        models: &models,
        prompts: &prompts,
        config: &config,
        policy: &policy,
        domain,
        world,
    };
    let stats = runner::run(run, &blueprints, &args.out)?;
    eprintln!(
        "{} attempts, {} verified, {} rejected, {} duplicates; wrote {}",
        stats.trajectories.attempted,
        stats.trajectories.verified,
        stats.trajectories.rejected,
        stats.trajectories.duplicates,
        args.out.display()
    );
    Ok(())
}
