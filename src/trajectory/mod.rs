//! Phase 2 of APIGen-MT: a simulated human and an agent talk in the live environment, and only
//! conversations that provably reach a blueprint's outcome are kept.
//!
//! * [`user`]: the simulated human, one best-of-n turn at a time, scored by a judge;
//! * [`agent`]: the agent loop, which runs the agent's tool calls against the environment;
//! * [`verify`]: the two checks (final state, expected outputs);
//! * [`runner`]: attempts per blueprint, concurrency, and the output files.

pub mod agent;
pub mod runner;
pub mod user;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::SamplingParams;
use crate::env::Action;

/// A task to act out: what the human wants, and what a correct agent does and says.
///
/// This is the part of Phase 1's blueprint that Phase 2 reads; other fields of a blueprint line
/// are ignored, so τ-bench tasks converted to this shape go through the same code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The user's goal, written for the simulated human.
    pub instruction: String,
    /// The ground-truth actions (a_gt); replaying them on fresh data gives the expected state.
    pub actions: Vec<Action>,
    /// Strings the agent must say (o_gt).
    #[serde(default)]
    pub outputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    /// The generated world this blueprint was written against, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_seed: Option<u64>,
}

impl Task {
    /// The task's identity: its `id`, or for a task written without one (a converted τ-bench
    /// task, a hand-written file) a digest of what it asks for. Phase 2 derives its seeds and
    /// record ids from this, never from the task's line number, so a task's conversations do not
    /// change when the file around it does (streaming runs, shards, merges).
    pub fn key(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => {
                let what = serde_json::json!([self.instruction, self.actions, self.outputs]);
                format!("task-{}", &crate::seeds::sha256_hex(what.to_string().as_bytes())[..16])
            }
        }
    }

    /// Reads one blueprint per non-empty line; `origin` names the file in errors.
    pub fn parse_jsonl(text: &str, origin: &str) -> anyhow::Result<Vec<Task>> {
        let mut out = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value =
                serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{origin}:{}: not a JSON object: {e}", number + 1))?;
            let blueprint: Task =
                serde_json::from_value(value).map_err(|e| anyhow::anyhow!("{origin}:{}: not a blueprint: {e}", number + 1))?;
            out.push(blueprint);
        }
        Ok(out)
    }
}

pub use crate::config::RoleConfig;

/// Everything that shapes a Phase 2 run besides the models and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryConfig {
    pub run_seed: u64,
    /// Tries per blueprint.
    pub attempts: usize,
    /// Candidates per simulated-user turn; 1 skips the judge.
    pub best_of: usize,
    /// Agent steps (generations) per conversation.
    pub max_turns: usize,
    /// Consecutive unparseable agent turns after which the conversation is abandoned.
    pub max_parse_errors: usize,
    pub agent: RoleConfig,
    pub user: RoleConfig,
    pub judge: RoleConfig,
}

impl TrajectoryConfig {
    /// Phase 2's configuration from the run's settings.
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        Self {
            run_seed: s.seed,
            attempts: s.attempts,
            best_of: s.best_of,
            max_turns: s.max_turns,
            max_parse_errors: s.max_parse_errors,
            agent: s.agent.config(),
            user: s.user.config(),
            judge: s.judge.config(),
        }
    }
}

impl Default for TrajectoryConfig {
    fn default() -> Self {
        let role = |temperature: f32, max_tokens: usize| RoleConfig {
            sampling: SamplingParams { temperature, ..SamplingParams::default() },
            max_tokens,
        };
        Self {
            run_seed: 0,
            attempts: 3,
            best_of: 4,
            max_turns: 30,
            max_parse_errors: 3,
            agent: role(0.0, 512),
            user: role(0.8, 128),
            judge: role(0.0, 16),
        }
    }
}

/// Why an attempt was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    StateMismatch,
    MissingOutputs,
    MaxTurns,
    ContextExceeded,
    ParseErrors,
    /// A verified conversation identical to one already kept for the same blueprint.
    Duplicate,
    /// A model server refused a request of the conversation (`error` says why).
    BackendError,
    /// The environment failed (its tool server crashed, hung or answered garbage); `error`
    /// names the call.
    EnvError,
}

impl Rejection {
    pub fn name(self) -> &'static str {
        match self {
            Rejection::StateMismatch => "state_mismatch",
            Rejection::MissingOutputs => "missing_outputs",
            Rejection::MaxTurns => "max_turns",
            Rejection::ContextExceeded => "context_exceeded",
            Rejection::ParseErrors => "parse_errors",
            Rejection::Duplicate => "duplicate",
            Rejection::BackendError => "backend_error",
            Rejection::EnvError => "env_error",
        }
    }
}

/// Tokens a conversation cost, per role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub prompt: usize,
    pub completion: usize,
}

impl TokenUsage {
    pub fn add(&mut self, completion: &crate::engine::Completion) {
        self.prompt += completion.prompt_tokens;
        self.completion += completion.completion_tokens();
    }
}
