//! Turning what the user typed after `--model` into files on this machine.
//!
//! A model spec is one of:
//! - a local directory with Hugging Face files (`config.json`, `model.safetensors` or shards with
//!   `model.safetensors.index.json`, `tokenizer.json`, and `tokenizer_config.json` or
//!   `chat_template.jinja`), or with a single `.gguf` file;
//! - a local `.gguf` file (tokenizer and template from HF files beside it when present, else
//!   from the GGUF metadata);
//! - a Hugging Face repo: `org/name`, `org/name@revision`, `org/name:file.gguf`
//!   (`org/name@revision:file.gguf` also works), downloaded into the standard HF cache;
//! - a preset's short name (see [`super::presets`]).
//!
//! The hub cache follows the Python `huggingface_hub` conventions, so both tools share downloads:
//! `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`; the token comes from
//! `HF_TOKEN`, else `$HF_HOME/token`; `HF_ENDPOINT` points at a mirror. With `HF_HUB_OFFLINE=1`
//! (or `--offline`) only the cache is read and a missing file is an error that says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use super::presets::{self, Preset};
use super::WeightsSource;

/// Everything needed to load a model, as local paths.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    pub weights: WeightsSource,
    /// `tokenizer.json`; absent for a GGUF that carries its own tokenizer.
    pub tokenizer: Option<PathBuf>,
    pub tokenizer_config: Option<PathBuf>,
    pub chat_template: Option<PathBuf>,
    pub generation_config: Option<PathBuf>,
}

/// A resolved model: its files, the name to show, and the preset it came from, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    pub name: String,
    pub files: ModelFiles,
    pub preset: Option<Preset>,
}

/// Where hub files live and how to reach the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct HubConfig {
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    pub endpoint: String,
    /// Read only the cache; never touch the network.
    pub offline: bool,
}

impl HubConfig {
    /// Reads the Hugging Face environment variables; `offline` forces offline mode on top of
    /// `HF_HUB_OFFLINE`.
    pub fn from_env(offline: bool) -> Result<Self> {
        Self::from_vars(offline, |name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] with the variables looked up by `lookup`, so that tests need not
    /// change the process environment.
    pub fn from_vars(offline: bool, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let hf_home = match var("HF_HOME") {
            Some(home) => PathBuf::from(home),
            None => {
                let home = var("HOME")
                    .or_else(|| var("USERPROFILE"))
                    .ok_or_else(|| anyhow!("cannot locate the Hugging Face cache: set HF_HOME or HF_HUB_CACHE"))?;
                Path::new(&home).join(".cache").join("huggingface")
            }
        };
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN")
            .or_else(|| std::fs::read_to_string(hf_home.join("token")).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()));
        let env_offline =
            var("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Ok(Self {
            cache_dir,
            token,
            // hf-hub appends `/org/name/...` to the endpoint as it is.
            endpoint: var("HF_ENDPOINT")
                .map_or_else(|| "https://huggingface.co".to_string(), |e| e.trim().trim_end_matches('/').to_string()),
            offline: offline || env_offline,
        })
    }
}

/// A parsed hub reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    pub repo: String,
    pub revision: String,
    pub file: Option<String>,
}

impl HubRef {
    /// Parses `org/name[@revision][:file]`; `None` when `spec` does not have that shape.
    pub fn parse(spec: &str) -> Option<Self> {
        let (head, file) = match spec.split_once(':') {
            Some((head, file)) => (head, Some(file)),
            None => (spec, None),
        };
        let (repo, revision) = match head.split_once('@') {
            Some((repo, rev)) => (repo, Some(rev)),
            None => (head, None),
        };
        let valid_part =
            |s: &str| !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let (org, name) = repo.split_once('/')?;
        if !valid_part(org) || !valid_part(name) {
            return None;
        }
        if revision.is_some_and(|r| r.is_empty()) || file.is_some_and(|f| f.is_empty()) {
            return None;
        }
        Some(Self { repo: repo.to_string(), revision: revision.unwrap_or("main").to_string(), file: file.map(str::to_string) })
    }
}

/// Resolves a model spec into local files, downloading hub files when allowed.
pub fn resolve(spec: &str, hub: &HubConfig) -> Result<ResolvedModel> {
    let found = locate(spec, hub)?;
    let files = found.in_context(select(found.source.as_ref(), found.gguf.as_deref()))?;
    Ok(ResolvedModel { name: found.name, files, preset: found.preset })
}

