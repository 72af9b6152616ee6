//! The sequential engine: one worker thread owns the decoder and serves requests one at a time.
//!
//! Callers on any thread prepare their request themselves (render the template, tokenize,
//! compile the constraint: work that needs no model and runs in parallel), then hand it to the
//! worker through a channel and receive text pieces and the final completion back through their
//! own channel. The worker is the only place that touches the decoder and KV caches, so the
//! continuous-batching scheduler replaces [`worker_loop`] and nothing else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::loaded::{Admission, Frontend, LoadedModel, Prepared};
use super::sampling::Sampler;
use super::stop::StopScanner;
use super::{
    Completion, EngineError, EngineHandle, EngineMetrics, FinishReason, LanguageModel, ModelInfo, Prompt, Request,
};
use crate::constrain::SeqConstraint;
use crate::model::{Decoder, SeqChunk};
use crate::tokenizer::TextStream;

/// Prompt tokens fed to the decoder per forward pass: bounds the attention matrix of a long
/// prompt without making short prompts pay for many passes.
const PREFILL_CHUNK: usize = 512;

/// The engine behind an [`EngineHandle`] that serves one request at a time.
pub struct SequentialEngine {
    info: ModelInfo,
    frontend: Arc<Frontend>,
    jobs: Sender<Job>,
    counters: Arc<Counters>,
}

/// A prepared request on its way to the worker, with the channel its answers go back on.
struct Job {
    prepared: Prepared,
    events: Sender<Event>,
}

enum Event {
    Text(String),
    Done(Result<Completion, EngineError>),
}

/// Running totals, shared by the worker (which adds) and the handles (which read).
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    forward_nanos: AtomicU64,
    busy_nanos: AtomicU64,
}

impl SequentialEngine {
    /// Starts the worker thread and returns the handle every caller shares. The worker stops
    /// when the last handle is dropped.
    pub fn start(model: LoadedModel) -> Result<EngineHandle, EngineError> {
        let LoadedModel { decoder, frontend, info } = model;
        let frontend = Arc::new(frontend);
        let counters = Arc::new(Counters::default());
        let (jobs, queue) = mpsc::channel();
        {
            let frontend = frontend.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("apigen-engine".into())
                .spawn(move || worker_loop(decoder, &frontend, &counters, queue))
                .map_err(|e| EngineError::Model(format!("cannot start the engine thread: {e}")))?;
        }
        Ok(EngineHandle::new(Arc::new(Self { info, frontend, jobs, counters })))
    }
}

