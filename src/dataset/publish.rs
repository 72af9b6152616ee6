//! The files made from a run directory's own records for people and hubs to read: `report.md`,
//! `report.html`, the dataset card `README.md`, and the Parquet copies of the dataset files.
//!
//! They are functions of the directory's files alone (`stats.json`, `manifest.json` and the
//! JSONL files present), so [`write`] serves both the end of a run and `apigen-mt report DIR`,
//! which rewrites them for any run directory, whichever command made it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::contents::Contents;
use super::formats::{self, Container};
use super::{card, html, parquet, report};
use crate::env::data::write_atomic;

pub const REPORT_HTML: &str = "report.html";
pub const CARD: &str = "README.md";

/// Writes every derived file into `dir` and returns their paths. Parquet files are written for
/// the formats the manifest's options chose (all when it records none) whose JSONL file is
/// there, even when it holds no records.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let manifest = super::manifest::FILE;
    let options = match std::fs::read_to_string(dir.join(manifest)) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
            .with_context(|| format!("{} is not JSON", dir.join(manifest).display()))?["options"]
            .clone(),
        Err(_) => serde_json::Value::Null,
    };
    let chosen = formats::from_options(&options).with_context(|| format!("reading {}", dir.join(manifest).display()))?;
    for format in chosen.into_iter().filter(|f| f.container == Container::Parquet) {
        let jsonl = dir.join(format.journal().file());
        if jsonl.is_file() {
            let out = dir.join(format.file());
            parquet::write(format.layout, &jsonl, &out)?;
            written.push(out);
        }
    }
    let contents = Contents::read(dir)?;
    let title = dir.display().to_string();
    let mut pages = vec![(REPORT_HTML, html::render(&contents)), (CARD, card::render(&contents))];
    // An eval directory's report.md is the scores table `eval` wrote (`crate::dataset::scores::report`);
    // the run report would replace it with empty phase tables.
    if contents.manifest["command"] != "eval" {
        pages.insert(0, (super::rundir::REPORT, report::render(&contents.stats, &title)));
    }
    for (name, text) in pages {
        let path = dir.join(name);
        write_atomic(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}