/// The files that turn conversations into a model's prompt tokens, without its weights: what a
/// model served elsewhere needs here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextFiles {
    pub tokenizer: Option<PathBuf>,
    pub tokenizer_config: Option<PathBuf>,
    pub chat_template: Option<PathBuf>,
    pub generation_config: Option<PathBuf>,
    /// `config.json`, for the context length.
    pub config: Option<PathBuf>,
    /// A GGUF file, read for the tokenizer or template the Hugging Face files do not give.
    pub gguf: Option<PathBuf>,
}

impl ModelFiles {
    /// The text side of a model's files.
    pub fn text(&self) -> TextFiles {
        let (config, gguf) = match &self.weights {
            WeightsSource::Gguf(path) => (None, Some(path.clone())),
            WeightsSource::Safetensors { config, .. } => (Some(config.clone()), None),
        };
        TextFiles {
            tokenizer: self.tokenizer.clone(),
            tokenizer_config: self.tokenizer_config.clone(),
            chat_template: self.chat_template.clone(),
            generation_config: self.generation_config.clone(),
            config,
            gguf,
        }
    }
}

/// A resolved template source: its files, the name to show, and its preset, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedText {
    pub name: String,
    pub files: TextFiles,
    pub preset: Option<Preset>,
}

/// Resolves a model spec into its text files alone. Hub repos give their tokenizer and template
/// files without the weights; a GGUF is fetched only when the folder has no `tokenizer.json` or no
/// template beside it (its metadata then supplies them).
pub fn resolve_text(spec: &str, hub: &HubConfig) -> Result<ResolvedText> {
    let found = locate(spec, hub)?;
    let files = found.in_context(select_text(found.source.as_ref(), found.gguf.as_deref()))?;
    Ok(ResolvedText { name: found.name, files, preset: found.preset })
}

/// Where a spec's files are.
struct Located {
    name: String,
    source: Box<dyn FileSource>,
    /// The GGUF file the spec names, if it names one.
    gguf: Option<String>,
    preset: Option<Preset>,
    /// Said before a selection error: which hub revision, preset or mode.
    context: Option<String>,
}

impl Located {
    fn in_context<T>(&self, result: Result<T>) -> Result<T> {
        match &self.context {
            Some(context) => result.with_context(|| context.clone()),
            None => result,
        }
    }
}

fn locate(spec: &str, hub: &HubConfig) -> Result<Located> {
    let path = Path::new(spec);
    if path.exists() {
        let (source, gguf) = local_folder(path)?;
        return Ok(Located { name: spec.to_string(), source, gguf, preset: None, context: None });
    }
    if let Some(hub_ref) = HubRef::parse(spec) {
        let (source, context) = hub_folder(&hub_ref, hub)?;
        return Ok(Located { name: spec.to_string(), source, gguf: hub_ref.file, preset: None, context: Some(context) });
    }
    let dirs = presets::user_dirs();
    if let Some(preset) = presets::find(spec, &dirs)? {
        let hub_ref = HubRef::parse(&preset.model).ok_or_else(|| {
            anyhow!("preset {} ({}): model {:?} is not a hub id org/name[:file]", preset.name, preset.origin, preset.model)
        })?;
        let (source, context) =
            hub_folder(&hub_ref, hub).with_context(|| format!("resolving preset {} ({})", preset.name, preset.model))?;
        let context = format!("resolving preset {} ({}): {context}", preset.name, preset.model);
        return Ok(Located { name: preset.name.clone(), source, gguf: hub_ref.file, preset: Some(preset), context: Some(context) });
    }
    let looks_like_path = spec.contains(std::path::MAIN_SEPARATOR) || spec.ends_with(".gguf") || spec.starts_with('.');
    if looks_like_path {
        bail!("{spec}: no such file or directory");
    }
    let names: Vec<String> = presets::load_all(&dirs)?.into_iter().map(|p| p.name).collect();
    bail!(
        "unknown model {spec:?}: not a file or directory, not a hub id (org/name[@revision][:file.gguf]), \
         and not a preset (presets: {})",
        names.join(", ")
    )
}

/// A local `.gguf` file, or a directory of HF files or with one `.gguf`.
pub fn resolve_local(path: &Path) -> Result<ModelFiles> {
    let (source, gguf) = local_folder(path)?;
    select(source.as_ref(), gguf.as_deref())
}