impl LanguageModel for SequentialEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(
        &self,
        request: Request,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, EngineError> {
        let prepared = match self.frontend.prepare(&request)? {
            Admission::Run(prepared) => prepared,
            Admission::Done(completion) => return Ok(completion),
        };
        let (events, answers) = mpsc::channel();
        self.jobs.send(Job { prepared, events }).map_err(|_| EngineError::Closed)?;
        for event in answers {
            match event {
                Event::Text(piece) => on_text(&piece),
                Event::Done(result) => return result,
            }
        }
        Err(EngineError::Closed)
    }

    fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError> {
        Ok(self.frontend.tokenize(prompt)?.len())
    }

    fn opens_reasoning(&self, prompt: &Prompt) -> Result<bool, EngineError> {
        self.frontend.opens_reasoning(prompt)
    }

    fn metrics(&self) -> EngineMetrics {
        let c = &self.counters;
        EngineMetrics {
            requests: c.requests.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            generated_tokens: c.generated_tokens.load(Ordering::Relaxed),
            forward_time: Duration::from_nanos(c.forward_nanos.load(Ordering::Relaxed)),
            busy_time: Duration::from_nanos(c.busy_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// Serves jobs until every handle is gone.
fn worker_loop(decoder: Decoder, frontend: &Frontend, counters: &Counters, queue: Receiver<Job>) {
    for job in queue {
        let start = Instant::now();
        let mut forward_time = Duration::ZERO;
        let events = job.events;
        let result = run_one(&decoder, frontend, job.prepared, &mut forward_time, &mut |piece| {
            // A caller that went away just stops listening; finishing its request is harmless.
            let _ = events.send(Event::Text(piece));
        });
        counters.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(completion) = &result {
            counters.prompt_tokens.fetch_add(completion.prompt_tokens as u64, Ordering::Relaxed);
            counters.generated_tokens.fetch_add(completion.tokens.len() as u64, Ordering::Relaxed);
        }
        counters.forward_nanos.fetch_add(forward_time.as_nanos() as u64, Ordering::Relaxed);
        counters.busy_nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let _ = events.send(Event::Done(result));
    }
}

/// Generates one completion: prefill in chunks, then sample token by token until a stop.
fn run_one(
    decoder: &Decoder,
    frontend: &Frontend,
    prepared: Prepared,
    forward_time: &mut Duration,
    emit: &mut dyn FnMut(String),
) -> Result<Completion, EngineError> {
    let Prepared { tokens: prompt, request, mut constraint } = prepared;
    let context = frontend.context_length();
    let mut kv = decoder.new_kv();
    let mut forward = |tokens: &[u32], kv: &mut _| -> Result<Vec<f32>, EngineError> {
        let start = Instant::now();
        let mut chunks = [SeqChunk { tokens, kv }];
        let logits = decoder.forward(&mut chunks).map_err(model_error)?;
        let row = logits.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(model_error);
        *forward_time += start.elapsed();
        row
    };

    let mut logits = Vec::new();
    for chunk in prompt.chunks(PREFILL_CHUNK) {
        logits = forward(chunk, &mut kv)?;
    }
    let mut history = prompt.clone();
    let mut generated: Vec<u32> = Vec::new();
    let mut sampler = Sampler::new(&request.sampling);
    let mut text = frontend.tokenizer().stream(true);
    let mut stops = StopScanner::new(&request.stop);
    // Failures after generation started end the request with what it has and the reason.
    let mut error = None;
    let finish = 'decode: loop {
        if generated.len() >= request.max_tokens || history.len() >= context {
            break FinishReason::Length;
        }
        let mut step = match sample_step(&mut sampler, &mut logits, &history, constraint.as_mut(), frontend) {
            Ok(Step::Tokens(tokens)) => tokens,
            Ok(Step::End(reason, last)) => {
                if let Some(token) = last {
                    push_token(token, frontend, &mut text, &mut stops, &mut generated, emit)?;
                }
                break reason;
            }
            Err(message) => {
                error = Some(message);
                break FinishReason::Error;
            }
        };
        // Forced tokens may overrun the budget; keep only what fits.
        step.truncate((request.max_tokens - generated.len()).min(context - history.len()));
        for &token in &step {
            push_token(token, frontend, &mut text, &mut stops, &mut generated, emit)?;
            history.push(token);
            if stops.stopped() {
                break 'decode FinishReason::Stop;
            }
        }
        if constraint.as_ref().is_some_and(|c| c.is_complete()) {
            break FinishReason::Constraint;
        }
        logits = forward(&step, &mut kv)?;
    };
    let rest = stops.finish();
    if !rest.is_empty() {
        emit(rest);
    }
    Ok(Completion {
        text: stops.text().to_string(),
        reasoning: None,
        tokens: generated,
        prompt_tokens: prompt.len(),
        cached_tokens: 0,
        finish_reason: finish,
        error,
    })
}

fn model_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Model(format!("{e:#}"))
}

/// What one decoding step decided.
enum Step {
    /// Tokens to append: the sampled one, then any the constraint forces.
    Tokens(Vec<u32>),
    /// Generation ends, after appending the final token if there is one (an end-of-sequence
    /// token is never appended).
    End(FinishReason, Option<u32>),
}

/// Masks, samples and advances the constraint for one step. `Err` carries the reason a
/// constrained request cannot continue.
fn sample_step(
    sampler: &mut Sampler,
    logits: &mut [f32],
    history: &[u32],
    constraint: Option<&mut SeqConstraint>,
    frontend: &Frontend,
) -> Result<Step, String> {
    let Some(constraint) = constraint else {
        return match sampler.sample(logits, history) {
            Some(token) if frontend.is_eos(token) => Ok(Step::End(FinishReason::Stop, None)),
            Some(token) => Ok(Step::Tokens(vec![token])),
            None => Err("every logit is -inf or NaN; nothing can be sampled".into()),
        };
    };
    constraint.apply_mask(logits).map_err(|e| e.to_string())?;
    let token = sampler.sample(logits, history).ok_or("the constraint allows no token here")?;
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
fn push_token(
    token: u32,
    frontend: &Frontend,
    text: &mut TextStream,
    stops: &mut StopScanner,
    generated: &mut Vec<u32>,
    emit: &mut dyn FnMut(String),
) -> Result<(), EngineError> {
    generated.push(token);
    let piece = text.step(frontend.tokenizer(), token).map_err(model_error)?;
    if let Some(piece) = piece {
        let out = stops.push(&piece);
        if !out.is_empty() {
            emit(out);
        }
    }
    Ok(())
}
