//! `--formats`: which dataset files `run` and `trajectories` write.

use anyhow::Result;
use clap::Args;

use crate::dataset::formats::{self, Format};

#[derive(Debug, Clone, Default, Args)]
pub struct FormatArgs {
    /// Dataset files to write, comma-separated: sharegpt.jsonl, openai.jsonl, sharegpt.parquet,
    /// openai.parquet, or a group (sharegpt, openai, jsonl, parquet, all; default all). A
    /// Parquet file is made from its JSONL file at the end, so that one is written too.
    #[arg(long, value_delimiter = ',', value_name = "FORMATS")]
    pub formats: Vec<String>,
}

impl FormatArgs {
    pub fn chosen(&self) -> Result<Vec<Format>> {
        formats::parse(&self.formats)
    }
}
