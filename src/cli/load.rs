//! The flags that pick and load a model, shared by every subcommand that runs one.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::chat::CalendarDate;
use crate::config::server::Server;
use crate::config::{ModelRef, Settings};
use crate::dataset::stats::EngineReport;
use crate::engine::loaded::{parse_device, parse_dtype, LoadOptions, LoadedModel};
use crate::engine::remote::RemoteModel;
use crate::engine::{self, EngineConfig, EngineHandle, LanguageModel};
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
    /// Where in-process models run: cpu, the only device the engine has. For a GPU, serve the
    /// model with vLLM, SGLang or llama-server and give its URL as the model (`http://HOST:PORT/v1`).
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
    /// How the key/value cache stores keys and values: f16 (the default: half the memory of
    /// f32, so twice the tokens fit in --kv-cache-mb, and half the bytes to read per token, which
    /// is most of a batched decode step) or f32 (exact; outputs can differ slightly from f16's).
    /// A run records it, and refuses to resume or merge with another.
    #[arg(long, value_enum, default_value_t = KvDtype::default(), value_name = "TYPE")]
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
    /// The flags that change what an in-process model writes (how weights and the cache are
    /// stored, the date templates see), as a run's manifest records them among its options:
    /// resuming a run, or merging shards, under other values is refused, naming the flag. The
    /// date is recorded as resolved, so that `--date 2025-01-01` resumes a run started without
    /// `--date`; `dtype` stays `null` when not given, which means "as the file stores it".
    pub fn recorded(&self) -> Result<serde_json::Value> {
        let date = match &self.date {
            Some(text) => parse_date(text)?,
            None => crate::chat::template::RenderOptions::default().date,
        };
        Ok(serde_json::json!({"dtype": self.dtype, "kv_dtype": self.kv_dtype, "date": date.strftime("%F")?}))
    }

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

/// The engines of a run: each distinct model loaded (or connected to) once, its handle shared
/// by every role that names it.
pub struct Engines {
    loaded: Vec<(Loaded, EngineHandle)>,
}

/// What one handle stands for.
struct Loaded {
    name: String,
    /// The server's URL; `None` in process.
    url: Option<String>,
    remote: Option<Arc<RemoteModel>>,
}

impl Engines {
    /// Connects to every server and loads every local model the given roles use (each once),
    /// servers first: connecting is quick and may fail, loading weights is slow. What connecting
    /// found (served model names, template sources) is written into `settings`, so the run's
    /// config names what was used. Sampling a server cannot take is refused, naming the role.
    pub fn load(load: &LoadArgs, settings: &mut Settings, roles: &[&str]) -> Result<Self> {
        let wanted: Vec<(String, Option<Server>)> =
            settings.models(roles).iter().map(|m| (m.name.to_string(), m.server.cloned())).collect();
        let mut loaded: Vec<(Loaded, EngineHandle)> = Vec::new();
        let mut asked: Vec<(String, String, String)> = Vec::new();
        for (name, server) in wanted.iter().filter_map(|(n, s)| s.as_ref().map(|s| (n, s))) {
            if asked.iter().any(|(url, a, _)| *url == server.url && a == name) {
                continue;
            }
            let options = load.options()?;
            let requested = (!name.is_empty()).then_some(name.as_str());
            let (model, connected) = RemoteModel::connect(server, requested, &options.hub, options.date)?;
            eprintln!(
                "{}: {} at {} ({}, template: {})",
                connected.model,
                model.info().architecture,
                server.url,
                connected.api.name(),
                connected.template.as_deref().unwrap_or("the server's")
            );
            settings.resolve_server_model(&server.url, name, &connected.model, connected.template.as_deref(), connected.api);
            asked.push((server.url.clone(), name.clone(), connected.model.clone()));
            if loaded.iter().any(|(l, _)| l.url.as_deref() == Some(&server.url) && l.name == connected.model) {
                continue;
            }
            let model = Arc::new(model);
            let handle = EngineHandle::new(model.clone());
            loaded.push((Loaded { name: connected.model, url: Some(server.url.clone()), remote: Some(model) }, handle));
        }
        for (name, _) in wanted.iter().filter(|(_, s)| s.is_none()) {
            if loaded.iter().any(|(l, _)| l.url.is_none() && l.name == *name) {
                continue;
            }
            let engine = load.start(name)?;
            loaded.push((Loaded { name: name.clone(), url: None, remote: None }, engine));
        }
        let engines = Self { loaded };
        for role in roles {
            let Some((sampling, Some(_))) = settings.role_sampling(role) else { continue };
            for model in settings.role_models(role) {
                if let Some(remote) = engines.find(model).and_then(|(l, _)| l.remote.as_ref()) {
                    remote.check_sampling(sampling).with_context(|| format!("the {role}'s sampling"))?;
                }
            }
        }
        Ok(engines)
    }

    fn find(&self, model: ModelRef) -> Option<&(Loaded, EngineHandle)> {
        let url = model.server.map(|s| s.url.as_str());
        self.loaded.iter().find(|(l, _)| l.name == model.name && l.url.as_deref() == url)
    }

    /// Engines already started, by the names roles give them (a test's scripted models).
    pub fn from_handles(handles: Vec<(String, EngineHandle)>) -> Self {
        Self { loaded: handles.into_iter().map(|(name, handle)| (Loaded { name, url: None, remote: None }, handle)).collect() }
    }

    /// The handle of a loaded model.
    pub fn get(&self, model: ModelRef) -> Result<EngineHandle> {
        self.find(model).map(|(_, e)| e.clone()).with_context(|| format!("model {} was not loaded", model.name))
    }

    /// Each model's totals, for `stats.json`: engine metrics in process, request counts of a server.
    pub fn reports(&self) -> Vec<EngineReport> {
        self.loaded
            .iter()
            .map(|(l, e)| {
                let server = e.server_report();
                EngineReport { model: l.name.clone(), metrics: server.is_none().then(|| e.metrics()), server }
            })
            .collect()
    }
}

fn parse_date(text: &str) -> Result<CalendarDate> {
    let parts: Vec<&str> = text.split('-').collect();
    let invalid = || anyhow::anyhow!("invalid --date {text:?}: expected YYYY-MM-DD");
    let [y, m, d] = parts.as_slice() else { return Err(invalid()) };
    let (y, m, d) = (y.parse().map_err(|_| invalid())?, m.parse().map_err(|_| invalid())?, d.parse().map_err(|_| invalid())?);
    CalendarDate::new(y, m, d).with_context(|| format!("invalid --date {text:?}"))
}
