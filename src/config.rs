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

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::engine::SamplingParams;

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

/// Keys of the resolved settings (as dotted paths into [`Settings::to_json`]) that change how a
/// run goes but never what it writes: left out of [`Settings::hash`] and of the comparison that
/// decides whether a run may resume.
pub const UNHASHED: &[&str] = &["concurrency"];

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
}

impl RoleFile {
    /// `self` with every field that `other` sets taken from `other`.
    fn merge(&mut self, other: &RoleFile) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(model, models, temperature, top_p, top_k, min_p, repeat_penalty, max_tokens);
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
        take!(domain, model, seed, concurrency, tasks, max_attempts, reviewers, threshold, rounds, actions, max_writes, recombine, holdout, attempts, best_of, max_turns, max_parse_errors);
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
        let default_model = self.model.as_deref();
        let role = |name: &str, file: &RoleFile, temperature: f32, max_tokens: usize| -> Result<Role> {
            if file.models.is_some() {
                bail!("`models` is only for [reviewer]; [{name}] takes one `model`");
            }
            resolve_role(name, file, default_model, temperature, max_tokens, |m| Ok(vec![m]))
                .map(|(models, sampling, max_tokens)| Role { model: models.into_iter().next().unwrap_or_default(), sampling, max_tokens })
        };
        let reviewer = resolve_role("reviewer", &self.reviewer, default_model, 0.7, 256, |m| {
            Ok(match &self.reviewer.models {
                Some(list) if list.is_empty() => bail!("[reviewer] models is empty"),
                Some(list) => list.clone(),
                None => vec![m],
            })
        })?;
        let settings = Settings {
            rounds: self.rounds.unwrap_or(env.default_rounds()),
            domain,
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
            reviewer: Reviewers { models: reviewer.0, sampling: reviewer.1, max_tokens: reviewer.2 },
            summarizer: role("summarizer", &self.summarizer, 0.7, 160)?,
            user: role("user", &self.user, 0.8, 128)?,
            judge: role("judge", &self.judge, 0.0, 16)?,
            agent: role("agent", &self.agent, 0.0, 512)?,
        };
        settings.check()?;
        Ok(settings)
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
    if !(sampling.temperature >= 0.0) || !(sampling.top_p > 0.0 && sampling.top_p <= 1.0) || !(0.0..=1.0).contains(&sampling.min_p) || !(sampling.repeat_penalty > 0.0) {
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
    pub model: String,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
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
    pub domain: String,
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
    /// [`UNHASHED`] keys: they change how fast a run goes, not what it writes.
    pub fn hash(&self) -> String {
        let mut value = self.to_json();
        for key in UNHASHED {
            remove_path(&mut value, key);
        }
        sha256_hex(value.to_string().as_bytes())
    }

    /// Every distinct model the given roles use, in a fixed order.
    pub fn models<'a>(&'a self, roles: &[&str]) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for role in roles {
            let names: Vec<&str> = match *role {
                "generator" => vec![&self.generator.model],
                "reviewer" => self.reviewer.models.iter().map(String::as_str).collect(),
                "summarizer" => vec![&self.summarizer.model],
                "user" => vec![&self.user.model],
                "judge" => vec![&self.judge.model],
                "agent" => vec![&self.agent.model],
                _ => vec![],
            };
            for name in names {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }
}

/// SHA-256 as 64 lowercase hex digits: config hashes, and the fingerprints of input files.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes the value at a dotted path (`a.b.c`), if there is one.
fn remove_path(value: &mut Value, path: &str) {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (parent.split('.').try_fold(&mut *value, |v, k| v.get_mut(k)), last),
        None => (Some(value), path),
    };
    if let Some(Value::Object(map)) = parent {
        map.remove(last);
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
                    if UNHASHED.contains(&sub.as_str()) {
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
        assert_eq!(s.models(&["generator", "reviewer", "agent"]), vec!["a", "b"]);
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
