//! The run configuration: one TOML file (`--config run.toml`, documented in `run.example.toml`)
//! and the command-line flags that override it, resolved into one [`Settings`] that every
//! command reads.
//!
//! The file and the flags are both partial ([`SettingsFile`]: every field optional), so that a
//! flag overrides just what it names. Resolution fills the rest with defaults. The resolved
//! settings, not the file, are hashed and stored in the manifest: the same run described by a
//! file or by flags is the same run, and resuming compares what will actually happen.
//!
//! **What the hash covers.** Every record carries the config hash, and a resumed run, a shard
//! or a merge must match it, so the hash covers exactly what decides the content of the records
//! and leaves out how fast, or where, the work is done: the keys in [`UNHASHED`] (the number of
//! attempts in flight, a server's address and limits, where a package lies on disk). Those are
//! still stored in the manifest, for the record, but a resume may change them.

pub mod server;

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::request::SamplingParams;
use crate::seeds::sha256_hex;
use server::{Server, ServerFile};

/// The default share of recombined blueprints: recombination is on, for a fifth of the output.
pub const DEFAULT_RECOMBINE: f64 = 0.2;

/// Where a blueprint's ground-truth actions come from (`actions`, `--actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Actions {
    /// The environment samples them from the user's data, executes and checks them, and the
    /// generator writes the instruction around them (`samplers::grounded`).
    Sampled,
    /// The generator drafts them under the grounded schema, then the checks run.
    Model,
}

/// The default source of actions: drafted actions mostly fail the format check on small models,
/// sampled ones always hold an executable write (README, "Where the ground-truth actions come
/// from").
pub const DEFAULT_ACTIONS: Actions = Actions::Sampled;
/// The most writes a sampled task gets by default (each task draws 1 to this many).
pub const DEFAULT_MAX_WRITES: usize = 4;

/// How one role samples, as written in the file: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// The model (a preset, a path or a hub id); default: the top-level `model`.
    pub model: Option<String>,
    /// Reviewers only: several models, reviewer k using `models[k % len]`.
    pub models: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub max_tokens: Option<usize>,
    /// This role's inference server (`[ROLE.server]`), over the top-level `[server]`.
    #[serde(default, skip_serializing_if = "ServerFile::is_empty")]
    pub server: ServerFile,
}

impl RoleFile {
    /// `self` with every field that `other` sets taken from `other`.
    fn merge(&mut self, other: &RoleFile) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(model, models, temperature, top_p, top_k, min_p, repeat_penalty, max_tokens);
        self.server.merge(&other.server);
    }
}

/// The run configuration as written: the TOML file, or the flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    pub domain: Option<String>,
    /// Every role's model unless the role names its own.
    pub model: Option<String>,
    pub seed: Option<u64>,
    pub concurrency: Option<usize>,
    /// Validated blueprints to produce (`--tasks`, `--count`).
    pub tasks: Option<usize>,
    pub max_attempts: Option<usize>,
    pub reviewers: Option<usize>,
    pub threshold: Option<f64>,
    pub rounds: Option<usize>,
    /// Where ground-truth actions come from: `sampled` or `model`.
    pub actions: Option<Actions>,
    /// With sampled actions, the most writes per task (each draws 1 to this many).
    pub max_writes: Option<usize>,
    /// The share of attempt groups whose validated blueprints are recombined.
    pub recombine: Option<f64>,
    /// The share of users whose validated blueprints are held out for `eval`.
    pub holdout: Option<f64>,
    pub attempts: Option<usize>,
    pub best_of: Option<usize>,
    pub max_turns: Option<usize>,
    pub max_parse_errors: Option<usize>,
    /// Every server role's options unless the role's own `[ROLE.server]` says otherwise; with
    /// `url`, every role's server unless the role names its own model.
    #[serde(default, skip_serializing_if = "ServerFile::is_empty")]
    pub server: ServerFile,
    #[serde(default)]
    pub generator: RoleFile,
    #[serde(default)]
    pub reviewer: RoleFile,
    #[serde(default)]
    pub summarizer: RoleFile,
    #[serde(default)]
    pub user: RoleFile,
    #[serde(default)]
    pub judge: RoleFile,
    #[serde(default)]
    pub agent: RoleFile,
}

