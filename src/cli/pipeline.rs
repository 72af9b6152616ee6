//! The two phases driven from resolved [`Settings`] into a [`RunDir`]: shared by `run`,
//! `blueprints` and `trajectories`, so the three commands cannot drift apart.

use anyhow::Result;
use serde_json::Value;

use super::load::Engines;
use crate::blueprint::caller;
use crate::blueprint::run::{self as blueprint_run, Progress as BlueprintProgress};
use crate::config::Settings;
use crate::dataset::RunDir;
use crate::prompts::Prompts;
use crate::trajectory::agent;
use crate::trajectory::runner::{self, Progress as TrajectoryProgress, World};
use crate::trajectory::Blueprint;

/// The roles each phase needs models for.
pub const PHASE1_ROLES: [&str; 3] = ["generator", "reviewer", "summarizer"];
pub const PHASE2_ROLES: [&str; 3] = ["agent", "user", "judge"];

/// Runs (or resumes) Phase 1 into `out`.
pub fn blueprints(settings: &Settings, engines: &Engines, prompts: &Prompts, pool: &[Value], trace: bool, out: &mut RunDir) -> Result<BlueprintProgress> {
    let config = settings.blueprint_config(trace)?;
    let models = caller::Models {
        generator: engines.get(&settings.generator.model)?,
        reviewers: settings.reviewer.models.iter().map(|m| engines.get(m)).collect::<Result<_>>()?,
        summarizer: engines.get(&settings.summarizer.model)?,
    };
    let run = blueprint_run::Run { models: &models, prompts, config: &config, pool };
    let progress = out.blueprint_progress();
    let accepted = out.accepted()?;
    blueprint_run::run(run, out, progress, accepted)
}

/// Runs (or resumes) Phase 2 on `blueprints` into `out`.
pub fn trajectories(
    settings: &Settings,
    engines: &Engines,
    prompts: &Prompts,
    policy: &str,
    world: World,
    blueprints: &[Blueprint],
    out: &mut RunDir,
) -> Result<TrajectoryProgress> {
    let config = settings.trajectory_config();
    let models = agent::Models {
        agent: engines.get(&settings.agent.model)?,
        user: engines.get(&settings.user.model)?,
        judge: engines.get(&settings.judge.model)?,
    };
    let run = runner::Run { models: &models, prompts, config: &config, policy, domain: crate::env::domain(&settings.domain)?, world };
    let progress = out.trajectory_progress();
    runner::run(run, blueprints, out, progress, true)
}
