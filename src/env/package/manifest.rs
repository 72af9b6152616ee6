//! `env.toml`, the description of an environment package, and the package's files.
//!
//! ```toml
//! name = "library"                      # ids, metadata and the config hash use it
//! description = "A public library's loan desk."
//! server = ["python3", "server.py"]     # started in the package folder
//! data = "data"                         # one <table>.json per table (default "data")
//! policy = "policy.md"                  # default "policy.md"
//! rounds = 3                            # revision rounds unless the run sets them (default 3)
//! timeout_secs = 10                     # longest wait for one answer of the server (default 10)
//!
//! [subjects]                            # how the data sampler finds what a task is about
//! table = "members"
//! id_args = ["member_id"]
//! identify = ["find_member_by_email"]
//! fields = [{ args = ["email"], pointer = "/email" }]
//! records = { list = "loans", table = "loans", id_args = ["loan_id"] }
//!
//! [hints]                               # all optional
//! write = ["renew_loan", "return_book"]
//! terminate = ["transfer_to_librarian"]
//! forbidden = [["renew_loan", "renew_loan"]]
//! dataflow.renew_loan = { needs = { loan_id = "loan_id" }, yields = [] }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::env::graph::{Dataflow, Source};
use crate::env::Subjects;
use crate::seeds::sha256_hex;

/// The file name of a package's description.
pub const FILE: &str = "env.toml";

/// `env.toml`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    /// The command that starts the tool server, then its arguments; run in the package folder.
    pub server: Vec<String>,
    #[serde(default = "default_data")]
    pub data: String,
    #[serde(default = "default_policy")]
    pub policy: String,
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// `[subjects]`: how the data sampler finds what a task is about (see [`Subjects`]).
    pub subjects: Subjects,
    #[serde(default)]
    pub hints: HintsFile,
}

fn default_data() -> String {
    "data".into()
}
fn default_policy() -> String {
    "policy.md".into()
}
fn default_rounds() -> usize {
    3
}
fn default_timeout() -> f64 {
    10.0
}

/// `[hints]`: what the server's tool list cannot say.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintsFile {
    /// Tools that change the data. Without any kind hints, a tool is a read when its MCP
    /// annotations say `readOnlyHint: true`, and a write otherwise (MCP's own default).
    #[serde(default)]
    pub write: Vec<String>,
    /// Tools that only read; needed only to overrule a missing `readOnlyHint`.
    #[serde(default)]
    pub read: Vec<String>,
    /// Tools that let the agent think aloud.
    #[serde(default)]
    pub think: Vec<String>,
    /// Tools that end the conversation (a transfer to a person).
    #[serde(default)]
    pub terminate: Vec<String>,
    /// `[first, second]`: the policy does not let `second` follow `first` on one record.
    #[serde(default)]
    pub forbidden: Vec<[String; 2]>,
    /// Per tool, where its required arguments come from and what its output yields; a tool
    /// not listed gets the graph derived from the data (see `derive_dataflow`).
    #[serde(default)]
    pub dataflow: BTreeMap<String, DataflowFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataflowFile {
    /// Argument → the field an earlier output yields, or `"said"` (the user says it).
    #[serde(default)]
    pub needs: BTreeMap<String, String>,
    #[serde(default)]
    pub yields: Vec<String>,
}

impl DataflowFile {
    pub fn to_dataflow(&self, tool: &str) -> Dataflow {
        Dataflow {
            name: tool.to_string(),
            needs: self
                .needs
                .iter()
                .map(|(arg, from)| (arg.clone(), if from == "said" { Source::Said } else { Source::Field(from.clone()) }))
                .collect(),
            yields: self.yields.clone(),
        }
    }
}

impl Manifest {
    /// Reads and checks `DIR/env.toml`; errors name the file and the field.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let field = |name: &str, problem: &str| anyhow::anyhow!("{}: `{name}` {problem}", path.display());
        if manifest.name.is_empty() || !manifest.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(field("name", "must be letters, digits, '_' or '-' (it goes into ids)"));
        }
        if manifest.server.is_empty() || manifest.server[0].is_empty() {
            return Err(field("server", "must name the command that starts the tool server"));
        }
        if !(manifest.timeout_secs > 0.0 && manifest.timeout_secs.is_finite()) {
            return Err(field("timeout_secs", "must be a positive number of seconds"));
        }
        for (key, value) in [("data", &manifest.data), ("policy", &manifest.policy)] {
            if Path::new(value).is_absolute() || value.split('/').any(|p| p == "..") {
                return Err(field(key, "must be a path inside the package"));
            }
        }
        Ok(manifest)
    }
}

/// SHA-256 of every file of the package, by path relative to it (`/`-separated), leaving out
/// hidden files and what Python writes beside its sources (`__pycache__`). This, and never
/// the folder's location, is what identifies a package's content.
pub fn fingerprint(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", folder.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "__pycache__" || name.ends_with(".pyc") {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            let key = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
            files.insert(key, sha256_hex(&bytes));
        }
    }
    if files.is_empty() {
        bail!("{} holds no files", dir.display());
    }
    Ok(files)
}
