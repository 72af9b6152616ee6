//! The simulated human: a model that knows the blueprint's instruction and persona, has no
//! tools, and writes the customer's side of the chat one message at a time.
//!
//! Each turn samples `best_of` candidates with distinct derived seeds; a judge scores every
//! candidate 0–10 under a JSON-schema constraint and the best one is kept (ties go to the lowest
//! index, so the choice does not depend on timing). All candidates and scores are recorded, so a
//! reviewer can see what the judge preferred and why a turn reads as it does.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{RoleConfig, Task, TokenUsage};
use crate::chat::Message;
use crate::engine::{Constraint, EngineHandle, FinishReason, Prompt, Request, SamplingParams};
use crate::prompts::Prompts;

/// What the simulated user writes, alone, when the goal is met or cannot be met.
pub const STOP: &str = "###STOP###";
/// The agent's opening line. It is shown to the simulated user only: the agent's own
/// conversation starts with the user's first message, as in τ-bench.
pub const GREETING: &str = "Hi! How can I help you today?";

/// One simulated-user turn: every candidate, its judge score, and which one was kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserTurn {
    pub candidates: Vec<String>,
    /// `None` where the judge's answer was not a valid score (or no judge ran, with best-of 1).
    pub scores: Vec<Option<u8>>,
    pub chosen: usize,
}

impl UserTurn {
    pub fn text(&self) -> &str {
        &self.candidates[self.chosen]
    }

    /// Whether the user ended the conversation.
    pub fn is_stop(&self) -> bool {
        self.text().contains(STOP)
    }
}

/// The prompt is longer than the model's context: the conversation cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextExceeded;

/// Generates, or reports that the prompt no longer fits the model's context. A completion that
/// stopped on the context length (before its own `max_tokens`) counts as exceeding it too.
pub(crate) fn generate_in_context(
    engine: &EngineHandle,
    request: Request,
    usage: &mut TokenUsage,
) -> anyhow::Result<Result<crate::engine::Completion, ContextExceeded>> {
    let context = engine.info().context_length;
    let prompt_tokens = engine.count_tokens(&request.prompt)?;
    if prompt_tokens + 1 >= context {
        return Ok(Err(ContextExceeded));
    }
    let max_tokens = request.max_tokens;
    let completion = engine.generate(request)?;
    if completion.finish_reason == FinishReason::Error {
        anyhow::bail!("generation failed: {}", completion.error.as_deref().unwrap_or("no reason given"));
    }
    usage.add(&completion);
    if completion.finish_reason == FinishReason::Length && completion.completion_tokens() < max_tokens {
        return Ok(Err(ContextExceeded));
    }
    Ok(Ok(completion))
}

/// The simulated user of one conversation, with its own view of the chat: the agent's messages
/// are `user` turns and its own are `assistant` turns.
pub struct UserSimulator<'a> {
    model: &'a EngineHandle,
    judge: &'a EngineHandle,
    prompts: &'a Prompts,
    blueprint: &'a Task,
    user: &'a RoleConfig,
    judge_settings: &'a RoleConfig,
    best_of: usize,
    history: Vec<Message>,
    pub user_tokens: TokenUsage,
    pub judge_tokens: TokenUsage,
    /// The engine session the user's requests carry.
    session: Option<String>,
}

/// The judge's answer shape.
fn score_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10}},
        "required": ["score"],
        "additionalProperties": false
    })
}

