//! Continuous batching and the prefix cache: however requests are scheduled (alone, in a batch,
//! in prompt chunks, from the cache, after a preemption), each one gets exactly the tokens it
//! gets alone.

use std::path::Path;

use apigen_mt::chat::Message;
use apigen_mt::engine::loaded::{LoadOptions, LoadedModel};
use apigen_mt::engine::{self, Completion, EngineConfig, EngineHandle, FinishReason, Prompt, Request, SamplingParams};
use candle_core::quantized::GgmlDType;

use crate::engine::tiny_model_with;

/// An engine on a model directory, with `config`.
fn start(dir: &Path, config: EngineConfig) -> EngineHandle {
    let options = LoadOptions::from_env(true).unwrap();
    let model = LoadedModel::load(dir.to_str().unwrap(), &options).unwrap();
    engine::start(model, config).unwrap()
}

/// The tiny model in each weight format the engine must batch exactly.
fn tiny_dirs() -> Vec<(String, tempfile::TempDir)> {
    [None, Some(GgmlDType::Q8_0)]
        .into_iter()
        .map(|quant| {
            let dir = tempfile::tempdir().unwrap();
            tiny_model_with(dir.path(), quant);
            (format!("{quant:?}"), dir)
        })
        .collect()
}

fn greedy(prompt: &str, max_tokens: usize) -> Request {
    Request::new(Prompt::Text(prompt.into())).sampling(SamplingParams::greedy()).max_tokens(max_tokens)
}

/// Prompts of different lengths, so that their prefill chunks and decode steps interleave.
fn prompts() -> Vec<String> {
    let words = ["red fox", "a much longer prompt about the blue sky and the sea", "x", "green tea with honey and lemon"];
    (0..8).map(|i| format!("{} {i}", words[i % words.len()])).collect()
}

/// Runs every request alone, one after another, on a fresh engine.
fn alone(dir: &Path, config: &EngineConfig, requests: &[Request]) -> Vec<Completion> {
    let engine = start(dir, EngineConfig { prefix_cache: false, ..config.clone() });
    requests.iter().map(|r| engine.generate(r.clone()).unwrap()).collect()
}

