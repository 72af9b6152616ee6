//! One attempt's door to the model: renders a role's prompt, sends it with the role's settings
//! and a derived seed, and keeps the trace and token counts the run reports.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::chat::Message;
use crate::engine::{Constraint, EngineHandle, FinishReason, Prompt, Request, SamplingParams};
use crate::prompts::Prompts;
use crate::seeds::derive;

/// How one role (generator, reviewer, summarizer, ...) samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleConfig {
    pub sampling: SamplingParams,
    pub max_tokens: usize,
}

/// The models behind Phase 1's roles; one model often sits behind every handle.
#[derive(Debug, Clone)]
pub struct Models {
    pub generator: EngineHandle,
    /// Reviewer k asks `reviewers[k % len]`: different models, or one model with k's seed.
    pub reviewers: Vec<EngineHandle>,
    pub summarizer: EngineHandle,
}

impl Models {
    /// Every role on one model.
    pub fn single(engine: EngineHandle) -> Self {
        Self { generator: engine.clone(), reviewers: vec![engine.clone()], summarizer: engine }
    }
}

/// Who is asked: the role names the prompt's seed path and trace entries, and picks the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Generator,
    Reviewer(usize),
    Summarizer,
    /// The recombination writer: the generator's model, which writes one instruction for a
    /// recombined blueprint. Its own role name keeps its seeds and trace entries apart.
    Recombiner,
}

impl Who {
    pub fn role(self) -> &'static str {
        match self {
            Who::Generator => "generator",
            Who::Reviewer(_) => "reviewer",
            Who::Summarizer => "summarizer",
            Who::Recombiner => "recombiner",
        }
    }
}

/// Calls made for one attempt, with what they cost.
pub struct Caller<'a> {
    pub models: &'a Models,
    pub prompts: &'a Prompts,
    pub run_seed: u64,
    pub task: usize,
    pub trace: Vec<Value>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// A completion that can be used: finished cleanly, not cut off.
pub struct Reply {
    pub text: String,
}

impl<'a> Caller<'a> {
    pub fn new(models: &'a Models, prompts: &'a Prompts, run_seed: u64, task: usize) -> Self {
        Self { models, prompts, run_seed, task, trace: Vec::new(), prompt_tokens: 0, completion_tokens: 0 }
    }

    /// Asks `who` with `template` rendered from `context`. `path` names the call (round,
    /// reviewer index) and, with the run seed, task and role, derives its sampling seed. An
    /// engine error, a cut-off output or a failed generation is an `Err` with the reason.
    pub fn ask(
        &mut self,
        who: Who,
        config: &RoleConfig,
        template: &str,
        context: &Value,
        path: &[&str],
        schema: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let role = who.role();
        let engine = match who {
            Who::Generator | Who::Recombiner => &self.models.generator,
            Who::Summarizer => &self.models.summarizer,
            Who::Reviewer(k) => match self.models.reviewers.get(k % self.models.reviewers.len().max(1)) {
                Some(engine) => engine,
                None => anyhow::bail!("no reviewer model"),
            },
        };
        let text = self.prompts.render(template, context)?;
        let task = self.task.to_string();
        let mut seed_path = vec!["blueprint", task.as_str(), role];
        seed_path.extend_from_slice(path);
        let sampling = SamplingParams { seed: derive(self.run_seed, &seed_path), ..config.sampling.clone() };
        let mut request = Request::new(Prompt::chat(vec![Message::user(text.clone())]))
            .sampling(sampling)
            .max_tokens(config.max_tokens);
        if let Some(schema) = schema {
            request = request.constraint(Constraint::JsonSchema(schema));
        }
        // The trace keeps the role's prompt and the exact text the model was given (its chat
        // template's rendering), which only the engine knows; null where it cannot tell.
        let rendered = engine.render_prompt(&request.prompt).unwrap_or(None);
        let result = engine.generate(request);
        let entry = match &result {
            Ok(c) => json!({"task": self.task, "role": role, "call": path, "prompt": text, "rendered_prompt": rendered,
                             "completion": c.text, "finish_reason": c.finish_reason, "error": c.error}),
            Err(e) => json!({"task": self.task, "role": role, "call": path, "prompt": text, "rendered_prompt": rendered, "error": e.to_string()}),
        };
        self.trace.push(entry);
        let completion = result.map_err(|e| anyhow::anyhow!("{role}: {e}"))?;
        self.prompt_tokens += completion.prompt_tokens;
        self.completion_tokens += completion.completion_tokens();
        match completion.finish_reason {
            FinishReason::Stop | FinishReason::Constraint => Ok(Reply { text: completion.text }),
            FinishReason::Length => anyhow::bail!("{role}: the output hit the {}-token limit", config.max_tokens),
            FinishReason::Error => anyhow::bail!("{role}: {}", completion.error.unwrap_or_default()),
        }
    }
}
