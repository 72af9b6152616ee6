//! The flags that describe a run, shared by `run`, `blueprints` and `trajectories`. Every flag
//! is optional: it overrides the same key of `--config FILE`, and what neither gives takes the
//! default (see `run.example.toml`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::config::server::{Api, ServerFile};
use crate::config::{RoleFile, Settings, SettingsFile};
use crate::shard::Shard;

/// Flags every pipeline command takes.
#[derive(Debug, Clone, Args)]
pub struct CommonFlags {
    /// A TOML run config (see run.example.toml); flags override its keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The environment: a built-in domain's name (`apigen-mt env list`) or an environment package's folder (README, "Writing an environment").
    #[arg(long)]
    pub domain: Option<String>,
    /// Every role's model unless the role names its own: a preset, a local directory or .gguf
    /// file, a Hugging Face repo `org/name[@revision][:file.gguf]`, or an inference server
    /// `http://HOST:PORT/v1[#MODEL]` (vLLM, SGLang, llama-server, `apigen-mt serve`; without
    /// #MODEL, the server's first model). Each --ROLE-model takes the same forms.
    #[arg(long, short = 'm', value_name = "MODEL")]
    pub model: Option<String>,
    /// The run seed every random choice and sampling seed derives from (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Attempts in flight at once; it changes speed, never the output. Default: as many as
    /// every model can serve at once with 4,096-token contexts (an in-process model: what its
    /// KV cache budget holds, see --kv-cache-mb; a server: its most requests in flight), at
    /// most 64. Phase 1 holds back attempts its count of blueprints will not need, at the pass
    /// rate seen so far.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Do shard I of N of the run (`I/N`, from 0), or `auto`: the shard a Slurm job array
    /// (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) assigns. Each
    /// shard writes a normal, resumable run directory; `apigen-mt merge` joins them into the
    /// run one process would have made. See "More than one machine" in the README.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// The number of shards, for `--shard auto` where the environment does not give it (a
    /// Kubernetes Indexed Job's completions).
    #[arg(long, value_name = "N", env = "APIGEN_SHARD_COUNT")]
    pub shard_count: Option<usize>,
    #[command(flatten)]
    pub server: ServerFlags,
}

impl CommonFlags {
    /// The shard this process does, if the run is sharded.
    pub fn shard(&self) -> Result<Option<Shard>> {
        match self.shard.as_deref() {
            None => Ok(None),
            Some("auto") => Shard::from_env(self.shard_count, |name| std::env::var(name).ok()).map(Some),
            Some(text) => {
                let shard: Shard = text.parse()?;
                if let Some(n) = self.shard_count.filter(|&n| n != shard.count) {
                    anyhow::bail!("--shard {text} disagrees with --shard-count {n}");
                }
                Ok(Some(shard))
            }
        }
    }
}

/// Options of every role whose model is an inference server (`[server]` in the config).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Inference servers (roles whose model is http://...)")]
pub struct ServerFlags {
    /// Where prompts are rendered from: a preset, model folder or hub repo with the served
    /// model's chat template and tokenizer, or `server` for llama-server's own (default: the
    /// served model name when it is one of those, else the server's template).
    #[arg(long, value_name = "SOURCE")]
    pub server_template: Option<String>,
    /// completions (default: prompts rendered here, sent to /v1/completions) or chat (the
    /// server renders them, /v1/chat/completions).
    #[arg(long, value_name = "API")]
    pub server_api: Option<String>,
    /// The environment variable holding the servers' API key.
    #[arg(long, value_name = "VAR")]
    pub server_api_key_env: Option<String>,
    /// Seconds one request may take before it is retried (default 600).
    #[arg(long, value_name = "SECONDS")]
    pub server_timeout: Option<u64>,
    /// Requests in flight to one server model at most (default 32).
    #[arg(long, value_name = "N")]
    pub server_max_in_flight: Option<usize>,
    /// Retries after a timeout, connection error, 429 or 5xx before the run stops (default 5).
    #[arg(long, value_name = "N")]
    pub server_retries: Option<usize>,
    /// The server's dialect: vllm, sglang, llama-server, apigen-mt or openai (default: detected).
    #[arg(long, value_name = "FLAVOR")]
    pub server_flavor: Option<String>,
}

impl ServerFlags {
    fn file(&self) -> Result<ServerFile> {
        let api = match self.server_api.as_deref() {
            None => None,
            Some("completions") => Some(Api::Completions),
            Some("chat") => Some(Api::Chat),
            Some(other) => anyhow::bail!("--server-api {other:?}: expected completions or chat"),
        };
        Ok(ServerFile {
            template: self.server_template.clone(),
            api,
            flavor: self.server_flavor.clone(),
            api_key_env: self.server_api_key_env.clone(),
            timeout_secs: self.server_timeout,
            max_in_flight: self.server_max_in_flight,
            retries: self.server_retries,
            ..ServerFile::default()
        })
    }
}

