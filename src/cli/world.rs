//! `apigen-mt env policy | check | graph | generate`: a domain's policy, the rules a trace
//! breaks, its API dependency graph, and generated databases.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::env::read_actions;
use crate::env::{data, graph::Graph, package, resolve, Db, Environment, Package};
use crate::pyjson::{dumps_with, DumpOptions};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A built-in domain's name (see `env list`) or an environment package's folder.
    pub domain: String,
    /// JSON file holding a list of `{"name": ..., "kwargs": {...}}` actions: list the policy
    /// rules they break. Without it, DOMAIN must be a package folder, and the package is
    /// validated: env.toml, the tables, the tool schemas, the server's start and tools/list,
    /// reset-then-state round trip, and replaying the same calls twice giving the same state.
    #[arg(long)]
    pub actions: Option<PathBuf>,
    /// Directory with the domain's tables as τ-bench-style JSON files.
    #[arg(long, conflicts_with = "seed")]
    pub data_dir: Option<PathBuf>,
    /// Without --data-dir, check against the generated database of this seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// A built-in domain's name (see `env list`) or an environment package's folder.
    pub domain: String,
    /// Print Graphviz source instead of text.
    #[arg(long)]
    pub dot: bool,
    /// Also print this many seeded random walks (candidate action sequences), one per line.
    #[arg(long, default_value_t = 0)]
    pub walks: u64,
    /// Seed of the first walk; walk i uses seed + i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Longest walk, in calls.
    #[arg(long, default_value_t = 8)]
    pub max_len: usize,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A built-in domain's name (see `env list`) or an environment package's folder.
    pub domain: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory to write one `<table>.json` per table into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// The database a command works on: the tables in `data_dir`, or else the generated world of `seed`.
pub fn load(d: &dyn Environment, data_dir: Option<&Path>, seed: u64) -> anyhow::Result<Db> {
    match data_dir {
        Some(dir) => d.load(dir),
        None => d.generate(seed),
    }
}

pub fn print_policy(name: &str, out: &mut impl Write) -> anyhow::Result<()> {
    write!(out, "{}", resolve(name)?.policy())?;
    Ok(())
}

/// One JSON line per violation, then `{"violations": N}`.
pub fn check(args: &CheckArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let Some(actions) = &args.actions else { return check_package(Path::new(&args.domain), out) };
    let d = resolve(&args.domain)?;
    let actions = read_actions(actions)?;
    let db = load(d, args.data_dir.as_deref(), args.seed)?;
    let found = d.check(&db, &actions)?;
    for v in &found {
        writeln!(out, "{}", serde_json::to_string(v)?)?;
    }
    writeln!(out, "{}", json!({"violations": found.len()}))?;
    Ok(())
}

/// Validates the package in `dir`; prints one JSON line describing it when it holds up.
fn check_package(dir: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    if !dir.join(package::manifest::FILE).is_file() {
        anyhow::bail!(
            "{} is not an environment package folder (it has no {}); `env check` without --actions validates a package",
            dir.display(),
            package::manifest::FILE
        );
    }
    let loaded = Package::load(dir)?;
    let problems = package::self_check(&loaded)?;
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", dir.display(), problems.join("; "));
    }
    let g = Graph::new(&loaded);
    let content = loaded.package().map(|p| p.hash).unwrap_or_default();
    let tools: Vec<&str> = loaded.tools().iter().map(|t| t.name.as_str()).collect();
    writeln!(
        out,
        "{}",
        json!({"ok": true, "name": loaded.name(), "tables": loaded.tables(), "tools": tools, "edges": g.edges.len(), "hash": content})
    )?;
    Ok(())
}

pub fn graph(args: &GraphArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let g = Graph::new(resolve(&args.domain)?);
    if args.dot {
        write!(out, "{}", g.to_dot())?;
    } else {
        write!(out, "{g}")?;
    }
    for i in 0..args.walks {
        writeln!(out, "{}", json!(g.walk(args.seed.wrapping_add(i), args.max_len)))?;
    }
    Ok(())
}

/// Writes each table of the generated world as `<table>.json`, the layout `--data-dir` reads.
pub fn write_generated(args: &GenerateArgs) -> anyhow::Result<()> {
    let db = resolve(&args.domain)?.generate(args.seed)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let options = DumpOptions { ensure_ascii: false, indent: Some(2), sort_keys: false, separators: None };
    for (table, records) in &db {
        let mut text = dumps_with(records, &options);
        text.push('\n');
        data::write_atomic(&args.out.join(format!("{table}.json")), &text)?;
    }
    eprintln!("wrote {} tables of {} (seed {}) to {}", db.len(), args.domain, args.seed, args.out.display());
    Ok(())
}