impl SettingsFile {
    /// Reads a TOML run config; errors name the file and the offending key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))
    }

    /// `self` with everything `over` sets taken from `over` (flags over the file).
    pub fn merge(mut self, over: &SettingsFile) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* };
        }
        take!(
            domain,
            model,
            seed,
            concurrency,
            tasks,
            max_attempts,
            reviewers,
            threshold,
            rounds,
            actions,
            max_writes,
            recombine,
            holdout,
            attempts,
            best_of,
            max_turns,
            max_parse_errors
        );
        self.server.merge(&over.server);
        self.generator.merge(&over.generator);
        self.reviewer.merge(&over.reviewer);
        self.summarizer.merge(&over.summarizer);
        self.user.merge(&over.user);
        self.judge.merge(&over.judge);
        self.agent.merge(&over.agent);
        self
    }

    /// Fills in the defaults and checks every value.
    pub fn resolve(&self) -> Result<Settings> {
        let domain = self.domain.clone().context("no domain: give --domain or `domain` in the config")?;
        let env = crate::env::resolve(&domain)?;
        let default_model = self.default_model()?;
        let default_model = default_model.as_deref();
        let role = |name: &str, file: &RoleFile, temperature: f32, max_tokens: usize| -> Result<Role> {
            if file.models.is_some() {
                bail!("`models` is only for [reviewer]; [{name}] takes one `model`");
            }
            let file = &with_server_url(name, file)?;
            let (models, sampling, max_tokens) = resolve_role(name, file, default_model, temperature, max_tokens, |m| Ok(vec![m]))?;
            let (mut models, server) = self.backend(name, file, models)?;
            Ok(Role { model: models.pop().unwrap_or_default(), sampling, max_tokens, server })
        };
        let reviewer_file = with_server_url("reviewer", &self.reviewer)?;
        let reviewer = resolve_role("reviewer", &reviewer_file, default_model, 0.7, 256, |m| {
            Ok(match &reviewer_file.models {
                Some(list) if list.is_empty() => bail!("[reviewer] models is empty"),
                Some(list) => list.clone(),
                None => vec![m],
            })
        })?;
        let (reviewer_models, reviewer_server) = self.backend("reviewer", &reviewer_file, reviewer.0)?;
        let settings = Settings {
            rounds: self.rounds.unwrap_or(env.default_rounds()),
            // A package is known by its name and content, wherever it lies.
            domain: env.name().to_string(),
            package: env.package(),
            seed: self.seed.unwrap_or(0),
            concurrency: self.concurrency,
            tasks: self.tasks.unwrap_or(10),
            max_attempts: self.max_attempts.unwrap_or(4 * self.tasks.unwrap_or(10)),
            reviewers: self.reviewers.unwrap_or(3),
            threshold: self.threshold.unwrap_or(0.75),
            actions: self.actions.unwrap_or(DEFAULT_ACTIONS),
            max_writes: self.max_writes.unwrap_or(DEFAULT_MAX_WRITES),
            recombine: self.recombine.unwrap_or(DEFAULT_RECOMBINE),
            holdout: self.holdout.unwrap_or(0.0),
            attempts: self.attempts.unwrap_or(3),
            best_of: self.best_of.unwrap_or(4),
            max_turns: self.max_turns.unwrap_or(30),
            max_parse_errors: self.max_parse_errors.unwrap_or(3),
            generator: role("generator", &self.generator, 0.7, 768)?,
            reviewer: Reviewers { models: reviewer_models, sampling: reviewer.1, max_tokens: reviewer.2, server: reviewer_server },
            summarizer: role("summarizer", &self.summarizer, 0.7, 160)?,
            user: role("user", &self.user, 0.8, 128)?,
            judge: role("judge", &self.judge, 0.0, 16)?,
            agent: role("agent", &self.agent, 0.0, 512)?,
        };
        settings.check()?;
        Ok(settings)
    }
}

impl SettingsFile {
    /// The top-level model: `model`, or the `[server]` table's URL (with its `model`).
    fn default_model(&self) -> Result<Option<String>> {
        match (&self.model, &self.server.url) {
            (Some(_), Some(_)) => bail!("give the top-level model once: `model`, or `url` in [server], not both"),
            (Some(model), None) => Ok(Some(model.clone())),
            (None, Some(url)) => Ok(Some(server_spec_text(url, self.server.model.as_deref()))),
            (None, None) => Ok(None),
        }
    }

