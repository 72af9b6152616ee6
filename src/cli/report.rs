//! `apigen-mt report`: rewrite the files made from a run directory's records.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::dataset::publish;

/// Rewrite report.md, report.html, the dataset card README.md and the Parquet files of run directories.
#[derive(Debug, Args)]
#[command(long_about = "Rewrite the files made from a run directory's records: report.md, report.html (charts
and a browser of every record), the dataset card README.md, and dataset.*.parquet (for the formats the
run chose, from its dataset JSONL files).

Works on the directory of any command (run, blueprints, trajectories) and on merged ones: it reads
stats.json (required), manifest.json and whichever record files are there. Nothing else in the
directory changes. `run`, `blueprints` and `trajectories` write these files themselves when they
finish; use this after changing a directory by hand, or to get them for a directory made by an
older version.

Example:
  apigen-mt report runs/r1
  apigen-mt report runs/*")]
pub struct ReportArgs {
    /// Run directories.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

pub fn run(args: ReportArgs) -> Result<()> {
    for dir in &args.dirs {
        let written = publish::write(dir).with_context(|| format!("writing the report of {}", dir.display()))?;
        let names: Vec<String> = written.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string())).collect();
        eprintln!("{}: wrote {}", dir.display(), names.join(", "));
    }
    Ok(())
}
