//! The batching engine: one worker thread owns the decoder, and every forward pass serves all
//! active sequences.
//!
//! Callers on any thread prepare their own requests (render the template, tokenize, compile the
//! constraint: work that needs no model and runs in parallel), hand them to the worker through
//! a channel, and receive text pieces and the final completion back through their own channel.
//!
//! Each step of the worker:
//! 1. admits waiting requests, each starting from the longest prefix of its prompt that the
//!    [`PrefixCache`] holds;
//! 2. gives every sequence its pending tokens under a per-step token budget: one token for a
//!    decoding sequence, the sampled token plus any a grammar forced, or a chunk of a prompt
//!    (chunked prefill), decoding sequences first so that long prompts never stall them;
//! 3. keeps the KV memory of live sequences and cached prefixes under its budget, evicting
//!    cached prefixes first and then preempting the newest sequences, which are recomputed later
//!    (their sampler state is kept, so their output does not change);
//! 4. runs one forward pass over all the chunks;
//! 5. samples, in parallel across sequences, for every sequence whose pending tokens are done.
//!
//! Sequences that share a prompt prefix with one still being computed wait for it instead of
//! computing it again: a sequence offers its cache to the prefix cache after every prompt
//! chunk, so many conversations that start together with the same system prompt compute it once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::loaded::{Admission, Frontend, LoadedModel, Prepared};
use super::prefix::{common_prefix, PrefixCache};
use super::sequence::{Event, Finish, Sequence};
use super::{Completion, EngineError, EngineHandle, EngineMetrics, FinishReason, LanguageModel, ModelInfo, Prompt, Request};
use crate::model::{Decoder, SeqChunk, SeqKv};

/// How the engine schedules work and spends memory.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Tokens fed to one forward pass: decode tokens plus prompt chunks.
    pub step_tokens: usize,
    /// Sequences served at once.
    pub max_sequences: usize,
    /// Bytes of key/value cache, for live sequences and cached prefixes together.
    pub kv_budget_bytes: usize,
    /// Reuse computed prompt prefixes across requests.
    pub prefix_cache: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { step_tokens: 512, max_sequences: 64, kv_budget_bytes: default_kv_budget(), prefix_cache: true }
    }
}

impl EngineConfig {
    /// The default budget with the KV memory given in MiB (`--kv-cache-mb`) when set.
    pub fn with_kv_cache_mb(mb: Option<usize>) -> Self {
        let mut config = Self::default();
        if let Some(mb) = mb {
            config.kv_budget_bytes = mb << 20;
        }
        config
    }
}

/// Half the memory available now (after the weights are loaded), at least 256 MiB; 4 GiB where
/// the system does not say.
fn default_kv_budget() -> usize {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        text.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<usize>().ok())
            .map(|kb| kb * 1024)
    });
    match available {
        Some(bytes) => (bytes / 2).max(256 << 20),
        None => 4 << 30,
    }
}

/// Starts an engine on `model` and returns the handle every caller shares. The worker stops when
/// the last handle is dropped.
pub fn start(model: LoadedModel, config: EngineConfig) -> Result<EngineHandle, EngineError> {
    BatchEngine::start(model, config)
}

/// The engine behind an [`EngineHandle`].
pub struct BatchEngine {
    info: ModelInfo,
    /// KV bytes one token of one sequence takes, for [`LanguageModel::capacity`].
    kv_bytes_per_token: usize,
    config: EngineConfig,
    frontend: Arc<Frontend>,
    jobs: Mutex<Sender<Message>>,
    counters: Arc<Counters>,
}

/// What callers send the worker.
enum Message {
    Job(Prepared, Sender<Event>),
    EndSession(String),
}

