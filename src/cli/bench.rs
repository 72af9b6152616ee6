//! `apigen-mt bench`: prefill and decode throughput of the engine at several concurrencies, with
//! the definitions of llama.cpp's `llama-batched-bench`, so the figures compare directly.
//!
//! For each concurrency C, C requests of P prompt tokens are sent at once, each to generate
//! G + 1 tokens, and both phases are timed inside that one run: the prefill time is the wall
//! time until the last of them has its first token, the decode time the rest of the run. So
//! prefill = C·P / prefill time and decode = (tokens sampled after the prefill) / decode time,
//! which is C·G when C = 1 (with several requests, the first ones start decoding while the
//! last still prefill, and those tokens count towards neither rate). Prompts are random token ids
//! (a seeded stream), and generation ignores end-of-sequence tokens, so every run does the same
//! work.
//!
//! `--random-weights PRESET` builds the preset's architecture with random weights in its file's
//! storage types instead of loading it (see [`crate::model::RandomModel`]), so any preset can be
//! measured without downloading it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::load::LoadArgs;
use crate::engine::loaded::LoadedModel;
use crate::engine::{self, Completion, Constraint, EngineHandle, Prompt, Request, SamplingParams};
use crate::model::{presets, write_gguf};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The model: a preset name (see `apigen-mt models list`), a local directory or .gguf file,
    /// or a Hugging Face repo `org/name[@revision][:file.gguf]`.
    #[arg(long, short = 'm', value_name = "MODEL", required_unless_present = "random_weights")]
    pub model: Option<String>,
    /// Instead of loading a model, build preset PRESET's architecture with random weights in the
    /// storage types of its file (e.g. Q4_K), and measure that: no download, no tokenizer.
    #[arg(long, value_name = "PRESET", conflicts_with = "model")]
    pub random_weights: Option<String>,
    /// With --random-weights: write that model to FILE as GGUF instead of measuring it, so that
    /// llama.cpp can run the same weights (`llama-bench -m FILE`; it takes token prompts, as the
    /// file has no tokenizer). The same --seed gives the same weights here and in the file.
    #[arg(long, value_name = "FILE", requires = "random_weights")]
    pub save_gguf: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Concurrencies to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32", value_name = "C,...")]
    pub concurrency: Vec<usize>,
    /// Prompt tokens per request (P).
    #[arg(long, default_value_t = 512, value_name = "P")]
    pub prompt_tokens: usize,
    /// Generated tokens per request (G).
    #[arg(long, default_value_t = 128, value_name = "G")]
    pub gen_tokens: usize,
    /// The first N prompt tokens are the same in every request, as a shared system prompt is in
    /// the real workload; the prefix cache then computes them once.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub shared_prefix: usize,
    /// Tokens per forward pass (decode tokens plus prompt chunks).
    #[arg(long, default_value_t = 512, value_name = "TOKENS")]
    pub step_tokens: usize,
    /// Also generate each request alone first, and report whether the batched outputs are
    /// identical (`batch_invariant`).
    #[arg(long)]
    pub verify: bool,
    /// One JSON object per concurrency instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seed of the random prompts (and of the random weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Constrain every request to this JSON Schema, to measure what constrained decoding costs.
    /// Every output it admits must be at least G tokens long, e.g.
    /// `{"type": "array", "items": {"type": "integer"}, "minItems": 200}` for G = 128.
    #[arg(long, value_name = "FILE")]
    pub json_schema: Option<std::path::PathBuf>,
}

