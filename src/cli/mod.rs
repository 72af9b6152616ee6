//! The command line: one module per subcommand, each a thin layer over the library.

pub mod env;
pub mod world;
pub mod chat;
mod load;
pub mod models;
pub mod trajectories;

use clap::{Parser, Subcommand};

/// Generate verified multi-turn tool-use training data with open-weight models, on one machine.
#[derive(Debug, Parser)]
#[command(name = "apigen-mt", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Environments: domains, tool schemas, replays, policies, dependency graphs, generated worlds.
    Env(env::EnvArgs),
    Chat(chat::ChatArgs),
    Models(models::ModelsArgs),
    /// Phase 2: act out blueprints with a simulated user and an agent; keep verified trajectories.
    Trajectories(trajectories::TrajectoriesArgs),
}

/// Runs the parsed command. Every failure comes back as an error for `main` to print.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Env(args) => env::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Models(args) => models::run(args),
        Command::Trajectories(args) => trajectories::run(args),
    }
}