/// Running totals, shared by the worker (which adds) and the handles (which read).
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    prefix_hit_tokens: AtomicU64,
    steps: AtomicU64,
    step_sequences: AtomicU64,
    step_tokens: AtomicU64,
    preemptions: AtomicU64,
    peak_kv_bytes: AtomicU64,
    forward_nanos: AtomicU64,
    prefill_steps: AtomicU64,
    prefill_nanos: AtomicU64,
    flops: AtomicU64,
    prefill_flops: AtomicU64,
    mask_nanos: AtomicU64,
    masked_tokens: AtomicU64,
    busy_nanos: AtomicU64,
    sampled_tokens: AtomicU64,
    last_first_token: Mutex<Option<(Instant, u64)>>,
}

impl BatchEngine {
    pub fn start(model: LoadedModel, config: EngineConfig) -> Result<EngineHandle, EngineError> {
        if config.step_tokens == 0 || config.max_sequences == 0 {
            return Err(EngineError::Invalid("the engine needs at least one token and one sequence per step".into()));
        }
        let LoadedModel { decoder, frontend, info } = model;
        let kv_bytes_per_token = decoder.kv_bytes_per_token();
        let engine_config = config.clone();
        let frontend = Arc::new(frontend);
        let counters = Arc::new(Counters::default());
        let (jobs, queue) = mpsc::channel();
        {
            let frontend = frontend.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("apigen-engine".into())
                .spawn(move || Worker::new(decoder, frontend, counters, config).run(queue))
                .map_err(|e| EngineError::Model(format!("cannot start the engine thread: {e}")))?;
        }
        Ok(EngineHandle::new(Arc::new(Self {
            info,
            kv_bytes_per_token,
            config: engine_config,
            frontend,
            jobs: Mutex::new(jobs),
            counters,
        })))
    }

    fn send(&self, message: Message) -> Result<(), EngineError> {
        let jobs = self.jobs.lock().map_err(|_| EngineError::Closed)?;
        jobs.send(message).map_err(|_| EngineError::Closed)
    }
}

impl LanguageModel for BatchEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, on_text: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        let prepared = match self.frontend.prepare(&request)? {
            Admission::Run(prepared) => prepared,
            Admission::Done(completion) => return Ok(completion),
        };
        let (events, answers) = mpsc::channel();
        self.send(Message::Job(prepared, events))?;
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

    /// Sequences of `context_tokens` whose whole KV cache fits the budget at once, at most the
    /// sequences one step serves. Shared prefixes make the real number larger; this is the floor.
    fn capacity(&self, context_tokens: usize) -> Option<usize> {
        let per_sequence = (self.kv_bytes_per_token * context_tokens.max(1)).max(1);
        Some((self.config.kv_budget_bytes / per_sequence).clamp(1, self.config.max_sequences))
    }

    fn render_prompt(&self, prompt: &Prompt) -> Result<Option<String>, EngineError> {
        self.frontend.render(prompt)
    }

    fn end_session(&self, session: &str) {
        // An engine that has shut down holds nothing to release.
        let _ = self.send(Message::EndSession(session.to_string()));
    }

    fn metrics(&self) -> EngineMetrics {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EngineMetrics {
            requests: get(&c.requests),
            prompt_tokens: get(&c.prompt_tokens),
            generated_tokens: get(&c.generated_tokens),
            prefix_hit_tokens: get(&c.prefix_hit_tokens),
            steps: get(&c.steps),
            step_sequences: get(&c.step_sequences),
            step_tokens: get(&c.step_tokens),
            preemptions: get(&c.preemptions),
            peak_kv_bytes: get(&c.peak_kv_bytes),
            forward_time: Duration::from_nanos(get(&c.forward_nanos)),
            prefill_steps: get(&c.prefill_steps),
            prefill_time: Duration::from_nanos(get(&c.prefill_nanos)),
            flops: get(&c.flops),
            prefill_flops: get(&c.prefill_flops),
            mask_time: Duration::from_nanos(get(&c.mask_nanos)),
            masked_tokens: get(&c.masked_tokens),
            busy_time: Duration::from_nanos(get(&c.busy_nanos)),
            sampled_tokens: get(&c.sampled_tokens),
            last_first_token: c.last_first_token.lock().map(|t| *t).unwrap_or(None),
        }
    }
}

