//! The flags that pick and load a model, shared by every subcommand that runs one.

use anyhow::{Context, Result};
use clap::Args;

use crate::chat::CalendarDate;
use crate::engine::loaded::{parse_device, parse_dtype, LoadOptions, LoadedModel};
use crate::engine::{self, EngineConfig, EngineHandle};

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// The model: a preset name (see `apigen-mt models list`), a local directory or .gguf file,
    /// or a Hugging Face repo `org/name[@revision][:file.gguf]`.
    #[arg(long, short = 'm', value_name = "MODEL")]
    pub model: String,
    /// Use only the local Hugging Face cache (also: HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Where the model runs: cpu, or cuda[:N] / metal[:N] in binaries built with that feature.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// Activation and unquantized-weight type: f32, f16 or bf16 (default: f32, or bf16 for
    /// safetensors weights on a GPU).
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<String>,
    /// The date chat templates see through `strftime_now`, as YYYY-MM-DD (default 2025-01-01),
    /// so that prompts do not change with the day they are rendered.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,
    /// Memory for the key/value cache of running sequences and reusable prompt prefixes, in
    /// MiB (default: half the memory available after loading the model). Sequences that do not
    /// fit wait, or are paused and recomputed later; a single request larger than this fails
    /// with finish reason `length`.
    #[arg(long, value_name = "MIB")]
    pub kv_cache_mb: Option<usize>,
}

impl ModelArgs {
    pub fn load_options(&self) -> Result<LoadOptions> {
        let mut options = LoadOptions::from_env(self.offline)?;
        options.decoder.device = parse_device(&self.device)?;
        options.decoder.dtype = self.dtype.as_deref().map(parse_dtype).transpose()?;
        if let Some(date) = &self.date {
            options.date = parse_date(date)?;
        }
        Ok(options)
    }

    pub fn load(&self) -> Result<LoadedModel> {
        let options = self.load_options()?;
        LoadedModel::load(&self.model, &options).with_context(|| format!("loading model {}", self.model))
    }

    /// Loads the model and starts an engine on it.
    pub fn start(&self) -> Result<EngineHandle> {
        if self.kv_cache_mb == Some(0) {
            anyhow::bail!("--kv-cache-mb must be at least 1");
        }
        let model = self.load()?;
        Ok(engine::start(model, EngineConfig::with_kv_cache_mb(self.kv_cache_mb))?)
    }
}

fn parse_date(text: &str) -> Result<CalendarDate> {
    let parts: Vec<&str> = text.split('-').collect();
    let invalid = || anyhow::anyhow!("invalid --date {text:?}: expected YYYY-MM-DD");
    let [y, m, d] = parts.as_slice() else { return Err(invalid()) };
    let (y, m, d) = (y.parse().map_err(|_| invalid())?, m.parse().map_err(|_| invalid())?, d.parse().map_err(|_| invalid())?);
    CalendarDate::new(y, m, d).with_context(|| format!("invalid --date {text:?}"))
}
