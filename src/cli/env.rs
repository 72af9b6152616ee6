//! `apigen-mt env`: inspect an environment's tools and replay recorded actions against a database.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::world;
use crate::env::{builtins, data, resolve, state, Action, Environment};

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(subcommand)]
    pub command: EnvCommand,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the built-in domains with their tables and tools.
    List,
    /// Print a domain's tools as an OpenAI `tools` JSON list.
    Tools {
        /// A built-in domain's name (see `env list`) or an environment package's folder.
        domain: String,
    },
    /// Run a JSON list of actions against a database and report what changed.
    ///
    /// Prints one line `{"name": ..., "output": ...}` per action, then `{"diff": [...]}` (the
    /// changes as JSON-Patch-style operations) and `{"hash": "..."}` (the final state's hash).
    Replay(ReplayArgs),
    /// Print a domain's policy document (markdown).
    Policy {
        /// A built-in domain's name (see `env list`) or an environment package's folder.
        domain: String,
    },
    /// List the policy rules a JSON list of actions breaks, one JSON line each; without
    /// --actions, validate an environment package folder.
    Check(world::CheckArgs),
    /// Write a small working environment package to start from (a library's loan desk: a
    /// standard-library Python tool server, its data, policy and examples).
    Init {
        /// The folder to create; it must not exist or be empty. Its name becomes the package's.
        dir: PathBuf,
    },
    /// Print the API dependency graph: which tool's output fills which tool's arguments.
    Graph(world::GraphArgs),
    /// Write a generated database as τ-bench-style `<table>.json` files.
    Generate(world::GenerateArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A built-in domain's name (see `env list`) or an environment package's folder.
    pub domain: String,
    /// JSON file holding a list of `{"name": ..., "kwargs": {...}}` actions.
    #[arg(long)]
    pub actions: PathBuf,
    /// Directory with the domain's tables as τ-bench-style JSON files.
    #[arg(long, conflicts_with = "seed")]
    pub data_dir: Option<PathBuf>,
    /// Without --data-dir, replay on the generated database of this seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the final database here, as one JSON object keyed by table.
    #[arg(long)]
    pub dump_db: Option<PathBuf>,
}

/// Output goes through `writeln!` so that a closed pipe (`| head`) is an error, not a panic.
pub fn run(args: EnvArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        EnvCommand::List => {
            for d in builtins() {
                let tools: Vec<&str> = d.tools().iter().map(|t| t.name.as_str()).collect();
                writeln!(out, "{}\ttables: {}\ttools: {}", d.name(), d.tables().join(", "), tools.join(", "))?;
            }
        }
        EnvCommand::Tools { domain: name } => {
            let d = resolve(&name)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&d.openai_tools())?)?;
        }
        EnvCommand::Replay(replay_args) => replay(&replay_args, &mut out)?,
        EnvCommand::Policy { domain } => world::print_policy(&domain, &mut out)?,
        EnvCommand::Check(args) => world::check(&args, &mut out)?,
        EnvCommand::Init { dir } => init(&dir)?,
        EnvCommand::Graph(args) => world::graph(&args, &mut out)?,
        EnvCommand::Generate(args) => world::write_generated(&args)?,
    }
    out.flush()?;
    Ok(())
}

fn replay(args: &ReplayArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let d = resolve(&args.domain)?;
    let actions = read_actions(&args.actions)?;
    let db = world::load(d, args.data_dir.as_deref(), args.seed)?;
    let mut session = d.open(db.clone())?;
    for action in &actions {
        let output = session.call(action)?.unwrap_or_else(|error| error);
        writeln!(out, "{}", json!({"name": action.name, "output": output}))?;
    }
    let last = session.state()?;
    writeln!(out, "{}", json!({"diff": state::diff(&db, &last)}))?;
    writeln!(out, "{}", json!({"hash": state::hash(&last)}))?;
    if let Some(path) = &args.dump_db {
        data::write_atomic(path, &data::dump(&last))?;
    }
    Ok(())
}

/// The files of `examples/envs/library`, compiled in: what `env init` writes.
const TEMPLATE: &[(&str, &str)] = &[
    ("env.toml", include_str!("../../examples/envs/library/env.toml")),
    ("server.py", include_str!("../../examples/envs/library/server.py")),
    ("policy.md", include_str!("../../examples/envs/library/policy.md")),
    ("examples.jsonl", include_str!("../../examples/envs/library/examples.jsonl")),
    ("data/members.json", include_str!("../../examples/envs/library/data/members.json")),
    ("data/books.json", include_str!("../../examples/envs/library/data/books.json")),
    ("data/loans.json", include_str!("../../examples/envs/library/data/loans.json")),
];

/// Writes the template package into `dir`, named after the folder.
fn init(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        anyhow::bail!("{} exists and is not empty; give a new folder", dir.display());
    }
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect())
        .filter(|n: &String| !n.is_empty() && builtins().iter().all(|b| b.name != n))
        .unwrap_or_else(|| "library".to_string());
    for (file, text) in TEMPLATE {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let text =
            if *file == "env.toml" { text.replacen("name = \"library\"", &format!("name = \"{name}\""), 1) } else { text.to_string() };
        data::write_atomic(&path, &text)?;
    }
    eprintln!("wrote the environment package '{name}' to {}; check it with `apigen-mt env check {}`", dir.display(), dir.display());
    Ok(())
}

pub(super) fn read_actions(path: &Path) -> anyhow::Result<Vec<Action>> {
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
