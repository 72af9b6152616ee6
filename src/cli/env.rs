//! `apigen-mt env`: inspect a domain's tools and replay recorded actions against a database.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::env::{data, domain, domains, state, Action, Env};

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(subcommand)]
    pub command: EnvCommand,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the domains with their tables and tools.
    List,
    /// Print a domain's tools as an OpenAI `tools` JSON list.
    Tools {
        /// Domain name, e.g. `retail`.
        domain: String,
    },
    /// Run a JSON list of actions against a database and report what changed.
    ///
    /// Prints one line `{"name": ..., "output": ...}` per action, then `{"diff": [...]}` (the
    /// changes as JSON-Patch-style operations) and `{"hash": "..."}` (the final state's hash).
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Domain name, e.g. `retail`.
    pub domain: String,
    /// JSON file holding a list of `{"name": ..., "kwargs": {...}}` actions.
    #[arg(long)]
    pub actions: PathBuf,
    /// Directory with the domain's tables as τ-bench-style JSON files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write the final database here, as one JSON object keyed by table.
    #[arg(long)]
    pub dump_db: Option<PathBuf>,
}

pub fn run(args: EnvArgs) -> anyhow::Result<()> {
    match args.command {
        EnvCommand::List => {
            for d in domains() {
                let tools: Vec<&str> = d.tools.iter().map(|t| t.name).collect();
                println!("{}\ttables: {}\ttools: {}", d.name, d.tables.join(", "), tools.join(", "));
            }
            Ok(())
        }
        EnvCommand::Tools { domain: name } => {
            let d = domain(&name)?;
            println!("{}", serde_json::to_string_pretty(&d.openai_tools())?);
            Ok(())
        }
        EnvCommand::Replay(replay_args) => replay(&replay_args),
    }
}

fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let d = domain(&args.domain)?;
    let Some(dir) = &args.data_dir else {
        bail!("env replay needs --data-dir DIR: a directory with {}", table_files(d.tables));
    };
    let actions = read_actions(&args.actions)?;
    let db = data::load_dir(d, dir)?;
    let mut env = Env::new(d, db.clone());
    for (action, result) in env.replay(&actions) {
        let output = result.unwrap_or_else(|error| error);
        println!("{}", json!({"name": action.name, "output": output}));
    }
    println!("{}", json!({"diff": state::diff(&db, &env.db)}));
    println!("{}", json!({"hash": state::hash(&env.db)}));
    if let Some(out) = &args.dump_db {
        data::write_atomic(out, &data::dump(&env.db))?;
    }
    Ok(())
}

fn table_files(tables: &[&str]) -> String {
    tables.iter().map(|t| format!("{t}.json")).collect::<Vec<_>>().join(", ")
}

fn read_actions(path: &Path) -> anyhow::Result<Vec<Action>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading actions file {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} must be a JSON list of {{\"name\", \"kwargs\"}} objects; line {}, column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}