/// The folder of a local path, and the GGUF file it names.
fn local_folder(path: &Path) -> Result<(Box<dyn FileSource>, Option<String>)> {
    if path.is_dir() {
        return Ok((Box::new(LocalDir(path.to_path_buf())), None));
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let file = path.file_name().and_then(|f| f.to_str()).ok_or_else(|| anyhow!("{}: not a valid file name", path.display()))?;
        return Ok((Box::new(LocalDir(dir.to_path_buf())), Some(file.to_string())));
    }
    bail!("{}: expected a model directory or a .gguf file", path.display())
}

/// The folder of a hub repo revision (its cached snapshot when offline), and what to say about it
/// in errors.
fn hub_folder(hub_ref: &HubRef, hub: &HubConfig) -> Result<(Box<dyn FileSource>, String)> {
    let mode = if hub.offline { " from the cache alone (offline mode)" } else { "" };
    let context = format!("resolving {}@{}{mode}", hub_ref.repo, hub_ref.revision);
    let source: Box<dyn FileSource> = if hub.offline {
        Box::new(LocalDir(cached_snapshot(&hub.cache_dir, hub_ref).with_context(|| context.clone())?))
    } else {
        let api = ApiBuilder::from_cache(Cache::new(hub.cache_dir.clone()))
            .with_endpoint(hub.endpoint.clone())
            .with_token(hub.token.clone())
            .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .build()
            .context("starting the Hugging Face client")?;
        let repo = api.repo(Repo::with_revision(hub_ref.repo.clone(), RepoType::Model, hub_ref.revision.clone()));
        Box::new(HubRepo { repo, name: hub_ref.repo.clone(), has_token: hub.token.is_some() })
    };
    Ok((source, context))
}

/// The snapshot folder of a cached repo revision: `models--org--name/snapshots/<commit>`, where
/// the commit is read from `refs/<revision>` or is the revision itself.
fn cached_snapshot(cache_dir: &Path, hub_ref: &HubRef) -> Result<PathBuf> {
    let repo_dir = cache_dir.join(format!("models--{}", hub_ref.repo.replace('/', "--")));
    let miss = || {
        let file = hub_ref.file.as_ref().map_or_else(String::new, |f| format!(" (file {f})"));
        anyhow!(
            "offline mode: {}@{}{file} is not in the Hugging Face cache at {} (download it once without --offline / HF_HUB_OFFLINE)",
            hub_ref.repo,
            hub_ref.revision,
            cache_dir.display()
        )
    };
    let commit = match std::fs::read_to_string(repo_dir.join("refs").join(&hub_ref.revision)) {
        Ok(commit) => commit.trim().to_string(),
        Err(_) if repo_dir.join("snapshots").join(&hub_ref.revision).is_dir() => hub_ref.revision.clone(),
        Err(_) => return Err(miss()),
    };
    let snapshot = repo_dir.join("snapshots").join(&commit);
    if commit.is_empty() || commit.contains(['/', '\\']) || !snapshot.is_dir() {
        return Err(miss());
    }
    Ok(snapshot)
}

/// A folder of model files: a local directory, a cached snapshot or a hub repo.
trait FileSource {
    fn describe(&self) -> String;
    /// The file names available, relative to the folder.
    fn list(&self) -> Result<Vec<String>>;
    /// A local path to one of the listed files, downloading it if needed.
    fn fetch(&self, name: &str) -> Result<PathBuf>;
}

struct LocalDir(PathBuf);

impl FileSource for LocalDir {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }
    fn list(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.0).with_context(|| format!("reading {}", self.0.display()))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
    fn fetch(&self, name: &str) -> Result<PathBuf> {
        Ok(self.0.join(name))
    }
}

struct HubRepo {
    repo: ApiRepo,
    name: String,
    /// Whether a token was sent, to explain a refusal.
    has_token: bool,
}

