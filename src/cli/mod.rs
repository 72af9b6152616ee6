//! The command line: one module per subcommand, each a thin layer over the library.

use clap::{Parser, Subcommand};

/// Generate verified multi-turn tool-use training data with open-weight models, on one machine.
#[derive(Debug, Parser)]
#[command(name = "apigen-mt", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}

/// Runs the parsed command. Every failure comes back as an error for `main` to print.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {}
}