/// Runs every request at once, each from its own thread, on `engine`.
fn together(engine: &EngineHandle, requests: &[Request]) -> Vec<Completion> {
    std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| {
                let (engine, r) = (engine.clone(), r.clone());
                s.spawn(move || engine.generate(r).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// What must not depend on scheduling: the tokens, the text and why generation ended.
fn outputs(completions: &[Completion]) -> Vec<(Vec<u32>, String, FinishReason)> {
    completions.iter().map(|c| (c.tokens.clone(), c.text.clone(), c.finish_reason)).collect()
}

#[test]
fn concurrent_greedy_requests_get_exactly_what_each_gets_alone() {
    for (format, dir) in tiny_dirs() {
        let requests: Vec<Request> = prompts().iter().map(|p| greedy(p, 12)).collect();
        // A small step budget forces long prompts into several chunks beside decoding sequences.
        let config = EngineConfig { step_tokens: 16, ..EngineConfig::default() };
        let expected = alone(dir.path(), &config, &requests);
        let engine = start(dir.path(), config);
        let got = together(&engine, &requests);
        assert_eq!(outputs(&got), outputs(&expected), "{format}: batched outputs differ from solo ones");
        let metrics = engine.metrics();
        assert!(metrics.mean_batch() > 1.5, "{format}: requests should have shared steps: {metrics:?}");
        assert_eq!(metrics.requests, requests.len() as u64);
    }
}

#[test]
fn a_seeded_sampled_request_gives_the_same_output_alone_and_in_a_batch_of_16() {
    for (format, dir) in tiny_dirs() {
        let request = |seed: u64| {
            let sampling = SamplingParams { temperature: 1.0, top_p: 0.95, seed, ..SamplingParams::default() };
            greedy("the weather today is", 16).sampling(sampling)
        };
        let probe = request(42);
        let expected = alone(dir.path(), &EngineConfig::default(), std::slice::from_ref(&probe));
        let mut batch: Vec<Request> = (0..15).map(|i| request(100 + i)).collect();
        batch.insert(7, probe);
        let engine = start(dir.path(), EngineConfig::default());
        let got = together(&engine, &batch);
        assert_eq!(outputs(&got[7..8]), outputs(&expected), "{format}");
        let distinct: std::collections::HashSet<_> = got.iter().map(|c| c.tokens.clone()).collect();
        assert!(distinct.len() > 1, "{format}: different seeds should not all agree");
    }
}

/// A five-turn chat: each turn re-renders the whole conversation and appends the reply.
fn conversation(engine: &EngineHandle) -> Vec<String> {
    let mut messages = vec![Message::user("hello there")];
    let mut replies = Vec::new();
    for turn in 0..5 {
        let request = Request::new(Prompt::chat(messages.clone()))
            .sampling(SamplingParams { temperature: 0.8, seed: turn, ..SamplingParams::default() })
            .max_tokens(8)
            .session("conversation-1");
        let reply = engine.generate(request).unwrap();
        replies.push(reply.text.clone());
        messages.push(Message::assistant(reply.text));
        messages.push(Message::user(format!("and {turn}?")));
    }
    engine.end_session("conversation-1");
    replies
}

#[test]
fn a_five_turn_conversation_is_the_same_with_the_prefix_cache_on_and_off() {
    for (format, dir) in tiny_dirs() {
        let off = start(dir.path(), EngineConfig { prefix_cache: false, ..EngineConfig::default() });
        let on = start(dir.path(), EngineConfig::default());
        assert_eq!(conversation(&on), conversation(&off), "{format}");
        assert_eq!(off.metrics().prefix_hit_tokens, 0);
        let hits = on.metrics();
        // Turns 2 to 5 each reuse at least the previous turn's prompt.
        assert!(hits.prefix_hit_tokens >= 4 * 10, "{format}: {hits:?}");
    }
}

#[test]
fn requests_sharing_a_long_prefix_compute_it_once() {
    let (_, dir) = tiny_dirs().remove(1);
    let system = "you are a careful assistant who follows the policy below to the letter. ".repeat(2);
    let requests: Vec<Request> = (0..6).map(|i| greedy(&format!("{system}question {i}"), 4)).collect();
    let engine = start(dir.path(), EngineConfig { step_tokens: 32, ..EngineConfig::default() });
    let got = together(&engine, &requests);
    let expected = alone(dir.path(), &EngineConfig::default(), &requests);
    assert_eq!(outputs(&got), outputs(&expected));
    let prefix = system.len();
    let metrics = engine.metrics();
    // All but one request take the shared prefix from the cache (the tokenizer is per character).
    assert!(metrics.prefix_hit_tokens >= 5 * (prefix as u64 - 16), "the shared prefix was computed more than once: {metrics:?}");
    assert!(got.iter().filter(|c| c.cached_tokens >= prefix - 16).count() >= 5);
}

#[test]
fn a_budget_too_small_for_all_sequences_still_completes_every_request_identically() {
    for (format, dir) in tiny_dirs() {
        let requests: Vec<Request> = prompts().iter().map(|p| greedy(p, 24)).collect();
        let expected = alone(dir.path(), &EngineConfig::default(), &requests);
        // Room for about two of the eight sequences at their full length.
        let per_token = 2 * 2 * 2 * 16 * 4; // K and V, 2 layers, 2 kv heads, head_dim 16, f32
        let config = EngineConfig { kv_budget_bytes: 2 * 80 * per_token, step_tokens: 16, ..EngineConfig::default() };
        let engine = start(dir.path(), config);
        let got = together(&engine, &requests);
        assert_eq!(outputs(&got), outputs(&expected), "{format}");
        let metrics = engine.metrics();
        eprintln!("{format}: {metrics:?}");
        assert!(metrics.peak_kv_bytes <= 2 * 80 * per_token as u64, "{format}: budget exceeded: {metrics:?}");
        assert!(metrics.preemptions > 0 || metrics.mean_batch() < 2.5, "{format}: the budget never bound: {metrics:?}");
    }
}

#[test]
fn a_request_that_cannot_fit_alone_fails_at_admission_with_length() {
    let (_, dir) = tiny_dirs().remove(0);
    let per_token = 2 * 2 * 2 * 16 * 4;
    let engine = start(dir.path(), EngineConfig { kv_budget_bytes: 20 * per_token, ..EngineConfig::default() });
    let completion = engine.generate(greedy("a prompt", 64)).unwrap();
    assert_eq!(completion.finish_reason, FinishReason::Length);
    assert!(completion.tokens.is_empty());
    let error = completion.error.unwrap_or_default();
    assert!(error.contains("--kv-cache-mb"), "{error}");
    // A request that fits still runs on the same engine.
    let small = engine.generate(greedy("ab", 4)).unwrap();
    assert_eq!(small.finish_reason, FinishReason::Length);
    assert_eq!(small.tokens.len(), 4);
}

#[test]
fn smollm2_batched_greedy_outputs_equal_solo_ones() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let questions = [
        "What is the capital of France?",
        "List three fruits.",
        "Explain in one sentence why the sky is blue, and then say which colour sunsets usually are.",
        "Hi",
    ];
    let requests: Vec<Request> = questions
        .iter()
        .map(|q| Request::new(Prompt::chat(vec![Message::user(*q)])).sampling(SamplingParams::greedy()).max_tokens(16))
        .collect();
    let config = EngineConfig { step_tokens: 24, ..EngineConfig::default() };
    let expected = alone(&dir, &config, &requests);
    let engine = start(&dir, config);
    let got = together(&engine, &requests);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        eprintln!("{i}: batched {:?} / solo {:?}", g.text, e.text);
    }
    assert_eq!(outputs(&got), outputs(&expected));
    assert!(engine.metrics().mean_batch() > 1.5, "{:?}", engine.metrics());
}

#[test]
fn schema_constrained_requests_on_a_random_weight_model_validate_for_100_seeds_in_batches_of_16() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model_with(dir.path(), Some(GgmlDType::Q8_0));
    let engine = start(dir.path(), EngineConfig::default());
    // The schemas whose longest sentence fits the tiny model's 256-token context.
    let schemas: Vec<serde_json::Value> =
        crate::constrain::schemas().into_iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, s)| s).collect();
    let requests: Vec<(usize, Request)> = (0..100u64)
        .map(|seed| {
            let which = seed as usize % schemas.len();
            let sampling = SamplingParams { temperature: 1.0, seed, ..SamplingParams::default() };
            let request =
                greedy("json:", 200).sampling(sampling).constraint(apigen_mt::engine::Constraint::JsonSchema(schemas[which].clone()));
            (which, request)
        })
        .collect();
    for wave in requests.chunks(16) {
        let batch: Vec<Request> = wave.iter().map(|(_, r)| r.clone()).collect();
        for ((which, request), completion) in wave.iter().zip(together(&engine, &batch)) {
            let seed = request.sampling.seed;
            assert_eq!(completion.finish_reason, FinishReason::Constraint, "seed {seed}: {:?}", completion);
            crate::constrain::assert_valid_json(&schemas[*which], &completion.text, &format!("seed {seed}"));
        }
    }
    let metrics = engine.metrics();
    assert!(metrics.masked_tokens > 0 && metrics.mask_time > std::time::Duration::ZERO, "{metrics:?}");
    assert!(metrics.mean_batch() > 4.0, "requests should have shared steps: {metrics:?}");
}
