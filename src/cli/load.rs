//! The flags that pick and load a model, shared by every subcommand that runs one.

use anyhow::{Context, Result};
use clap::Args;

use crate::chat::CalendarDate;
use crate::dataset::stats::EngineReport;
use crate::engine::loaded::{parse_device, parse_dtype, LoadOptions, LoadedModel};
use crate::engine::{self, EngineConfig, EngineHandle};
use crate::model::KvDtype;

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// The model: a preset name (see `apigen-mt models list`), a local directory or .gguf file,
    /// or a Hugging Face repo `org/name[@revision][:file.gguf]`.
    #[arg(long, short = 'm', value_name = "MODEL")]
    pub model: String,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How models are loaded: where they run and from where they may be fetched.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Use only the local Hugging Face cache (also: HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Where the model runs: cpu, or cuda[:N] / metal[:N] in binaries built with that feature.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// Convert float (unquantized) weights to f32, f16 or bf16 (default: keep each as the file
    /// stores it, e.g. bf16 for most safetensors checkpoints: half the memory of f32, and half
    /// the bytes to read per token). Activations are f32 either way.
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
    /// How the key/value cache stores keys and values: f32 (exact, the default) or f16 (half
    /// the memory, so twice the tokens fit in --kv-cache-mb, and less to read per token; keys
    /// and values are rounded to f16, so outputs can differ slightly from f32's).
    #[arg(long, value_enum, default_value_t = KvDtype::F32, value_name = "TYPE")]
    pub kv_dtype: KvDtype,
}

impl ModelArgs {
    pub fn load_options(&self) -> Result<LoadOptions> {
        self.load.options()
    }

    pub fn load(&self) -> Result<LoadedModel> {
        self.load.load(&self.model)
    }

    /// Loads the model and starts an engine on it.
    pub fn start(&self) -> Result<EngineHandle> {
        self.load.start(&self.model)
    }
}

impl LoadArgs {
    pub fn options(&self) -> Result<LoadOptions> {
        let mut options = LoadOptions::from_env(self.offline)?;
        options.decoder.device = parse_device(&self.device)?;
        options.decoder.dtype = self.dtype.as_deref().map(parse_dtype).transpose()?;
        options.decoder.kv_dtype = self.kv_dtype;
        if let Some(date) = &self.date {
            options.date = parse_date(date)?;
        }
        Ok(options)
    }

    pub fn load(&self, model: &str) -> Result<LoadedModel> {
        let options = self.options()?;
        LoadedModel::load(model, &options).with_context(|| format!("loading model {model}"))
    }

    /// The engine settings these flags ask for.
    pub fn engine_config(&self) -> Result<EngineConfig> {
        if self.kv_cache_mb == Some(0) {
            anyhow::bail!("--kv-cache-mb must be at least 1");
        }
        Ok(EngineConfig::with_kv_cache_mb(self.kv_cache_mb))
    }

    /// Loads `model` and starts an engine on it.
    pub fn start(&self, model: &str) -> Result<EngineHandle> {
        let config = self.engine_config()?;
        Ok(engine::start(self.load(model)?, config)?)
    }
}

/// The engines of a run: each distinct model loaded once, its handle shared by every role that
/// names it.
pub struct Engines {
    loaded: Vec<(String, EngineHandle)>,
}

impl Engines {
    /// Loads every model in `names` (duplicates once).
    pub fn load(load: &LoadArgs, names: &[&str]) -> Result<Self> {
        let mut loaded: Vec<(String, EngineHandle)> = Vec::new();
        for name in names {
            if loaded.iter().any(|(n, _)| n == name) {
                continue;
            }
            let engine = load.start(name)?;
            loaded.push((name.to_string(), engine));
        }
        Ok(Self { loaded })
    }

    /// Engines already started, by the names roles give them (a test's scripted models).
    pub fn from_handles(handles: Vec<(String, EngineHandle)>) -> Self {
        Self { loaded: handles }
    }

    /// The handle of a loaded model.
    pub fn get(&self, name: &str) -> Result<EngineHandle> {
        self.loaded
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.clone())
            .with_context(|| format!("model {name} was not loaded"))
    }

    /// Each engine's totals, for `stats.json`.
    pub fn reports(&self) -> Vec<EngineReport> {
        self.loaded.iter().map(|(model, e)| EngineReport { model: model.clone(), metrics: e.metrics() }).collect()
    }
}

fn parse_date(text: &str) -> Result<CalendarDate> {
    let parts: Vec<&str> = text.split('-').collect();
    let invalid = || anyhow::anyhow!("invalid --date {text:?}: expected YYYY-MM-DD");
    let [y, m, d] = parts.as_slice() else { return Err(invalid()) };
    let (y, m, d) = (y.parse().map_err(|_| invalid())?, m.parse().map_err(|_| invalid())?, d.parse().map_err(|_| invalid())?);
    CalendarDate::new(y, m, d).with_context(|| format!("invalid --date {text:?}"))
}