    /// Splits a role's model specs into the names the run records and, when they name a server,
    /// the server: every spec `URL[#MODEL]` (one URL for all of a role's models), or none.
    fn backend(&self, name: &str, file: &RoleFile, specs: Vec<String>) -> Result<(Vec<String>, Option<Server>)> {
        let remote = specs.iter().filter(|s| server::is_server(s)).count();
        if remote == 0 {
            if !file.server.is_empty() {
                bail!("[{name}.server] is set, but the {name}'s model ({}) is not a server URL", specs.join(", "));
            }
            return Ok((specs, None));
        }
        if remote < specs.len() {
            bail!("[{name}] mixes server URLs and local models; a role's models are all on one server or all in process");
        }
        let mut url = None;
        let mut names = Vec::new();
        for spec in &specs {
            let (base, model) = server::parse(spec).with_context(|| format!("[{name}] model"))?;
            if url.as_ref().is_some_and(|u| *u != base) {
                bail!(
                    "[{name}] models are on different servers ({} and {base}); a role's models share one server",
                    url.unwrap_or_default()
                );
            }
            url = Some(base);
            // Without `#MODEL`, the role's server table names it, or the server's first model is used.
            names.push(model.or_else(|| file.server.model.clone()).or_else(|| self.server.model.clone()).unwrap_or_default());
        }
        let mut options = self.server.clone();
        options.merge(&file.server);
        let server = Server::resolve(&url.unwrap_or_default(), &options).with_context(|| format!("[{name}] server"))?;
        Ok((names, Some(server)))
    }
}

/// The role's file with `[ROLE.server] url` (and `model`) as its model spec, where it names one.
fn with_server_url(name: &str, file: &RoleFile) -> Result<RoleFile> {
    let mut file = file.clone();
    if let Some(url) = &file.server.url {
        if file.model.is_some() || file.models.is_some() {
            bail!("[{name}] names its model twice: `model` and [{name}.server] url; give one");
        }
        file.model = Some(server_spec_text(url, file.server.model.as_deref()));
    }
    Ok(file)
}

/// `URL#MODEL`, or the URL alone.
fn server_spec_text(url: &str, model: Option<&str>) -> String {
    match model {
        Some(model) => format!("{url}#{model}"),
        None => url.to_string(),
    }
}

fn resolve_role(
    name: &str,
    file: &RoleFile,
    default_model: Option<&str>,
    temperature: f32,
    max_tokens: usize,
    models: impl FnOnce(String) -> Result<Vec<String>>,
) -> Result<(Vec<String>, SamplingParams, usize)> {
    let model = file.model.as_deref().or(default_model);
    let model = match (model, &file.models) {
        (Some(m), _) => m.to_string(),
        (None, Some(list)) => list.first().cloned().unwrap_or_default(),
        (None, None) => bail!("no model for the {name}: give --model, or `model` at the top of the config or in [{name}]"),
    };
    let d = SamplingParams::default();
    let sampling = SamplingParams {
        temperature: file.temperature.unwrap_or(temperature),
        top_p: file.top_p.unwrap_or(d.top_p),
        top_k: file.top_k.unwrap_or(d.top_k),
        min_p: file.min_p.unwrap_or(d.min_p),
        repeat_penalty: file.repeat_penalty.unwrap_or(d.repeat_penalty),
        ..d
    };
    if !(sampling.temperature >= 0.0)
        || !(sampling.top_p > 0.0 && sampling.top_p <= 1.0)
        || !(0.0..=1.0).contains(&sampling.min_p)
        || !(sampling.repeat_penalty > 0.0)
    {
        bail!("[{name}] sampling out of range: temperature ≥ 0, 0 < top_p ≤ 1, 0 ≤ min_p ≤ 1, repeat_penalty > 0");
    }
    let max_tokens = file.max_tokens.unwrap_or(max_tokens);
    if max_tokens == 0 {
        bail!("[{name}] max_tokens must be at least 1");
    }
    Ok((models(model)?, sampling, max_tokens))
}

/// How one role samples (the seed is derived per call) and how many tokens it may write: what
/// the phases need of a role besides its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleConfig {
    pub sampling: SamplingParams,
    pub max_tokens: usize,
}

/// One role, resolved: its model, how it samples (the seed is derived per call) and its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// A preset, path or hub id; on a server, the served model name.
    pub model: String,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    /// The inference server the model is on; `None`: in process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
}

impl Role {
    pub fn model_ref(&self) -> ModelRef<'_> {
        ModelRef { name: &self.model, server: self.server.as_ref() }
    }
}

/// A model a role uses: its name, and the server it is on (`None`: in process).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelRef<'a> {
    pub name: &'a str,
    pub server: Option<&'a Server>,
}