impl HubRepo {
    /// A failed hub request as an error that says what was asked of which repo, and, when the
    /// hub refused, what to do about it.
    fn explain(&self, error: ApiError, what: String) -> anyhow::Error {
        let status = match &error {
            ApiError::RequestError(inner) => match inner.as_ref() {
                ureq::Error::Status(code, _) => Some(*code),
                ureq::Error::Transport(_) => None,
            },
            _ => None,
        };
        // ApiError's message already holds its source's; chaining both would say it twice.
        let error = anyhow!("{error}");
        let hint = match status {
            Some(401 | 403) if self.has_token => format!(
                "the hub refused the token in HF_TOKEN: {} is private, gated and not yet accepted for this \
                 account, or does not exist",
                self.name
            ),
            Some(401 | 403) => format!(
                "{} is gated or private (or does not exist): accept its terms on the hub, then set HF_TOKEN to an \
                 access token (or write it to $HF_HOME/token)",
                self.name
            ),
            _ => return error.context(what),
        };
        error.context(hint).context(what)
    }
}

impl FileSource for HubRepo {
    fn describe(&self) -> String {
        format!("hub repo {}", self.name)
    }
    fn list(&self) -> Result<Vec<String>> {
        let info = self.repo.info().map_err(|e| self.explain(e, format!("listing the files of {}", self.name)))?;
        Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
    }
    fn fetch(&self, name: &str) -> Result<PathBuf> {
        self.repo.get(name).map_err(|e| self.explain(e, format!("downloading {name} from {}", self.name)))
    }
}