/// Phase 1's flags.
#[derive(Debug, Clone, Default, Args)]
pub struct BlueprintFlags {
    /// Stop Phase 1 after this many attempts (default 4 × the blueprint count).
    #[arg(long)]
    pub max_attempts: Option<usize>,
    /// Reviewers in the committee (default 3).
    #[arg(long)]
    pub reviewers: Option<usize>,
    /// Mean of the voted criteria a blueprint needs to pass review (default 0.75).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Revision rounds after a failed draft (default: the domain's own, 3 to 5 for the built-in ones).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// The share of validated blueprints to make by reverse recombination, 0 to 1 (default
    /// 0.2; 0 turns it off). With it on, attempts come in groups of three that share one user
    /// and database; when a group closes and the output is short of this share, the group's
    /// validated blueprints are combined into one task, re-checked and reviewed.
    #[arg(long, value_name = "SHARE")]
    pub recombine: Option<f64>,
    /// Where each blueprint's ground-truth actions come from (default: sampled). `sampled`: the
    /// environment walks the user's records, fills every argument from the data, executes the
    /// calls on a fresh copy and keeps those that succeed and break no rule; the generator then
    /// writes the instruction around them (revisions rewrite the instruction, never the
    /// actions). `model`: the generator drafts the actions too, under the grounded schema.
    #[arg(long, value_enum)]
    pub actions: Option<crate::config::Actions>,
    /// With sampled actions, the most writes a task gets; each task draws 1 to this many
    /// (default 4).
    #[arg(long, value_name = "N")]
    pub max_writes: Option<usize>,
    /// The share of users, 0 to 1, whose validated blueprints are held out for `eval` (written
    /// to heldout.jsonl, never acted out or trained on; default 0). Chosen by user, so no
    /// held-out task shares a user, a database or a recombined part with the training data.
    #[arg(long, value_name = "SHARE")]
    pub holdout: Option<f64>,
    #[arg(long, value_name = "MODEL")]
    pub generator_model: Option<String>,
    /// The reviewers' models; reviewer k uses the k-th, cycling.
    #[arg(long, value_name = "MODEL", num_args = 1..)]
    pub reviewer_model: Vec<String>,
    #[arg(long, value_name = "MODEL")]
    pub summarizer_model: Option<String>,
    /// Sampling temperature of the generator (default 0.7; likewise reviewer and summarizer).
    #[arg(long)]
    pub generator_temperature: Option<f32>,
    #[arg(long)]
    pub reviewer_temperature: Option<f32>,
    #[arg(long)]
    pub summarizer_temperature: Option<f32>,
    /// Most tokens the generator may write (default 768).
    #[arg(long)]
    pub generator_max_tokens: Option<usize>,
    /// Most tokens each reviewer may write (default 256).
    #[arg(long)]
    pub reviewer_max_tokens: Option<usize>,
    /// Most tokens the summarizer may write (default 160).
    #[arg(long)]
    pub summarizer_max_tokens: Option<usize>,
}

/// Phase 2's flags.
#[derive(Debug, Clone, Default, Args)]
pub struct TrajectoryFlags {
    /// Conversations per blueprint (default 3).
    #[arg(long)]
    pub attempts: Option<usize>,
    /// Candidates per simulated-user turn, scored by the judge; 1: no judge (default 4).
    #[arg(long)]
    pub best_of: Option<usize>,
    /// Agent steps per conversation (default 30).
    #[arg(long)]
    pub max_turns: Option<usize>,
    #[arg(long, value_name = "MODEL")]
    pub agent_model: Option<String>,
    #[arg(long, value_name = "MODEL")]
    pub user_model: Option<String>,
    #[arg(long, value_name = "MODEL")]
    pub judge_model: Option<String>,
    /// The agent's sampling temperature (default 0; user 0.8, judge 0).
    #[arg(long)]
    pub agent_temperature: Option<f32>,
    #[arg(long)]
    pub user_temperature: Option<f32>,
    #[arg(long)]
    pub judge_temperature: Option<f32>,
    /// Most tokens per agent turn (default 512; user 128, judge 16).
    #[arg(long)]
    pub agent_max_tokens: Option<usize>,
    #[arg(long)]
    pub user_max_tokens: Option<usize>,
    #[arg(long)]
    pub judge_max_tokens: Option<usize>,
}

fn role(model: Option<&String>, temperature: Option<f32>, max_tokens: Option<usize>) -> RoleFile {
    RoleFile { model: model.cloned(), temperature, max_tokens, ..RoleFile::default() }
}

/// The resolved settings: `--config` (if any), overridden by the flags that were given.
pub fn resolve(common: &CommonFlags, tasks: Option<usize>, p1: &BlueprintFlags, p2: &TrajectoryFlags) -> Result<Settings> {
    let base = match &common.config {
        Some(path) => SettingsFile::load(path)?,
        None => SettingsFile::default(),
    };
    let flags = SettingsFile {
        domain: common.domain.clone(),
        model: common.model.clone(),
        seed: common.seed,
        concurrency: common.concurrency,
        tasks,
        max_attempts: p1.max_attempts,
        reviewers: p1.reviewers,
        threshold: p1.threshold,
        rounds: p1.rounds,
        actions: p1.actions,
        max_writes: p1.max_writes,
        recombine: p1.recombine,
        holdout: p1.holdout,
        attempts: p2.attempts,
        best_of: p2.best_of,
        max_turns: p2.max_turns,
        max_parse_errors: None,
        server: common.server.file()?,
        generator: role(p1.generator_model.as_ref(), p1.generator_temperature, p1.generator_max_tokens),
        reviewer: RoleFile {
            models: (!p1.reviewer_model.is_empty()).then(|| p1.reviewer_model.clone()),
            ..role(None, p1.reviewer_temperature, p1.reviewer_max_tokens)
        },
        summarizer: role(p1.summarizer_model.as_ref(), p1.summarizer_temperature, p1.summarizer_max_tokens),
        user: role(p2.user_model.as_ref(), p2.user_temperature, p2.user_max_tokens),
        judge: role(p2.judge_model.as_ref(), p2.judge_temperature, p2.judge_max_tokens),
        agent: role(p2.agent_model.as_ref(), p2.agent_temperature, p2.agent_max_tokens),
    };
    base.merge(&flags).resolve()
}