impl Role {
    pub fn config(&self) -> RoleConfig {
        RoleConfig { sampling: self.sampling.clone(), max_tokens: self.max_tokens }
    }
}

/// The reviewer committee's models: reviewer k uses `models[k % len]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reviewers {
    pub models: Vec<String>,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    /// The inference server every reviewer model is on; `None`: in process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
}

impl Reviewers {
    pub fn model_refs(&self) -> Vec<ModelRef<'_>> {
        self.models.iter().map(|name| ModelRef { name, server: self.server.as_ref() }).collect()
    }
}

impl Reviewers {
    pub fn config(&self) -> RoleConfig {
        RoleConfig { sampling: self.sampling.clone(), max_tokens: self.max_tokens }
    }
}

/// Everything that decides what a run writes. Hashed into the manifest; any change between a
/// run and its resumption is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The environment's name: a built-in domain's, or an environment package's `name`.
    pub domain: String,
    /// For an environment package: its files' hashes (a changed file is a different run) and,
    /// unhashed, where it lay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<crate::env::PackageRef>,
    pub seed: u64,
    /// Attempts in flight at once (`None`: as many as the models can serve at once, see
    /// `cli::pipeline::concurrency`). It changes timing only, never the output.
    pub concurrency: Option<usize>,
    /// Phase 1 stops at this many validated blueprints...
    pub tasks: usize,
    /// ...or after this many attempts.
    pub max_attempts: usize,
    pub reviewers: usize,
    pub threshold: f64,
    /// Revision rounds after a failed draft.
    pub rounds: usize,
    /// Where ground-truth actions come from.
    pub actions: Actions,
    /// With sampled actions, the most writes per task.
    pub max_writes: usize,
    /// The share of attempt groups whose validated blueprints are recombined (0: none).
    pub recombine: f64,
    /// The share of users whose validated blueprints go to `heldout.jsonl` for `eval` instead
    /// of to Phase 2 (0: none).
    pub holdout: f64,
    /// Phase 2 conversations per blueprint.
    pub attempts: usize,
    /// Candidate user turns scored by the judge (1: no judge).
    pub best_of: usize,
    /// Agent steps per conversation.
    pub max_turns: usize,
    pub max_parse_errors: usize,
    pub generator: Role,
    pub reviewer: Reviewers,
    pub summarizer: Role,
    pub user: Role,
    pub judge: Role,
    pub agent: Role,
}

impl Settings {
    fn check(&self) -> Result<()> {
        for (key, value) in [
            ("concurrency", self.concurrency.unwrap_or(1)),
            ("tasks", self.tasks),
            ("max_attempts", self.max_attempts),
            ("reviewers", self.reviewers),
            ("max_writes", self.max_writes),
            ("attempts", self.attempts),
            ("best_of", self.best_of),
            ("max_turns", self.max_turns),
            ("max_parse_errors", self.max_parse_errors),
        ] {
            if value == 0 {
                bail!("{key} must be at least 1");
            }
        }
        for (key, value) in [("threshold", self.threshold), ("recombine", self.recombine), ("holdout", self.holdout)] {
            if !(0.0..=1.0).contains(&value) {
                bail!("{key} must be between 0 and 1, got {value}");
            }
        }
        Ok(())
    }

    /// The settings as JSON, the form the manifest stores and the hash covers.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// SHA-256 of the canonical JSON (keys in declaration order, compact), without the
    /// [`UNHASHED`] keys: they change how fast or where a run goes, not what it writes.
    pub fn hash(&self) -> String {
        let mut value = self.to_json();
        remove_unhashed(&mut value, &mut Vec::new());
        sha256_hex(value.to_string().as_bytes())
    }