/// Picks the weights and the tokenizer/template files out of a folder. `gguf` names the GGUF file
/// to use when the folder holds several.
fn select(source: &dyn FileSource, gguf: Option<&str>) -> Result<ModelFiles> {
    let names = source.list()?;
    let has = |name: &str| names.iter().any(|n| n == name);
    let optional = |name: &str| -> Result<Option<PathBuf>> {
        if has(name) {
            source.fetch(name).map(Some)
        } else {
            Ok(None)
        }
    };
    let ggufs: Vec<&String> = names.iter().filter(|n| n.to_ascii_lowercase().ends_with(".gguf")).collect();

    let weights = if let Some(file) = gguf {
        if !has(file) {
            bail!("{}: no file {file} (GGUF files there: {})", source.describe(), list_or_none(&ggufs));
        }
        WeightsSource::Gguf(source.fetch(file)?)
    } else if has("model.safetensors.index.json") || has("model.safetensors") {
        if !has("config.json") {
            bail!("{}: safetensors weights but no config.json", source.describe());
        }
        let config = source.fetch("config.json")?;
        let files = if has("model.safetensors.index.json") {
            let index = source.fetch("model.safetensors.index.json")?;
            shard_names(&index)?
                .iter()
                .map(|shard| {
                    if !has(shard) {
                        bail!("{}: {} lists shard {shard}, which is missing", source.describe(), index.display());
                    }
                    source.fetch(shard)
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![source.fetch("model.safetensors")?]
        };
        WeightsSource::Safetensors { config, files }
    } else {
        match ggufs.as_slice() {
            [one] => WeightsSource::Gguf(source.fetch(one)?),
            [] => bail!("{}: no model weights (looked for model.safetensors, model.safetensors.index.json and *.gguf)", source.describe()),
            many => bail!(
                "{}: several GGUF files ({}); name one: a path to the file, or org/name:file.gguf",
                source.describe(),
                list_or_none(many)
            ),
        }
    };

    let tokenizer = optional("tokenizer.json")?;
    if tokenizer.is_none() && matches!(weights, WeightsSource::Safetensors { .. }) {
        bail!("{}: no tokenizer.json beside the safetensors weights", source.describe());
    }
    Ok(ModelFiles {
        weights,
        tokenizer,
        tokenizer_config: optional("tokenizer_config.json")?,
        chat_template: optional("chat_template.jinja")?,
        generation_config: optional("generation_config.json")?,
    })
}

/// Picks the tokenizer and template files out of a folder, and a GGUF (named by `gguf`, or the
/// folder's only one) when those files do not give both.
fn select_text(source: &dyn FileSource, gguf: Option<&str>) -> Result<TextFiles> {
    let names = source.list()?;
    let has = |name: &str| names.iter().any(|n| n == name);
    let optional = |name: &str| -> Result<Option<PathBuf>> {
        if has(name) {
            source.fetch(name).map(Some)
        } else {
            Ok(None)
        }
    };
    let mut files = TextFiles {
        tokenizer: optional("tokenizer.json")?,
        tokenizer_config: optional("tokenizer_config.json")?,
        chat_template: optional("chat_template.jinja")?,
        generation_config: optional("generation_config.json")?,
        config: optional("config.json")?,
        gguf: None,
    };
    let complete = files.tokenizer.is_some() && (files.tokenizer_config.is_some() || files.chat_template.is_some());
    if !complete {
        let ggufs: Vec<&String> = names.iter().filter(|n| n.to_ascii_lowercase().ends_with(".gguf")).collect();
        let file = match (gguf, ggufs.as_slice()) {
            (Some(file), _) if has(file) => file.to_string(),
            (Some(file), _) => bail!("{}: no file {file} (GGUF files there: {})", source.describe(), list_or_none(&ggufs)),
            (None, [one]) => one.to_string(),
            (None, []) => bail!(
                "{}: no tokenizer.json with a tokenizer_config.json or chat_template.jinja, and no GGUF file to read them from",
                source.describe()
            ),
            (None, many) => bail!(
                "{}: no tokenizer and template files, and several GGUF files ({}); name one: org/name:file.gguf",
                source.describe(),
                list_or_none(many)
            ),
        };
        tracing::info!("{}: reading the tokenizer and template from {file}", source.describe());
        files.gguf = Some(source.fetch(&file)?);
    }
    Ok(files)
}

fn list_or_none(names: &[&String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// The shard file names of a sharded safetensors checkpoint, from its index's `weight_map`.
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).with_context(|| format!("reading {}", index.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", index.display()))?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| anyhow!("{}: no weight_map object", index.display()))?;
    let mut shards = BTreeSet::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| anyhow!("{}: weight_map[{tensor:?}] is not a file name", index.display()))?;
        if file.contains("..") || Path::new(file).is_absolute() {
            bail!("{}: weight_map[{tensor:?}] points outside the folder: {file}", index.display());
        }
        shards.insert(file.to_string());
    }
    if shards.is_empty() {
        bail!("{}: weight_map is empty", index.display());
    }
    Ok(shards.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_refs_parse() {
        let r = HubRef::parse("Qwen/Qwen2.5-0.5B-Instruct").unwrap();
        assert_eq!((r.repo.as_str(), r.revision.as_str(), r.file), ("Qwen/Qwen2.5-0.5B-Instruct", "main", None));
        let r = HubRef::parse("org/name@v1.0:file-q4.gguf").unwrap();
        assert_eq!((r.revision.as_str(), r.file.as_deref()), ("v1.0", Some("file-q4.gguf")));
        for bad in ["name", "org/", "/name", "a/b/c", "org/name@", "org/name:", "../x", "org/na me"] {
            assert!(HubRef::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_hf_environment_maps_onto_the_config() {
        let config = |vars: &[(&str, &str)], offline: bool| {
            let vars: std::collections::HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            HubConfig::from_vars(offline, |name| vars.get(name).cloned())
        };
        let c = config(&[("HOME", "/home/u")], false).unwrap();
        assert_eq!(c.cache_dir, Path::new("/home/u/.cache/huggingface/hub"));
        assert_eq!((c.endpoint.as_str(), c.token.as_deref(), c.offline), ("https://huggingface.co", None, false));
        let c = config(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/cache"), ("HF_HUB_OFFLINE", "True")], false).unwrap();
        assert_eq!((c.cache_dir.as_path(), c.offline), (Path::new("/cache"), true));
        let c = config(&[("HF_HOME", "/hf"), ("HF_HUB_OFFLINE", "0"), ("HF_TOKEN", " "), ("HF_ENDPOINT", "http://mirror:8080/")], true)
            .unwrap();
        assert_eq!(c.cache_dir, Path::new("/hf/hub"));
        assert_eq!((c.endpoint.as_str(), c.token, c.offline), ("http://mirror:8080", None, true));
        let err = config(&[], false).unwrap_err().to_string();
        assert!(err.contains("HF_HOME"), "{err}");
    }

    #[test]
    fn shard_index_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("model.safetensors.index.json");
        std::fs::write(&index, r#"{"weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-1.safetensors"}}"#).unwrap();
        assert_eq!(shard_names(&index).unwrap(), ["m-1.safetensors", "m-2.safetensors"]);
        std::fs::write(&index, r#"{"weight_map": {"a": "../../etc/passwd"}}"#).unwrap();
        assert!(shard_names(&index).is_err());
        std::fs::write(&index, "{not json").unwrap();
        let err = format!("{:#}", shard_names(&index).unwrap_err());
        assert!(err.contains("model.safetensors.index.json"), "{err}");
    }
}
