//! The command line: one module per subcommand, each a thin layer over the library.

pub mod bench;
pub mod blueprints;
pub mod chat;
pub mod env;
pub mod eval;
pub mod load;
pub mod merge;
pub mod models;
mod output;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod serve;
mod settings;
pub mod trajectories;
pub mod world;

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
    /// The whole pipeline: blueprints, then trajectories, into a training dataset.
    Run(run::RunArgs),
    /// Phase 1: generate and validate task blueprints.
    Blueprints(blueprints::BlueprintsArgs),
    /// Phase 2: act out blueprints with a simulated user and an agent; keep verified trajectories.
    Trajectories(trajectories::TrajectoriesArgs),
    /// Score an agent model on tasks by pass^k (τ-bench's estimator), or compare two scores.
    Eval(eval::EvalArgs),
    /// Join the run directories of shards (--shard I/N) into one run directory.
    Merge(merge::MergeArgs),
    /// Talk to a model: one prompt, or an interactive chat.
    Chat(chat::ChatArgs),
    /// List the model presets, inspect a model, or show the exact prompt it is given.
    Models(models::ModelsArgs),
    /// Rewrite a run directory's report.md, report.html, dataset card and Parquet files.
    Report(report::ReportArgs),
    /// Environments: domains, tool schemas, replays, policies, dependency graphs, generated worlds.
    Env(env::EnvArgs),
    /// Serve a model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions).
    Serve(serve::ServeArgs),
    /// Measure prefill and decode throughput at several concurrencies (llama-batched-bench's
    /// definitions), optionally checking that batching does not change outputs.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command. Every failure comes back as an error for `main` to print.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Blueprints(args) => blueprints::run(args),
        Command::Trajectories(args) => trajectories::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Models(args) => models::run(args),
        Command::Report(args) => report::run(args),
        Command::Env(args) => env::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
    }
}
