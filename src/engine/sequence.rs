//! One request inside the engine: its tokens so far, its cache, and everything that turns the
//! logits of its last token into the next tokens (sampler, constraint, stop strings, streaming).
//!
//! A sequence is always in one state: `tokens[..kv.len()]` are computed, and the rest are waiting
//! to be fed, whether they are prompt tokens, the token just sampled, tokens a grammar forced, or
//! everything again after a preemption dropped the cache. The scheduler only ever feeds
//! [`Sequence::pending`], and samples once nothing is pending.

use std::sync::mpsc::Sender;
use std::time::Duration;
use std::time::Instant;

use super::loaded::{Frontend, Prepared};
use super::sampling::Sampler;
use super::stop::StopScanner;
use super::{Completion, EngineError, FinishReason, Request};
use crate::constrain::SeqConstraint;
use crate::model::SeqKv;
use crate::tokenizer::TextStream;

/// What a sequence tells its caller.
pub enum Event {
    Text(String),
    Done(Result<Completion, EngineError>),
}

pub struct Sequence {
    /// Admission order: the scheduler serves and preempts by it.
    pub id: u64,
    pub request: Request,
    /// Prompt then generated tokens.
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    /// Holds `tokens[..kv.len()]`.
    pub kv: SeqKv,
    /// Prompt tokens the prefix cache supplied at first admission.
    pub cached_tokens: usize,
    /// Whether the prompt has been computed once (it is then offered to the prefix cache).
    pub prefilled: bool,
    events: Sender<Event>,
    constraint: Option<SeqConstraint>,
    sampler: Sampler,
    /// `None` for a model without a tokenizer (random weights): its output has no text.
    text: Option<TextStream>,
    stops: StopScanner,
    generated: usize,
    /// Time spent computing constraint masks and advancing the grammar.
    pub mask_time: Duration,
}

/// How a sequence ended.
pub struct Finish {
    pub reason: FinishReason,
    pub error: Option<String>,
}

impl Sequence {
    pub fn new(id: u64, prepared: Prepared, events: Sender<Event>, frontend: &Frontend, kv: SeqKv) -> Self {
        let Prepared { tokens, request, constraint } = prepared;
        Self {
            id,
            sampler: Sampler::new(&request.sampling),
            stops: StopScanner::new(&request.stop),
            text: frontend.tokenizer().map(|t| t.stream(true)),
            prompt_len: tokens.len(),
            tokens,
            kv,
            cached_tokens: 0,
            prefilled: false,
            events,
            constraint,
            request,
            generated: 0,
            mask_time: Duration::ZERO,
        }
    }

    /// Tokens not yet in the cache.
    pub fn pending(&self) -> usize {
        self.tokens.len() - self.kv.len()
    }

    pub fn has_constraint(&self) -> bool {
        self.constraint.is_some()
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> usize {
        self.generated
    }

    /// The most tokens this sequence can hold: its prompt plus its budget, within the context.
    pub fn max_len(&self, context: usize) -> usize {
        (self.prompt_len + self.request.max_tokens).min(context)
    }

    /// Picks the next tokens from the logits of the last computed token and appends them.
    /// Returns how the sequence ended, or `None` when it goes on.
    pub fn advance(&mut self, logits: &mut [f32], frontend: &Frontend) -> Option<Finish> {
        let context = frontend.context_length();
        if self.generated >= self.request.max_tokens || self.tokens.len() >= context {
            return Some(Finish { reason: FinishReason::Length, error: None });
        }
        let start = Instant::now();
        let step = self.sample(logits, frontend);
        if self.constraint.is_some() {
            self.mask_time += start.elapsed();
        }
        let mut step = match step {
            Ok(Step::Tokens(tokens)) => tokens,
            Ok(Step::End(reason, last)) => {
                if let Some(token) = last {
                    self.push(token, frontend);
                }
                return Some(Finish { reason, error: None });
            }
            Err(message) => return Some(Finish { reason: FinishReason::Error, error: Some(message) }),
        };
        // Forced tokens may overrun the budget; keep only what fits.
        step.truncate((self.request.max_tokens - self.generated).min(context - self.tokens.len()));
        for token in step {
            self.push(token, frontend);
            if self.stops.stopped() {
                return Some(Finish { reason: FinishReason::Stop, error: None });
            }
        }
        if self.constraint.as_ref().is_some_and(|c| c.is_complete()) {
            return Some(Finish { reason: FinishReason::Constraint, error: None });
        }
        if self.generated >= self.request.max_tokens || self.tokens.len() >= context {
            return Some(Finish { reason: FinishReason::Length, error: None });
        }
        None
    }

    /// Masks, samples and advances the constraint for one step. `Err` carries the reason a
    /// constrained request cannot continue.
    fn sample(&mut self, logits: &mut [f32], frontend: &Frontend) -> Result<Step, String> {
        if self.request.ignore_eos {
            for &eos in frontend.eos_tokens() {
                if let Some(logit) = logits.get_mut(eos as usize) {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
        let Some(constraint) = self.constraint.as_mut() else {
            return match self.sampler.sample(logits, &self.tokens) {
                Some(token) if frontend.is_eos(token) => Ok(Step::End(FinishReason::Stop, None)),
                Some(token) => Ok(Step::Tokens(vec![token])),
                None => Err("every logit is -inf or NaN; nothing can be sampled".into()),
            };
        };
        constraint.apply_mask(logits).map_err(|e| e.to_string())?;
        let token = self.sampler.sample(logits, &self.tokens).ok_or("the constraint allows no token here")?;
        constraint.commit(token).map_err(|e| e.to_string())?;
        if constraint.is_complete() {
            let last = (!frontend.is_eos(token)).then_some(token);
            return Ok(Step::End(FinishReason::Constraint, last));
        }
        let mut tokens = vec![token];
        tokens.extend(constraint.take_forced_tokens().map_err(|e| e.to_string())?);
        Ok(Step::Tokens(tokens))
    }

    /// Records a generated token and streams whatever text it completes.
    fn push(&mut self, token: u32, frontend: &Frontend) {
        self.tokens.push(token);
        self.generated += 1;
        let (Some(text), Some(tokenizer)) = (&mut self.text, frontend.tokenizer()) else { return };
        // A token the tokenizer cannot decode adds no text; the token itself is kept.
        if let Ok(Some(piece)) = text.step(tokenizer, token) {
            let out = self.stops.push(&piece);
            if !out.is_empty() {
                // A caller that went away just stops listening.
                let _ = self.events.send(Event::Text(out));
            }
        }
    }

    /// Sends the final completion.
    pub fn finish(mut self, finish: Finish) {
        let rest = self.stops.finish();
        if !rest.is_empty() {
            let _ = self.events.send(Event::Text(rest));
        }
        let completion = Completion {
            text: self.stops.text().to_string(),
            reasoning: None,
            tokens: self.tokens[self.prompt_len..].to_vec(),
            prompt_tokens: self.prompt_len,
            generated_count: None,
            cached_tokens: self.cached_tokens,
            finish_reason: finish.reason,
            error: finish.error,
        };
        let _ = self.events.send(Event::Done(Ok(completion)));
    }

    /// Ends the request with an engine failure.
    pub fn fail(self, error: EngineError) {
        let _ = self.events.send(Event::Done(Err(error)));
    }
}

/// What one decoding step decided.
enum Step {
    /// Tokens to append: the sampled one, then any the constraint forces.
    Tokens(Vec<u32>),
    /// Generation ends, after appending the final token if there is one (an end-of-sequence
    /// token is never appended).
    End(FinishReason, Option<u32>),
}