/// The worker's state: everything the scheduler decides over.
struct Worker {
    decoder: Decoder,
    frontend: Arc<Frontend>,
    counters: Arc<Counters>,
    config: EngineConfig,
    /// Admitted, in admission order.
    running: Vec<Sequence>,
    /// Not yet admitted, or preempted (those go first).
    waiting: VecDeque<Sequence>,
    cache: PrefixCache,
    /// Sessions with a request in flight or not yet ended, and how many requests they have in flight.
    sessions: HashMap<String, usize>,
    next_id: u64,
    /// An upper bound on the KV bytes held now; recomputed exactly when it nears the budget.
    kv_bound: usize,
    /// Worst-case bytes one sequence's step adds beyond its tokens' own: a block opened for them
    /// but not yet full, and a copy of a partly filled block it shares with the cache.
    cow_slack: usize,
    /// Set by a preemption, cleared when a sequence finishes: until memory is actually freed,
    /// admitting more would only preempt again.
    admission_paused: bool,
}

/// Steps between exact recounts of KV memory, so the running upper bound stays close.
const RECOUNT_EVERY: u64 = 64;

/// Tokens each running sequence should be able to grow by when another is admitted.
const GROWTH_HEADROOM: usize = 16;

impl Worker {
    fn new(decoder: Decoder, frontend: Arc<Frontend>, counters: Arc<Counters>, config: EngineConfig) -> Self {
        let cow_slack = 2 * decoder.kv_bytes_per_token() * SeqKv::BLOCK_TOKENS;
        Self {
            decoder,
            frontend,
            counters,
            config,
            running: Vec::new(),
            waiting: VecDeque::new(),
            cache: PrefixCache::default(),
            sessions: HashMap::new(),
            next_id: 0,
            kv_bound: 0,
            cow_slack,
            admission_paused: false,
        }
    }