    /// Every distinct model the given roles use, in a fixed order.
    pub fn models<'a>(&'a self, roles: &[&str]) -> Vec<ModelRef<'a>> {
        let mut out: Vec<ModelRef> = Vec::new();
        for role in roles {
            for model in self.role_models(role) {
                if !out.contains(&model) {
                    out.push(model);
                }
            }
        }
        out
    }

    /// The models of one role (reviewers may have several).
    pub fn role_models(&self, role: &str) -> Vec<ModelRef<'_>> {
        match role {
            "reviewer" => self.reviewer.model_refs(),
            other => self.role(other).map(|r| vec![r.model_ref()]).unwrap_or_default(),
        }
    }

    /// A single-model role by name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        match name {
            "generator" => Some(&self.generator),
            "summarizer" => Some(&self.summarizer),
            "user" => Some(&self.user),
            "judge" => Some(&self.judge),
            "agent" => Some(&self.agent),
            _ => None,
        }
    }

    /// The roles, by name, with each one's sampling, and its server when it has one.
    pub fn role_sampling(&self, role: &str) -> Option<(&SamplingParams, Option<&Server>)> {
        match role {
            "reviewer" => Some((&self.reviewer.sampling, self.reviewer.server.as_ref())),
            other => self.role(other).map(|r| (&r.sampling, r.server.as_ref())),
        }
    }

    /// Records what connecting to `url` found: the served model's name (where the spec did not
    /// give one) and the template source, in every role that uses that server model.
    pub fn resolve_server_model(&mut self, url: &str, asked: &str, served: &str, template: Option<&str>, api: server::Api) {
        let fill = |model: &mut String, server: &mut Option<Server>| {
            if let Some(server) = server.as_mut().filter(|s| s.url == url) {
                if model == asked {
                    *model = served.to_string();
                    server.template = template.map(str::to_string);
                    server.api = api;
                }
            }
        };
        for role in [&mut self.generator, &mut self.summarizer, &mut self.user, &mut self.judge, &mut self.agent] {
            fill(&mut role.model, &mut role.server);
        }
        let Reviewers { models, server, .. } = &mut self.reviewer;
        for model in models.iter_mut() {
            fill(model, server);
        }
    }
}

/// Settings keys that decide how fast or where a run goes, never what it writes: the hash and the
/// comparison a resumed run makes leave them out. Dotted paths; `*` stands for any one key.
/// A server's URL, dialect, key variable, timeout, in-flight limit and retries are here, so a
/// run resumes against the same model served elsewhere; its model name and template source are
/// not.
pub const UNHASHED: &[&str] = &[
    "concurrency",
    "package.path",
    "*.server.url",
    "*.server.flavor",
    "*.server.api_key_env",
    "*.server.timeout_secs",
    "*.server.max_in_flight",
    "*.server.retries",
];

/// Whether the key at `path` is one of the [`UNHASHED`].
fn is_unhashed(path: &[&str]) -> bool {
    UNHASHED.iter().any(|pattern| {
        let parts: Vec<&str> = pattern.split('.').collect();
        parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
    })
}

/// `value` without its [`UNHASHED`] keys.
fn remove_unhashed<'a>(value: &'a mut Value, path: &mut Vec<String>) {
    if let Value::Object(map) = value {
        map.retain(|key, _| {
            let full: Vec<&str> = path.iter().map(String::as_str).chain([key.as_str()]).collect();
            !is_unhashed(&full)
        });
        for (key, child) in map.iter_mut() {
            path.push(key.clone());
            remove_unhashed(child, path);
            path.pop();
        }
    }
}

