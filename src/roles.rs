//! Phase 1's roles and one attempt's door to them: renders a role's prompt, sends it with the
//! role's settings and a derived seed, and keeps the trace and token counts the run reports.
//!
//! The generator and summarizer (in [`crate::blueprint`]) and the reviewer committee (in
//! [`crate::validate`]) ask through the same [`Caller`], so it sits below both.

use serde_json::{json, Value};

use crate::chat::Message;
use crate::config::RoleConfig;
use crate::engine::{CancelToken, Completion, Constraint, EngineError, EngineHandle, FinishReason, Prompt, Request, SamplingParams};
use crate::prompts::Prompts;
use crate::seeds::derive;

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
    /// Set when a model server stayed unreachable: the attempt cannot be judged, later calls
    /// fail at once, and [`Caller::available`] stops the run.
    unavailable: Option<String>,
    /// Set by the run when it no longer needs this attempt: requests in flight end (the
    /// in-process engine drops them at its next step; a server's call runs to its end, with no
    /// retry), and later calls fail at once.
    cancel: Option<CancelToken>,
}

/// A completion that can be used: finished cleanly, not cut off.
pub struct Reply {
    pub text: String,
}

impl<'a> Caller<'a> {
    pub fn new(models: &'a Models, prompts: &'a Prompts, run_seed: u64, task: usize) -> Self {
        Self { models, prompts, run_seed, task, trace: Vec::new(), prompt_tokens: 0, completion_tokens: 0, unavailable: None, cancel: None }
    }

    /// Lets the run abandon this attempt through `token`. A run discards the attempts still in
    /// flight when it completes its count, and their remaining calls would only slow the work
    /// that counts (Phase 2's conversations, in a streaming `run`).
    pub fn cancellable(mut self, token: Option<CancelToken>) -> Self {
        self.cancel = token;
        self
    }

    /// `Err` when a model server stayed unreachable during this attempt: its outcome says
    /// nothing about the blueprint, so the run stops without committing it (re-running resumes).
    pub fn available(&self) -> anyhow::Result<()> {
        match &self.unavailable {
            Some(reason) => Err(anyhow::anyhow!("{reason}")),
            None => Ok(()),
        }
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
        let call = Call { who, config, template, context, path, schema };
        self.ask_all(vec![call]).pop().unwrap_or_else(|| anyhow::bail!("no reply"))
    }

    /// Asks several calls at once, each on its own thread so that the engine batches them (a
    /// committee's reviewers). Replies, trace entries and token counts come back in call order,
    /// exactly as if the calls had been made one after another.
    pub fn ask_all(&mut self, calls: Vec<Call>) -> Vec<anyhow::Result<Reply>> {
        let prepared: Vec<anyhow::Result<(Who, &RoleConfig, String, Vec<String>, Request)>> =
            calls.into_iter().map(|call| self.prepare(call)).collect();
        let models = self.models;
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = prepared
                .iter()
                .map(|p| {
                    scope.spawn(move || match p {
                        Ok((who, _, _, _, request)) => Some(engine(models, *who).map(|e| {
                            let rendered = e.render_prompt(&request.prompt).unwrap_or(None);
                            (rendered, e.generate(request.clone()))
                        })),
                        Err(_) => None,
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().ok().flatten()).collect()
        });
        prepared
            .into_iter()
            .zip(results)
            .map(|(prepared, result)| {
                let (who, config, text, path, _) = prepared?;
                let result = result.unwrap_or_else(|| Err(anyhow::anyhow!("a generation thread panicked")))?;
                self.record(who, config, &text, &path, result)
            })
            .collect()
    }

    /// Renders a call's prompt and builds its request.
    fn prepare<'c>(&self, call: Call<'c>) -> anyhow::Result<(Who, &'c RoleConfig, String, Vec<String>, Request)> {
        let Call { who, config, template, context, path, schema } = call;
        if let Some(reason) = &self.unavailable {
            anyhow::bail!("{}: {reason}", who.role());
        }
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            anyhow::bail!("{}: {}", who.role(), EngineError::Cancelled);
        }
        let text = self.prompts.render(template, context)?;
        let task = self.task.to_string();
        let mut seed_path = vec!["blueprint", task.as_str(), who.role()];
        seed_path.extend_from_slice(path);
        let sampling = SamplingParams { seed: derive(self.run_seed, &seed_path), ..config.sampling.clone() };
        let mut request = Request::new(Prompt::chat(vec![Message::user(text.clone())])).sampling(sampling).max_tokens(config.max_tokens);
        if let Some(schema) = schema {
            request = request.constraint(Constraint::JsonSchema(schema));
        }
        if let Some(token) = &self.cancel {
            request = request.cancel(token.clone());
        }
        Ok((who, config, text, path.iter().map(|p| p.to_string()).collect(), request))
    }

    /// Keeps a finished call's trace entry and token counts, and reads its reply. The trace
    /// keeps the role's prompt and `rendered`, the exact text the model was given (its chat
    /// template's rendering), which only the engine knows; null where it cannot tell.
    fn record(
        &mut self,
        who: Who,
        config: &RoleConfig,
        text: &str,
        path: &[String],
        (rendered, result): (Option<String>, Result<Completion, EngineError>),
    ) -> anyhow::Result<Reply> {
        let role = who.role();
        if let Err(EngineError::Unavailable(reason)) = &result {
            self.unavailable = Some(reason.clone());
        }
        let entry = match &result {
            Ok(c) => json!({"task": self.task, "role": role, "call": path, "prompt": text, "rendered_prompt": rendered,
                             "completion": c.text, "finish_reason": c.finish_reason, "error": c.error}),
            Err(e) => {
                json!({"task": self.task, "role": role, "call": path, "prompt": text, "rendered_prompt": rendered, "error": e.to_string()})
            }
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

/// One call to a role: who is asked, how it samples, the prompt template and its context, the
/// names that derive its seed, and the schema its answer must follow.
pub struct Call<'c> {
    pub who: Who,
    pub config: &'c RoleConfig,
    pub template: &'c str,
    pub context: &'c Value,
    pub path: &'c [&'c str],
    pub schema: Option<Value>,
}

/// The model that plays `who`.
fn engine(models: &Models, who: Who) -> anyhow::Result<&EngineHandle> {
    match who {
        Who::Generator | Who::Recombiner => Ok(&models.generator),
        Who::Summarizer => Ok(&models.summarizer),
        Who::Reviewer(k) => match models.reviewers.get(k % models.reviewers.len().max(1)) {
            Some(engine) => Ok(engine),
            None => anyhow::bail!("no reviewer model"),
        },
    }
}