impl<'a> UserSimulator<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &'a EngineHandle,
        judge: &'a EngineHandle,
        prompts: &'a Prompts,
        blueprint: &'a Task,
        user: &'a RoleConfig,
        judge_settings: &'a RoleConfig,
        best_of: usize,
    ) -> anyhow::Result<Self> {
        let system = prompts.render("user.jinja", json!({"instruction": blueprint.instruction, "persona": blueprint.persona}))?;
        Ok(Self {
            model,
            judge,
            prompts,
            blueprint,
            user,
            judge_settings,
            best_of: best_of.max(1),
            history: vec![Message::system(system)],
            user_tokens: TokenUsage::default(),
            judge_tokens: TokenUsage::default(),
            session: None,
        })
    }

    /// Tags the user's requests with an engine session, so its growing prompt stays cached.
    pub fn with_session(mut self, session: String) -> Self {
        self.session = Some(session);
        self
    }

    /// The agent said `agent_text`; returns the user's next message. `seed` is derived per turn;
    /// candidate `i` samples with a seed derived from it. The candidates are asked for at once,
    /// and then their scores, so that they share the engine's forward passes.
    pub fn respond(&mut self, agent_text: &str, seed: u64) -> anyhow::Result<Result<UserTurn, ContextExceeded>> {
        self.history.push(Message::user(agent_text));
        let requests = (0..self.best_of)
            .map(|index| {
                let sampling =
                    SamplingParams { seed: crate::seeds::derive(seed, &["candidate", &index.to_string()]), ..self.user.sampling.clone() };
                let mut request = Request::new(Prompt::chat(self.history.clone())).sampling(sampling).max_tokens(self.user.max_tokens);
                request.session = self.session.clone();
                request
            })
            .collect();
        let candidates: Vec<String> = match generate_all_in_context(self.model, requests, &mut self.user_tokens)? {
            Ok(completions) => completions.iter().map(|c| clean(&c.text)).collect(),
            Err(exceeded) => return Ok(Err(exceeded)),
        };
        let scores = if candidates.len() > 1 {
            let requests = candidates
                .iter()
                .enumerate()
                .map(|(index, candidate)| self.score_request(candidate, crate::seeds::derive(seed, &["judge", &index.to_string()])))
                .collect::<anyhow::Result<Vec<_>>>()?;
            match generate_all_in_context(self.judge, requests, &mut self.judge_tokens)? {
                Ok(completions) => completions.iter().map(|c| parse_score(&c.text)).collect(),
                Err(exceeded) => return Ok(Err(exceeded)),
            }
        } else {
            vec![None]
        };
        let chosen = best(&scores);
        let turn = UserTurn { candidates, scores, chosen };
        self.history.push(Message::assistant(turn.text()));
        Ok(Ok(turn))
    }

    /// The judge's request for a 0–10 score of `candidate`.
    fn score_request(&self, candidate: &str, seed: u64) -> anyhow::Result<Request> {
        let transcript: Vec<_> = self
            .history
            .iter()
            .skip(1)
            .map(|m| {
                let speaker = if m.role == crate::chat::Role::User { "Agent" } else { "Customer" };
                json!({"speaker": speaker, "text": m.content})
            })
            .collect();
        let prompt = self.prompts.render(
            "judge.jinja",
            json!({
                "instruction": self.blueprint.instruction,
                "persona": self.blueprint.persona,
                "transcript": transcript,
                "candidate": candidate,
            }),
        )?;
        Ok(Request::new(Prompt::chat(vec![Message::user(prompt)]))
            .sampling(SamplingParams { seed, ..self.judge_settings.sampling.clone() })
            .max_tokens(self.judge_settings.max_tokens)
            .constraint(Constraint::JsonSchema(score_schema())))
    }
}

/// [`generate_in_context`] for several requests at once, each on its own thread so that the
/// engine batches them. The results are read in request order, as if they had run one after
/// another: the first error or overflow decides, and only the completions before it count.
fn generate_all_in_context(
    engine: &EngineHandle,
    requests: Vec<Request>,
    usage: &mut TokenUsage,
) -> anyhow::Result<Result<Vec<crate::engine::Completion>, ContextExceeded>> {
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .into_iter()
            .map(|request| {
                scope.spawn(move || {
                    let mut own = TokenUsage::default();
                    generate_in_context(engine, request, &mut own).map(|r| r.map(|c| (c, own)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a generation thread panicked")))).collect()
    });
    let mut completions = Vec::with_capacity(results.len());
    for result in results {
        match result? {
            Ok((completion, own)) => {
                usage.prompt += own.prompt;
                usage.completion += own.completion;
                completions.push(completion);
            }
            Err(exceeded) => return Ok(Err(exceeded)),
        }
    }
    Ok(Ok(completions))
}

/// The candidate as sent: trimmed, and reduced to the stop marker alone when it carries one, so
/// that the agent never sees a half-message glued to `###STOP###`.
fn clean(text: &str) -> String {
    let text = text.trim();
    if text.contains(STOP) {
        STOP.to_string()
    } else {
        text.to_string()
    }
}

/// `{"score": N}` with N in 0..=10, or `None`.
fn parse_score(text: &str) -> Option<u8> {
    let value: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
    let score = value.get("score")?.as_u64()?;
    u8::try_from(score).ok().filter(|s| *s <= 10)
}

/// The index of the highest score; unscored candidates rank below every score, and ties go to
/// the lowest index.
pub fn best(scores: &[Option<u8>]) -> usize {
    let mut chosen = 0;
    for (index, score) in scores.iter().enumerate() {
        if score.map(i16::from).unwrap_or(-1) > scores[chosen].map(i16::from).unwrap_or(-1) {
            chosen = index;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_prefers_the_highest_score_and_the_lowest_index_on_ties() {
        assert_eq!(best(&[Some(3), Some(7), Some(7), Some(1)]), 1);
        assert_eq!(best(&[None, Some(0)]), 1);
        assert_eq!(best(&[None, None]), 0);
        assert_eq!(best(&[Some(10)]), 0);
    }

    #[test]
    fn scores_outside_the_range_or_malformed_are_none() {
        assert_eq!(parse_score(r#"{"score": 8}"#), Some(8));
        assert_eq!(parse_score(r#"{"score": 11}"#), None);
        assert_eq!(parse_score(r#"{"score": "8"}"#), None);
        assert_eq!(parse_score("eight"), None);
    }

    #[test]
    fn a_stop_marker_replaces_the_whole_message() {
        assert_eq!(clean("  thanks! ###STOP### "), STOP);
        assert_eq!(clean(" my zip is 12345 \n"), "my zip is 12345");
    }
}