/// The first key (as a dotted path) whose value differs between two JSON documents, ignoring
/// the [`UNHASHED`] keys, or `None` when they agree.
pub fn first_difference(old: &Value, new: &Value) -> Option<String> {
    fn walk(path: &str, a: &Value, b: &Value) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys = x.keys().chain(y.keys().filter(|k| !x.contains_key(*k)));
                for key in keys {
                    let sub = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    if is_unhashed(&sub.split('.').collect::<Vec<_>>()) {
                        continue;
                    }
                    match (x.get(key), y.get(key)) {
                        (Some(a), Some(b)) => {
                            if let Some(found) = walk(&sub, a, b) {
                                return Some(found);
                            }
                        }
                        _ => return Some(sub),
                    }
                }
                None
            }
            _ if a == b => None,
            _ => Some(if path.is_empty() { "(the whole config)".into() } else { path.to_string() }),
        }
    }
    walk("", old, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SettingsFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_override_the_file_key_by_key_and_roles_default_to_the_top_model() {
        let base = file("domain = 'retail'\nmodel = 'a'\nbest_of = 2\n[agent]\nmodel = 'b'\ntemperature = 0.3\n");
        let flags = SettingsFile { best_of: Some(5), agent: RoleFile { max_tokens: Some(99), ..Default::default() }, ..Default::default() };
        let s = base.merge(&flags).resolve().unwrap();
        assert_eq!(s.best_of, 5);
        assert_eq!((s.agent.model.as_str(), s.agent.sampling.temperature, s.agent.max_tokens), ("b", 0.3, 99));
        assert_eq!(s.user.model, "a");
        assert_eq!(s.models(&["generator", "reviewer", "agent"]).iter().map(|m| m.name).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(s.rounds, 3);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_named() {
        let err = format!("{:#}", toml::from_str::<SettingsFile>("bestof = 2").unwrap_err());
        assert!(err.contains("bestof"), "{err}");
        let err = file("domain = 'retail'\nmodel = 'a'\nbest_of = 0").resolve().unwrap_err().to_string();
        assert!(err.contains("best_of"), "{err}");
        let err = file("domain = 'retail'").resolve().unwrap_err().to_string();
        assert!(err.contains("no model"), "{err}");
        let err = file("domain = 'retail'\nmodel='a'\n[agent]\nmodels = ['x']").resolve().unwrap_err().to_string();
        assert!(err.contains("[agent]"), "{err}");
    }

    #[test]
    fn server_roles_resolve_from_specs_and_tables() {
        let s = file(
            "domain = 'retail'\nmodel = 'local'\n[server]\ntimeout_secs = 9\n\
             [agent]\nmodel = 'http://gpu:8000/v1#Qwen/Q'\n[user.server]\nurl = 'http://gpu:8000'\nretries = 1\n\
             [reviewer]\nmodels = ['http://box/v1#a', 'http://box/v1#b']",
        )
        .resolve()
        .unwrap();
        let agent = s.agent.server.as_ref().unwrap();
        assert_eq!((s.agent.model.as_str(), agent.url.as_str(), agent.timeout_secs), ("Qwen/Q", "http://gpu:8000/v1", 9));
        let user = s.user.server.as_ref().unwrap();
        assert_eq!((s.user.model.as_str(), user.url.as_str(), user.retries), ("", "http://gpu:8000/v1", 1));
        assert_eq!((s.judge.model.as_str(), s.judge.server.is_none()), ("local", true));
        assert_eq!(s.reviewer.models, ["a", "b"]);
        assert_eq!(s.models(&["agent", "judge", "generator"]).len(), 2);
        for (text, needle) in [
            ("model = 'x'\n[agent]\nmodel = 'y'\n[agent.server]\ntimeout_secs = 3", "not a server URL"),
            ("model = 'x'\n[agent]\nmodel = 'http://a'\n[agent.server]\nurl = 'http://b'", "twice"),
            ("model = 'x'\n[reviewer]\nmodels = ['http://a', 'local']", "mixes"),
            ("model = 'x'\n[reviewer]\nmodels = ['http://a', 'http://b']", "different servers"),
            ("model = 'http://a#'", "nothing after"),
        ] {
            let err = format!("{:#}", file(&format!("domain = 'retail'\n{text}")).resolve().unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_server_roles_url_and_limits_are_not_hashed_but_its_model_and_template_are() {
        let a = file("domain = 'retail'\nmodel = 'http://one:1/v1#m'").resolve().unwrap();
        let mut b = a.clone();
        let server = b.agent.server.as_mut().unwrap();
        server.url = "http://two:2/v1".into();
        server.timeout_secs = 1;
        server.max_in_flight = 1;
        server.retries = 0;
        server.api_key_env = Some("KEY".into());
        assert_eq!(a.hash(), b.hash());
        assert_eq!(first_difference(&a.to_json(), &b.to_json()), None);
        b.agent.server.as_mut().unwrap().template = Some("org/other".into());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(first_difference(&a.to_json(), &b.to_json()).as_deref(), Some("agent.server.template"));
        let mut c = a.clone();
        c.resolve_server_model("http://one:1/v1", "m", "m2", Some("org/m2"), server::Api::Completions);
        assert_eq!((c.agent.model.as_str(), c.user.server.as_ref().unwrap().template.as_deref()), ("m2", Some("org/m2")));
        assert_eq!(first_difference(&a.to_json(), &c.to_json()).as_deref(), Some("generator.model"));
        // An in-process run's settings serialize as before: no `server` keys.
        let local = file("domain = 'retail'\nmodel = 'a'").resolve().unwrap();
        assert!(!local.to_json().to_string().contains("server"));
    }

    #[test]
    fn the_hash_ignores_concurrency_and_the_difference_is_named() {
        let a = file("domain = 'retail'\nmodel = 'a'").resolve().unwrap();
        let mut b = a.clone();
        b.concurrency = Some(8);
        assert_eq!(a.hash(), b.hash());
        assert_eq!(first_difference(&a.to_json(), &b.to_json()), None);
        b.judge.sampling.top_p = 0.5;
        assert_ne!(a.hash(), b.hash());
        assert_eq!(first_difference(&a.to_json(), &b.to_json()).as_deref(), Some("judge.sampling.top_p"));
    }
}
