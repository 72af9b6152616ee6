//! Which dataset files a run writes: the ShareGPT and OpenAI layouts, each as JSON Lines and as
//! Parquet. By default all four; `--formats` picks fewer.
//!
//! The choice is an option of the run directory, recorded in the manifest's `options`, and not
//! part of the config or its hash: it changes which files exist, never what a record holds.
//! A layout's JSONL file is the crash-safe journal its records are appended to while the run
//! goes, and its Parquet file is made from it at the end, so choosing a Parquet file brings its
//! JSONL file along.

use std::fmt;

use anyhow::{bail, Result};
use serde_json::Value;

/// The shape of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layout {
    /// `conversations` of `{from, value}` turns (LLaMA-Factory, APIGen-MT-5k).
    ShareGpt,
    /// `messages` + `tools` (transformers chat templates, TRL).
    OpenAi,
}

/// How the records are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Container {
    Jsonl,
    Parquet,
}

/// One dataset file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Format {
    pub layout: Layout,
    pub container: Container,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format { layout: Layout::ShareGpt, container: Container::Jsonl },
        Format { layout: Layout::OpenAi, container: Container::Jsonl },
        Format { layout: Layout::ShareGpt, container: Container::Parquet },
        Format { layout: Layout::OpenAi, container: Container::Parquet },
    ];

    /// The name `--formats` takes: `sharegpt.jsonl`, `openai.parquet`, ...
    pub fn name(self) -> &'static str {
        match (self.layout, self.container) {
            (Layout::ShareGpt, Container::Jsonl) => "sharegpt.jsonl",
            (Layout::OpenAi, Container::Jsonl) => "openai.jsonl",
            (Layout::ShareGpt, Container::Parquet) => "sharegpt.parquet",
            (Layout::OpenAi, Container::Parquet) => "openai.parquet",
        }
    }

    /// The file in the run directory.
    pub fn file(self) -> &'static str {
        match (self.layout, self.container) {
            (Layout::ShareGpt, Container::Jsonl) => "dataset.sharegpt.jsonl",
            (Layout::OpenAi, Container::Jsonl) => "dataset.openai.jsonl",
            (Layout::ShareGpt, Container::Parquet) => "dataset.sharegpt.parquet",
            (Layout::OpenAi, Container::Parquet) => "dataset.openai.parquet",
        }
    }

    /// The JSONL file of the same layout, which a Parquet file is made from.
    pub fn journal(self) -> Format {
        Format { container: Container::Jsonl, ..self }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The names `--formats` accepts, for help and errors.
pub const NAMES: &str = "sharegpt.jsonl, openai.jsonl, sharegpt.parquet, openai.parquet, or a group: sharegpt, openai, jsonl, parquet, all";

/// The formats `items` name (each a format or a group, possibly comma-separated), with the JSONL
/// file of every chosen Parquet file added, in [`Format::ALL`] order. Empty means all.
pub fn parse(items: &[String]) -> Result<Vec<Format>> {
    let mut chosen = Vec::new();
    for item in items.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        let matched: Vec<Format> = match item {
            "all" => Format::ALL.to_vec(),
            "sharegpt" => Format::ALL.iter().copied().filter(|f| f.layout == Layout::ShareGpt).collect(),
            "openai" => Format::ALL.iter().copied().filter(|f| f.layout == Layout::OpenAi).collect(),
            "jsonl" => Format::ALL.iter().copied().filter(|f| f.container == Container::Jsonl).collect(),
            "parquet" => Format::ALL.iter().copied().filter(|f| f.container == Container::Parquet).collect(),
            name => match Format::ALL.iter().find(|f| f.name() == name || f.file() == name) {
                Some(f) => vec![*f],
                None => bail!("unknown format {name:?} in --formats: expected {NAMES}"),
            },
        };
        for f in matched {
            chosen.push(f);
            chosen.push(f.journal());
        }
    }
    if chosen.is_empty() {
        return Ok(Format::ALL.to_vec());
    }
    Ok(Format::ALL.iter().copied().filter(|f| chosen.contains(f)).collect())
}

/// The JSONL files of `formats`, which a run appends records to.
pub fn jsonl_files(formats: &[Format]) -> Vec<&'static str> {
    formats.iter().filter(|f| f.container == Container::Jsonl).map(|f| f.file()).collect()
}

/// The formats as the manifest records them (`options.formats`).
pub fn to_json(formats: &[Format]) -> Value {
    Value::Array(formats.iter().map(|f| Value::from(f.name())).collect())
}

/// The formats a run directory's manifest options record; all of them when it records none
/// (directories written before the option existed, or by commands without it).
pub fn from_options(options: &Value) -> Result<Vec<Format>> {
    match options.get("formats") {
        None | Some(Value::Null) => Ok(Format::ALL.to_vec()),
        Some(Value::Array(items)) => {
            let names: Vec<String> = items.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect();
            parse(&names)
        }
        Some(other) => bail!("manifest option `formats` is {other}, not a list of format names"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[&str]) -> Vec<&'static str> {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        parse(&items).unwrap().into_iter().map(Format::name).collect()
    }

    #[test]
    fn groups_expand_and_parquet_brings_its_journal() {
        assert_eq!(names(&[]), ["sharegpt.jsonl", "openai.jsonl", "sharegpt.parquet", "openai.parquet"]);
        assert_eq!(names(&["jsonl"]), ["sharegpt.jsonl", "openai.jsonl"]);
        assert_eq!(names(&["openai.parquet"]), ["openai.jsonl", "openai.parquet"]);
        assert_eq!(names(&["sharegpt, openai.jsonl"]), ["sharegpt.jsonl", "openai.jsonl", "sharegpt.parquet"]);
        assert_eq!(names(&["dataset.openai.jsonl"]), ["openai.jsonl"]);
        let err = parse(&["csv".to_string()]).unwrap_err().to_string();
        assert!(err.contains("\"csv\"") && err.contains("sharegpt.parquet"), "{err}");
    }

    #[test]
    fn manifests_without_the_option_mean_every_format() {
        assert_eq!(from_options(&serde_json::json!({})).unwrap(), Format::ALL);
        let recorded = to_json(&parse(&["parquet".into()]).unwrap());
        assert_eq!(from_options(&serde_json::json!({"formats": recorded})).unwrap(), Format::ALL);
        assert!(from_options(&serde_json::json!({"formats": 3})).is_err());
    }
}
