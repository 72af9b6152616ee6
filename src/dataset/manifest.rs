//! `manifest.json`: what a run directory holds and how far it got. It names the program
//! version, the command, the resolved config and its hash, and after every committed task the
//! byte length of each output file with the state each phase continues from. Re-running the
//! same command reads it back to resume; a different config or version is refused, naming what
//! differs. It is rewritten atomically (temporary file, then rename), so it is never torn.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::blueprint::run::Progress as BlueprintProgress;
use crate::config::first_difference;
use crate::env::data::write_atomic;
use crate::trajectory::runner::Progress as TrajectoryProgress;

use super::stats::Distributions;

pub const FILE: &str = "manifest.json";

/// The program version written into manifests and records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub program: String,
    pub version: String,
    /// `run`, `blueprints` or `trajectories`.
    pub command: String,
    pub config_hash: String,
    pub config: Value,
    /// Inputs outside the config that also shape the output (an input file, `--trace`).
    pub options: Value,
    pub progress: Progress,
}

/// How far the run got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Committed bytes per output file.
    pub files: BTreeMap<String, u64>,
    pub blueprints: Option<BlueprintProgress>,
    pub trajectories: Option<TrajectoryProgress>,
    pub dataset: Distributions,
    /// Every phase finished and the summary files were written.
    pub complete: bool,
}

impl Manifest {
    /// Reads `dir/manifest.json`, or `None` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).map(Some).with_context(|| format!("{} is not a manifest this version can read", path.display()))
    }

    /// Refuses to resume `self` as `other` unless it is the same command, version, config and
    /// options; the error names the first differing key.
    pub fn check_same_run(&self, other: &Manifest, dir: &Path) -> Result<()> {
        let refuse = |what: String| -> Result<()> {
            bail!(
                "{} holds a run whose {what}; resuming needs the same command and settings (use a new --out to start over)",
                dir.join(FILE).display()
            )
        };
        if self.command != other.command {
            return refuse(format!("command was `{}`, not `{}`", self.command, other.command));
        }
        if self.version != other.version {
            return refuse(format!("program version was {}, not {}", self.version, other.version));
        }
        if let Some(key) = first_difference(&self.config, &other.config) {
            return refuse(format!("config differs at `{key}`"));
        }
        if let Some(key) = first_difference(&self.options, &other.options) {
            return refuse(format!("option `{key}` differs"));
        }
        Ok(())
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(FILE), &format!("{}\n", serde_json::to_string_pretty(self)?))
    }
}