    /// Serves until every handle is gone and nothing is left to finish.
    fn run(mut self, queue: Receiver<Message>) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match queue.recv() {
                    Ok(message) => self.receive(message),
                    Err(_) => return,
                }
            }
            loop {
                match queue.try_recv() {
                    Ok(message) => self.receive(message),
                    Err(TryRecvError::Empty) => break,
                    // Nobody can send more; finish what is here.
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            let start = Instant::now();
            self.step();
            self.counters.busy_nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    fn receive(&mut self, message: Message) {
        match message {
            Message::Job(prepared, events) => {
                if let Some(session) = &prepared.request.session {
                    *self.sessions.entry(session.clone()).or_default() += 1;
                }
                let id = self.next_id;
                self.next_id += 1;
                let kv = self.decoder.new_kv();
                self.waiting.push_back(Sequence::new(id, prepared, events, &self.frontend, kv));
            }
            Message::EndSession(session) => {
                if self.sessions.get(&session) == Some(&0) {
                    self.sessions.remove(&session);
                }
            }
        }
    }

    fn step(&mut self) {
        self.drop_cancelled();
        self.admit();
        let plan = self.plan();
        if plan.is_empty() {
            return;
        }
        self.forward(plan);
    }

    /// Ends the requests whose callers gave up (see [`super::CancelToken`]), waiting or running,
    /// so that they stop taking forward passes and memory.
    fn drop_cancelled(&mut self) {
        let cancelled = |seq: &Sequence| seq.request.is_cancelled();
        if !self.running.iter().chain(&self.waiting).any(cancelled) {
            return;
        }
        let (gone, kept): (Vec<Sequence>, Vec<Sequence>) = self.running.drain(..).partition(cancelled);
        self.running = kept;
        let (gone_waiting, waiting): (VecDeque<Sequence>, VecDeque<Sequence>) = self.waiting.drain(..).partition(cancelled);
        self.waiting = waiting;
        for seq in gone.into_iter().chain(gone_waiting) {
            self.release_session(&seq);
            self.admission_paused = false;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            seq.fail(EngineError::Cancelled);
        }
    }

    /// Moves waiting sequences into the running set while there is room.
    fn admit(&mut self) {
        let context = self.frontend.context_length();
        let per_token = self.decoder.kv_bytes_per_token();
        let mut deferred = VecDeque::new();
        while self.running.len() < self.config.max_sequences && !(self.admission_paused && !self.running.is_empty()) {
            let Some(mut seq) = self.waiting.pop_front() else { break };
            let need = seq.max_len(context) * per_token;
            if need > self.config.kv_budget_bytes {
                let error = format!(
                    "the request needs up to {} MiB of KV cache ({} prompt + {} new tokens); the budget is {} MiB (--kv-cache-mb)",
                    need >> 20,
                    seq.prompt_len,
                    seq.request.max_tokens,
                    self.config.kv_budget_bytes >> 20
                );
                self.retire(seq, Finish { reason: FinishReason::Length, error: Some(error) });
                continue;
            }
            if self.waits_for_shared_prefix(&seq) {
                deferred.push_back(seq);
                continue;
            }
            if seq.kv.is_empty() && self.config.prefix_cache {
                // Always compute at least one token: logits are not cached.
                if let Some(hit) = self.cache.lookup(&seq.tokens, seq.tokens.len() - 1) {
                    if seq.generated() == 0 && !seq.prefilled {
                        seq.cached_tokens = hit.len;
                    }
                    self.counters.prefix_hit_tokens.fetch_add(hit.len as u64, Ordering::Relaxed);
                    seq.kv = hit.kv;
                }
            }
            // A new sequence's uncomputed prompt, and a little room for every running sequence to
            // grow, must fit beside everything else, unless nothing else runs (then it fits
            // alone, as checked above).
            let headroom = (self.running.len() + 1) * GROWTH_HEADROOM * per_token;
            let added = seq.pending() * per_token + self.cow_slack + headroom;
            if !self.running.is_empty() && !self.make_room(added, false) {
                seq.kv = self.decoder.new_kv();
                self.waiting.push_front(seq);
                break;
            }
            self.kv_bound += added - headroom;
            self.running.push(seq);
        }
        // Deferred sequences keep their place at the head of the queue.
        while let Some(seq) = deferred.pop_back() {
            self.waiting.push_front(seq);
        }
    }

    /// Whether `seq` should wait because a running sequence is about to compute a longer prefix
    /// of its prompt than the cache holds now.
    fn waits_for_shared_prefix(&self, seq: &Sequence) -> bool {
        /// Sharing fewer tokens than this is not worth waiting for.
        const WORTH_WAITING: usize = 32;
        if !self.config.prefix_cache || !seq.kv.is_empty() {
            return false;
        }
        let cached = self.cache.longest(&seq.tokens);
        self.running.iter().any(|other| {
            let prompt = &other.tokens[..other.prompt_len];
            let shared = common_prefix(prompt, &seq.tokens).min(seq.tokens.len() - 1);
            other.kv.len() < shared && shared >= cached + WORTH_WAITING
        })
    }

    /// Chooses each running sequence's chunk for this step: decoding sequences first, then
    /// prompt chunks in admission order, within the token budget. Returns (index, tokens) pairs.
    fn plan(&mut self) -> Vec<(usize, usize)> {
        let mut budget = self.config.step_tokens;
        let mut plan = Vec::new();
        let mut order: Vec<usize> = (0..self.running.len()).collect();
        order.sort_by_key(|&i| (self.running[i].pending() > 1 || !self.running[i].prefilled, self.running[i].id));
        for i in order {
            if budget == 0 {
                break;
            }
            let take = self.running[i].pending().min(budget);
            if take > 0 {
                plan.push((i, take));
                budget -= take;
            }
        }
        let per_token = self.decoder.kv_bytes_per_token();
        let added: usize = plan.iter().map(|&(_, n)| n * per_token + self.cow_slack).sum();
        if self.make_room(added, true) {
            self.kv_bound += added;
            return plan;
        }
        // Preemption changed the running set; plan again with what is left.
        self.plan()
    }

    /// Ensures `added` more bytes fit under the budget: first by recounting exactly, then by
    /// evicting cached prefixes, then (when `preempt`) by preempting the newest running
    /// sequences. Returns false when it could not make room (nothing preempted in that case).
    fn make_room(&mut self, added: usize, preempt: bool) -> bool {
        let budget = self.config.kv_budget_bytes;
        let steps = self.counters.steps.load(Ordering::Relaxed);
        if self.kv_bound + added <= budget && !steps.is_multiple_of(RECOUNT_EVERY) {
            return true;
        }
        self.recount();
        let live: HashSet<String> = self.sessions.keys().cloned().collect();
        while self.kv_bound + added > budget && self.cache.evict_one(&live) {
            self.recount();
        }
        if self.kv_bound + added <= budget {
            return true;
        }
        if !preempt {
            return false;
        }
        if self.running.len() <= 1 {
            // A lone sequence always fits: its whole length was checked at admission.
            return true;
        }
        let newest = (0..self.running.len()).max_by_key(|&i| self.running[i].id).unwrap_or(0);
        let mut seq = self.running.swap_remove(newest);
        seq.kv = self.decoder.new_kv();
        self.counters.preemptions.fetch_add(1, Ordering::Relaxed);
        self.admission_paused = true;
        self.waiting.push_front(seq);
        self.recount();
        false
    }

    /// Counts the KV bytes held by running sequences and the prefix cache, each block once.
    fn recount(&mut self) {
        let mut seen = HashSet::new();
        let mut total = 0usize;
        let caches = self.running.iter().map(|s| &s.kv).chain(self.cache.caches());
        for kv in caches {
            for (id, bytes) in kv.blocks() {
                if seen.insert(id) {
                    total += bytes;
                }
            }
        }
        self.kv_bound = total;
        self.counters.peak_kv_bytes.fetch_max(total as u64, Ordering::Relaxed);
    }

    /// Runs one forward pass over the planned chunks, then samples where prompts are done.
    fn forward(&mut self, plan: Vec<(usize, usize)>) {
        // A prefill pass: some sequence in it computes several tokens (a prompt chunk, or a
        // preempted sequence's recompute) or has sampled nothing yet (a one-token last chunk).
        let prefill = plan.iter().any(|&(i, n)| n > 1 || self.running[i].generated() == 0);
        let flops = self.decoder.pass_flops(plan.iter().map(|&(i, n)| (self.running[i].kv.len(), n)));
        let start = Instant::now();
        let result = {
            let mut wanted: HashMap<usize, usize> = plan.iter().copied().collect();
            let mut chunks: Vec<SeqChunk> = self
                .running
                .iter_mut()
                .enumerate()
                .filter_map(|(i, seq)| {
                    let take = wanted.remove(&i)?;
                    let from = seq.kv.len();
                    Some(SeqChunk { tokens: &seq.tokens[from..from + take], kv: &mut seq.kv })
                })
                .collect();
            self.decoder.forward(&mut chunks).and_then(|t| t.to_vec2::<f32>())
        };
        let nanos = start.elapsed().as_nanos() as u64;
        self.counters.forward_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.counters.flops.fetch_add(flops, Ordering::Relaxed);
        if prefill {
            self.counters.prefill_steps.fetch_add(1, Ordering::Relaxed);
            self.counters.prefill_nanos.fetch_add(nanos, Ordering::Relaxed);
            self.counters.prefill_flops.fetch_add(flops, Ordering::Relaxed);
        }
        self.counters.steps.fetch_add(1, Ordering::Relaxed);
        self.counters.step_sequences.fetch_add(plan.len() as u64, Ordering::Relaxed);
        self.counters.step_tokens.fetch_add(plan.iter().map(|&(_, n)| n as u64).sum(), Ordering::Relaxed);

        let rows = match result {
            Ok(rows) => rows,
            Err(error) => {
                // The pass left every cache as it was; the sequences in it cannot go on.
                let mut indices: Vec<usize> = plan.iter().map(|&(i, _)| i).collect();
                indices.sort_unstable_by(|a, b| b.cmp(a));
                for i in indices {
                    let seq = self.running.swap_remove(i);
                    self.release_session(&seq);
                    self.counters.requests.fetch_add(1, Ordering::Relaxed);
                    seq.fail(EngineError::Model(format!("{error:#}")));
                }
                return;
            }
        };

        // Chunks were built in running order, so rows follow the sorted plan indices.
        let mut planned: Vec<usize> = plan.iter().map(|&(i, _)| i).collect();
        planned.sort_unstable();
        let mut logits: Vec<Option<Vec<f32>>> = vec![None; self.running.len()];
        for (i, row) in planned.into_iter().zip(rows) {
            // A prompt chunk that leaves tokens pending produced logits nobody samples from.
            if self.running[i].pending() == 0 {
                logits[i] = Some(row);
            }
        }
        self.offer_prompts();

        // Masks and draws run in parallel across sequences; each owns its sampler and matcher.
        let frontend = &*self.frontend;
        let before: Vec<usize> = self.running.iter().map(|s| s.generated()).collect();
        let mut outcomes: Vec<Option<Finish>> = self
            .running
            .par_iter_mut()
            .zip(logits.par_iter_mut())
            .map(|(seq, row)| row.as_mut().and_then(|row| seq.advance(row, frontend)))
            .collect();
        self.count_sampled(&before);
        for i in (0..outcomes.len()).rev() {
            if let Some(finish) = outcomes[i].take() {
                let seq = self.running.swap_remove(i);
                self.retire(seq, finish);
            }
        }
    }

    /// Counts the tokens this step sampled (`before`: each running sequence's count before it),
    /// and notes when a sequence got its first one.
    fn count_sampled(&self, before: &[usize]) {
        let mut added = 0;
        let mut first = false;
        for (seq, &before) in self.running.iter().zip(before) {
            added += seq.generated() - before;
            first |= before == 0 && seq.generated() > 0;
        }
        let total = self.counters.sampled_tokens.fetch_add(added as u64, Ordering::Relaxed) + added as u64;
        if first {
            if let Ok(mut last) = self.counters.last_first_token.lock() {
                *last = Some((Instant::now(), total));
            }
        }
    }

    /// Offers every sequence whose prompt chunk just completed its prompt (or advanced it) to the
    /// prefix cache, so that waiting requests with the same prefix reuse it.
    fn offer_prompts(&mut self) {
        if !self.config.prefix_cache {
            return;
        }
        for seq in &mut self.running {
            if seq.prefilled {
                continue;
            }
            let computed = seq.kv.len().min(seq.prompt_len);
            if seq.kv.len() >= seq.prompt_len {
                seq.prefilled = true;
            }
            if computed > 0 {
                let mut kv = seq.kv.clone();
                kv.truncate(computed);
                self.cache.insert(&seq.tokens[..computed], kv, seq.request.session.as_deref());
            }
        }
    }

    /// Hands a finished sequence's cache to the prefix cache and sends its completion.
    fn retire(&mut self, seq: Sequence, finish: Finish) {
        self.release_session(&seq);
        self.admission_paused = false;
        let c = &self.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.prompt_tokens.fetch_add(seq.prompt_len as u64, Ordering::Relaxed);
        c.generated_tokens.fetch_add(seq.generated() as u64, Ordering::Relaxed);
        c.mask_nanos.fetch_add(seq.mask_time.as_nanos() as u64, Ordering::Relaxed);
        if seq.has_constraint() {
            c.masked_tokens.fetch_add(seq.generated() as u64, Ordering::Relaxed);
        }
        if self.config.prefix_cache && !seq.kv.is_empty() {
            let kv: SeqKv = seq.kv.clone();
            self.cache.insert(&seq.tokens[..kv.len()], kv, seq.request.session.as_deref());
        }
        seq.finish(finish);
    }

    fn release_session(&mut self, seq: &Sequence) {
        if let Some(session) = &seq.request.session {
            if let Some(count) = self.sessions.get_mut(session) {
                *count = count.saturating_sub(1);
            }
        }
    }
}