/// One concurrency's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub concurrency: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub shared_prefix: usize,
    pub prefill_s: f64,
    pub prefill_tok_s: f64,
    pub decode_s: f64,
    pub decode_tok_s: f64,
    /// Prompt tokens served from the prefix cache during the measured runs.
    pub prefix_hit_tokens: u64,
    /// Mean sequences per forward pass during the measured runs.
    pub mean_batch: f64,
    /// Peak resident memory of this process while measuring this concurrency.
    pub peak_rss_mb: f64,
    /// With --json-schema: mean time to compute a constraint mask and advance the grammar, per
    /// generated token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_us_per_token: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_invariant: Option<bool>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(path) = &args.save_gguf {
        let Some(preset) = &args.random_weights else {
            bail!("--save-gguf writes a model built with --random-weights PRESET, and none was given");
        };
        let model = presets::find_random(preset)?.random_model(args.seed)?;
        write_gguf(&model, path).with_context(|| format!("writing preset {preset} with random weights"))?;
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        eprintln!("wrote {} ({:.1} MB)", path.display(), bytes as f64 / 1e6);
        return Ok(());
    }
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs positive numbers, e.g. 1,4,16");
    }
    if args.prompt_tokens == 0 || args.gen_tokens == 0 {
        bail!("--prompt-tokens and --gen-tokens must be at least 1");
    }
    if args.shared_prefix >= args.prompt_tokens {
        bail!("--shared-prefix ({}) must be shorter than --prompt-tokens ({})", args.shared_prefix, args.prompt_tokens);
    }
    if args.random_weights.is_some() && args.json_schema.is_some() {
        bail!("--json-schema needs a tokenizer, and a --random-weights model has none");
    }
    let constraint = match &args.json_schema {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let schema = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            Some(Constraint::JsonSchema(schema))
        }
    };
    let model = load(&args)?;
    let vocab = model.frontend.vocab_size();
    let context = model.info.context_length;
    if args.prompt_tokens + args.gen_tokens + 1 > context {
        bail!("--prompt-tokens + --gen-tokens exceed the model's context ({context} tokens)");
    }
    let mut config = args.load.engine_config()?;
    config.step_tokens = args.step_tokens;
    config.max_sequences = config.max_sequences.max(*args.concurrency.iter().max().unwrap_or(&1));
    let engine = engine::start(model, config)?;
    let mut prompts = Prompts { rng: ChaCha8Rng::seed_from_u64(args.seed), vocab };
    if !args.json {
        eprintln!(
            "{:>4} {:>6} {:>5} {:>6} | {:>9} {:>11} | {:>9} {:>10} | {:>9}{}",
            "C",
            "P",
            "G",
            "shared",
            "prefill s",
            "prefill t/s",
            "decode s",
            "decode t/s",
            "peak MB",
            if args.verify { " | invariant" } else { "" }
        );
    }
    for &c in &args.concurrency {
        let result = measure(&engine, &args, c, &mut prompts, constraint.as_ref())?;
        if args.json {
            println!("{}", serde_json::to_string(&result)?);
        } else {
            println!(
                "{:>4} {:>6} {:>5} {:>6} | {:>9.2} {:>11.1} | {:>9.2} {:>10.1} | {:>9.0}{}",
                result.concurrency,
                result.prompt_tokens,
                result.gen_tokens,
                result.shared_prefix,
                result.prefill_s,
                result.prefill_tok_s,
                result.decode_s,
                result.decode_tok_s,
                result.peak_rss_mb,
                match result.batch_invariant {
                    Some(v) => format!(" | {v}"),
                    None => String::new(),
                }
            );
        }
    }
    Ok(())
}

/// The model to measure: loaded, or built with random weights.
fn load(args: &BenchArgs) -> Result<LoadedModel> {
    let (model, random) = (args.model.as_deref(), args.random_weights.as_deref());
    let loaded = match (model, random) {
        (Some(name), None) => args.load.load(name)?,
        (None, Some(preset)) => {
            let start = Instant::now();
            let model = LoadedModel::random(preset, args.seed, &args.load.options()?)?;
            if !args.json {
                eprintln!(
                    "{}: {:.2}B parameters, {}, built in {:.1} s",
                    model.info.name,
                    model.decoder.param_count() as f64 / 1e9,
                    model.decoder.weights_summary(),
                    start.elapsed().as_secs_f64()
                );
            }
            model
        }
        // clap enforces exactly one of the two; this names them should that ever change.
        _ => bail!("give either --model or --random-weights PRESET"),
    };
    Ok(loaded)
}

/// Seeded random prompts over the vocabulary.
struct Prompts {
    rng: ChaCha8Rng,
    vocab: usize,
}

impl Prompts {
    fn tokens(&mut self, n: usize) -> Vec<u32> {
        // Skip the lowest ids, where vocabularies keep their special tokens.
        let low = (self.vocab / 10) as u32;
        (0..n).map(|_| self.rng.random_range(low..self.vocab as u32)).collect()
    }

    /// `c` prompts of `len` tokens whose first `shared` tokens are the same.
    fn batch(&mut self, c: usize, len: usize, shared: usize) -> Vec<Vec<u32>> {
        let prefix = self.tokens(shared);
        (0..c)
            .map(|_| {
                let mut p = prefix.clone();
                p.extend(self.tokens(len - shared));
                p
            })
            .collect()
    }
}

fn request(prompt: &[u32], max_tokens: usize, constraint: Option<&Constraint>) -> Request {
    let mut request = Request::new(Prompt::Tokens(prompt.to_vec())).sampling(SamplingParams::greedy()).max_tokens(max_tokens).ignore_eos();
    request.constraint = constraint.cloned();
    request
}

/// Sends every request at once and waits for all of them.
fn all_at_once(engine: &EngineHandle, requests: &[Request]) -> Result<(Duration, Vec<Completion>)> {
    let start = Instant::now();
    let completions = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| {
                let (engine, r) = (engine.clone(), r.clone());
                s.spawn(move || engine.generate(r))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(Err(engine::EngineError::Closed))).collect::<Result<Vec<_>, _>>()
    })?;
    Ok((start.elapsed(), completions))
}

fn measure(
    engine: &EngineHandle,
    args: &BenchArgs,
    c: usize,
    prompts: &mut Prompts,
    constraint: Option<&Constraint>,
) -> Result<BenchResult> {
    let (p, g, shared) = (args.prompt_tokens, args.gen_tokens, args.shared_prefix);
    // Fresh prompts for each run, so that no run reuses what an earlier one cached; within a
    // run, only the intended shared prefix can be reused.
    let batch = prompts.batch(c, p, shared);
    // Warm up allocations and thread pools outside the measurement.
    all_at_once(engine, &[request(&prompts.tokens(8), 2, constraint)])?;
    reset_peak_rss();
    let before = engine.metrics();

    let full_requests: Vec<Request> = batch.iter().map(|t| request(t, g + 1, constraint)).collect();
    let start = Instant::now();
    let (full, batched) = all_at_once(engine, &full_requests)?;
    let after = engine.metrics();
    // Both phases of this one run: prefill until the last request has its first token, decode
    // from then on, counting only the tokens sampled after that moment (with several requests,
    // the first to finish its prompt starts decoding while others still prefill).
    let Some((first_done, sampled_then)) = after.last_first_token.filter(|(at, _)| *at >= start) else {
        bail!("the engine reported no first token for the measured requests");
    };
    let prefill = first_done.duration_since(start);
    let decode = full.saturating_sub(prefill).max(Duration::from_micros(1));
    let decoded = after.sampled_tokens.saturating_sub(sampled_then);
    if let Some(short) = batched.iter().find(|c| c.tokens.len() != g + 1) {
        bail!(
            "a request generated {} tokens instead of {} (finish reason {:?}{}); with --json-schema, use a \
             schema whose outputs are all at least that long (minItems, minLength)",
            short.tokens.len(),
            g + 1,
            short.finish_reason,
            short.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }

    let batch_invariant = if args.verify {
        let alone: Vec<Completion> = full_requests.iter().map(|r| engine.generate(r.clone())).collect::<Result<_, _>>()?;
        Some(alone.iter().zip(&batched).all(|(a, b)| a.tokens == b.tokens))
    } else {
        None
    };
    let steps = after.steps - before.steps;
    Ok(BenchResult {
        concurrency: c,
        prompt_tokens: p,
        gen_tokens: g,
        shared_prefix: shared,
        prefill_s: prefill.as_secs_f64(),
        prefill_tok_s: (c * p) as f64 / prefill.as_secs_f64(),
        decode_s: decode.as_secs_f64(),
        decode_tok_s: decoded as f64 / decode.as_secs_f64(),
        prefix_hit_tokens: after.prefix_hit_tokens - before.prefix_hit_tokens,
        mean_batch: if steps == 0 { 0.0 } else { (after.step_sequences - before.step_sequences) as f64 / steps as f64 },
        peak_rss_mb: peak_rss_mb(),
        mask_us_per_token: constraint.map(|_| {
            let masked = (after.masked_tokens - before.masked_tokens).max(1);
            (after.mask_time - before.mask_time).as_secs_f64() * 1e6 / masked as f64
        }),
        batch_invariant,
    })
}

/// Resets the kernel's peak-RSS counter for this process, where Linux allows it.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory (VmHWM) in MiB; 0 where the system does not report it.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
