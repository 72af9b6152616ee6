//! The decoder against candle-transformers' implementations of the same families, on the same
//! weights; batching and chunking against the sequential case; and bad input.

pub mod tiny;

use std::fs::File;
use std::path::Path;

use apigen_mt::model::{Arch, Decoder, DecoderOptions, KvDtype, SeqChunk, WeightsSource};
use candle_core::quantized::{gguf_file, GgmlDType};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, qwen2, qwen3};
use candle_transformers::models::{quantized_llama, quantized_qwen2, quantized_qwen3};
use tiny::Spec;

/// One forward step of a reference model: the chunk's tokens and its first position.
type Step = Box<dyn FnMut(&[u32], usize) -> Vec<f32>>;

/// A model with an exact (f32) cache, as the comparisons with the reference implementations need.
fn load(source: &WeightsSource) -> Decoder {
    let options = DecoderOptions { kv_dtype: KvDtype::F32, ..DecoderOptions::default() };
    Decoder::load(source, &options).unwrap_or_else(|e| panic!("load failed: {e:#}"))
}

fn logits(model: &Decoder, chunks: &mut [SeqChunk]) -> Vec<Vec<f32>> {
    model.forward(chunks).expect("forward").to_vec2::<f32>().expect("logits")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "logit vectors differ in length");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// candle-transformers' safetensors model of `spec`'s family, reading the files we wrote.
fn reference_safetensors(spec: &Spec, dir: &Path) -> Step {
    let dev = Device::Cpu;
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &dev).expect("load");
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let json = spec.config_json().to_string();
    let input = |tokens: &[u32]| Tensor::new(tokens, &Device::Cpu).and_then(|t| t.unsqueeze(0)).expect("input");
    let out = |t: candle_core::Result<Tensor>| t.and_then(|t| t.flatten_all()?.to_vec1::<f32>()).expect("reference");
    match spec.arch {
        "llama" => {
            let cfg = serde_json::from_str::<llama::LlamaConfig>(&json).expect("config").into_config(false);
            let model = llama::Llama::load(vb, &cfg).expect("reference model");
            let mut cache = llama::Cache::new(true, DType::F32, &cfg, &dev).expect("cache");
            Box::new(move |tokens, pos| out(model.forward(&input(tokens), pos, &mut cache)))
        }
        "qwen2" => {
            let cfg: qwen2::Config = serde_json::from_str(&json).expect("config");
            let mut model = qwen2::ModelForCausalLM::new(&cfg, vb).expect("reference model");
            Box::new(move |tokens, pos| out(model.forward(&input(tokens), pos)))
        }
        "qwen3" => {
            let cfg: qwen3::Config = serde_json::from_str(&json).expect("config");
            let mut model = qwen3::ModelForCausalLM::new(&cfg, vb).expect("reference model");
            Box::new(move |tokens, pos| out(model.forward(&input(tokens), pos)))
        }
        other => panic!("no reference for {other}"),
    }
}

/// candle-transformers' quantized model of the GGUF file's family.
fn reference_gguf(arch: &str, path: &Path) -> Step {
    let dev = Device::Cpu;
    let mut file = File::open(path).expect("open gguf");
    let content = gguf_file::Content::read(&mut file).expect("gguf header");
    let input = |tokens: &[u32]| Tensor::new(tokens, &Device::Cpu).and_then(|t| t.unsqueeze(0)).expect("input");
    let out = |t: candle_core::Result<Tensor>| t.and_then(|t| t.flatten_all()?.to_vec1::<f32>()).expect("reference");
    match arch {
        "llama" => {
            let mut m = quantized_llama::ModelWeights::from_gguf(content, &mut file, &dev).expect("reference");
            Box::new(move |tokens, pos| out(m.forward(&input(tokens), pos)))
        }
        "qwen2" => {
            let mut m = quantized_qwen2::ModelWeights::from_gguf(content, &mut file, &dev).expect("reference");
            Box::new(move |tokens, pos| out(m.forward(&input(tokens), pos)))
        }
        "qwen3" => {
            let mut m = quantized_qwen3::ModelWeights::from_gguf(content, &mut file, &dev).expect("reference");
            Box::new(move |tokens, pos| out(m.forward(&input(tokens), pos)))
        }
        other => panic!("no reference for {other}"),
    }
}

/// Feeds a prompt and then single tokens to both models, comparing logits at every step.
fn assert_matches(ours: &Decoder, mut reference: Step, tolerance: f32) {
    let prompt = [1u32, 17, 42, 5, 88, 23, 64];
    let follow = [9u32, 33, 71, 2, 50];
    let mut chunks: Vec<&[u32]> = vec![&prompt];
    chunks.extend(follow.iter().map(std::slice::from_ref));
    let mut kv = ours.new_kv();
    let mut position = 0;
    let mut worst = 0f32;
    for chunk in chunks {
        let a = logits(ours, &mut [SeqChunk { tokens: chunk, kv: &mut kv }]).remove(0);
        let b = reference(chunk, position);
        position += chunk.len();
        let spread = b.iter().cloned().fold(f32::MIN, f32::max) - b.iter().cloned().fold(f32::MAX, f32::min);
        assert!(spread > 0.5, "reference logits are nearly flat ({spread}); the test would prove little");
        let diff = max_diff(&a, &b);
        assert!(diff <= tolerance, "at position {position}: max |ours - candle| = {diff} > {tolerance}");
        worst = worst.max(diff);
    }
    assert_eq!(kv.len(), position);
    eprintln!("max |ours - candle| over {position} positions: {worst:e}");
}

fn check_safetensors(spec: Spec) {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = spec.write_safetensors(dir.path());
    let ours = load(&source);
    assert_eq!(ours.config().tie_word_embeddings, spec.tie);
    assert_matches(&ours, reference_safetensors(&spec, dir.path()), 1e-4);
}

#[test]
fn safetensors_llama_with_gqa_and_untied_head_matches_candle() {
    check_safetensors(Spec::llama());
}

#[test]
fn safetensors_llama_with_tied_embeddings_and_llama3_rope_matches_candle() {
    // Wavelengths at head_dim 16 span all three bands of the llama3 rule for these factors.
    check_safetensors(Spec { tie: true, llama3_scaling: Some((8.0, 1.0, 4.0, 64)), seed: 11, ..Spec::llama() });
}

#[test]
fn safetensors_qwen2_with_qkv_bias_matches_candle() {
    check_safetensors(Spec::qwen2());
}

#[test]
fn safetensors_qwen3_with_qk_norm_matches_candle() {
    check_safetensors(Spec::qwen3());
}

fn check_gguf(spec: Spec, quant: impl Fn(&str) -> GgmlDType) -> Decoder {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    let source = spec.write_gguf(&path, quant);
    let ours = load(&source);
    assert_matches(&ours, reference_gguf(spec.arch, &path), 1e-4);
    ours
}

#[test]
fn gguf_llama_matches_candle_quantized_llama() {
    let quant = |name: &str| match name {
        "token_embd.weight" => GgmlDType::Q4_1,
        n if n.contains("ffn") => GgmlDType::Q4_0,
        _ => GgmlDType::Q8_0,
    };
    let ours = check_gguf(Spec { tie: true, ..Spec::llama() }, quant);
    assert_eq!(ours.weights_summary(), "Q4_0 + Q8_0 (Q4_1 embeddings)");
    let s = Spec::llama();
    let per_layer = 2 * s.hidden + s.hidden * (2 * s.heads + 2 * s.kv_heads) * s.head_dim + 3 * s.hidden * s.intermediate;
    assert_eq!(ours.param_count(), s.vocab * s.hidden + s.layers * per_layer + s.hidden);
}

#[test]
fn gguf_llama_with_k_quants_matches_candle_quantized_llama() {
    // K-quants pack 256 values per block, so every matrix needs rows of 256.
    let spec = Spec { hidden: 256, intermediate: 512, head_dim: 64, seed: 5, ..Spec::llama() };
    let quant = |name: &str| match name {
        n if n.contains("ffn_down") || n == "output.weight" => GgmlDType::Q6K,
        "token_embd.weight" => GgmlDType::Q8_0,
        _ => GgmlDType::Q4K,
    };
    let ours = check_gguf(spec, quant);
    assert_eq!(ours.weights_summary(), "Q4K + Q6K (Q8_0 embeddings, Q6K output)");
}

#[test]
fn gguf_qwen2_with_untied_output_matches_candle_quantized_qwen2() {
    let quant = |name: &str| {
        if name == "output.weight" {
            GgmlDType::Q4_1
        } else {
            GgmlDType::Q8_0
        }
    };
    let ours = check_gguf(Spec::qwen2(), quant);
    assert_eq!(ours.config().arch, Arch::Qwen2);
    assert!(ours.config().attention_bias && !ours.config().tie_word_embeddings);
}

#[test]
fn gguf_qwen3_matches_candle_quantized_qwen3() {
    let ours = check_gguf(Spec::qwen3(), |_| GgmlDType::Q8_0);
    assert!(ours.config().qk_norm && ours.config().tie_word_embeddings);
    assert_eq!(ours.config().head_dim, 32);
}

// ---------------------------------------------------------------------------------------------
// Batch invariance: a sequence's logits are bit-identical however it is scheduled.

/// The models every scheduling property is checked on: dense f32 safetensors (Llama with GQA,
/// Qwen3 with q/k norms) and GGUF files in several quantized types. The GGUF models use rows of
/// 256 values so that K-quants fit.
fn invariance_models(dir: &Path) -> Vec<(&'static str, Decoder)> {
    let wide = Spec { hidden: 256, intermediate: 512, head_dim: 64, seed: 9, ..Spec::llama() };
    let gguf = |name: &str, quant: &dyn Fn(&str) -> GgmlDType| load(&wide.write_gguf(&dir.join(format!("{name}.gguf")), quant));
    let dense_dir = dir.join("dense");
    let qwen3_dir = dir.join("qwen3");
    std::fs::create_dir_all(&dense_dir).expect("mkdir");
    std::fs::create_dir_all(&qwen3_dir).expect("mkdir");
    vec![
        ("f32 llama", load(&Spec::llama().write_safetensors(&dense_dir))),
        ("f32 qwen3", load(&Spec::qwen3().write_safetensors(&qwen3_dir))),
        (
            "Q4_1",
            gguf("q4_1", &|n| {
                if n == "token_embd.weight" {
                    GgmlDType::Q8_0
                } else {
                    GgmlDType::Q4_1
                }
            }),
        ),
        ("Q8_0", gguf("q8_0", &|_| GgmlDType::Q8_0)),
        (
            "Q4K + Q6K",
            gguf("k", &|n| {
                if n.contains("ffn_down") || n == "output.weight" {
                    GgmlDType::Q6K
                } else {
                    GgmlDType::Q4K
                }
            }),
        ),
        ("Q5K", gguf("q5k", &|_| GgmlDType::Q5K)),
    ]
}

/// Each sequence's chunks, step by step; step `k` of every sequence shares one forward pass.
/// The first sequence's prompt spans two cache blocks.
const SCRIPTS: [&[&[u32]]; 3] = [
    &[&[1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 65, 69, 73], &[40], &[41]],
    &[&[3, 6, 9, 12], &[50, 51, 52], &[53]],
    &[&[7, 14, 21, 28, 35, 42], &[60], &[61, 62]],
];

/// Runs every script alone, chunk by chunk; `[sequence][step] -> logits`.
fn solo_runs(model: &Decoder) -> Vec<Vec<Vec<f32>>> {
    SCRIPTS
        .iter()
        .map(|script| {
            let mut kv = model.new_kv();
            script.iter().map(|chunk| logits(model, &mut [SeqChunk { tokens: chunk, kv: &mut kv }]).remove(0)).collect()
        })
        .collect()
}

/// Runs the scripts batched, step `k` of every sequence in one pass; same layout as
/// [`solo_runs`].
fn batched_runs(model: &Decoder) -> Vec<Vec<Vec<f32>>> {
    let mut kvs: Vec<_> = SCRIPTS.iter().map(|_| model.new_kv()).collect();
    let mut out = vec![Vec::new(); SCRIPTS.len()];
    for step in 0..3 {
        let mut chunks: Vec<SeqChunk> = kvs.iter_mut().zip(SCRIPTS).map(|(kv, script)| SeqChunk { tokens: script[step], kv }).collect();
        for (seq, row) in logits(model, &mut chunks).into_iter().enumerate() {
            out[seq].push(row);
        }
    }
    for (kv, script) in kvs.iter().zip(SCRIPTS) {
        assert_eq!(kv.len(), script.iter().map(|c| c.len()).sum::<usize>());
    }
    out
}

#[test]
fn batched_forward_equals_each_sequence_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, model) in invariance_models(dir.path()) {
        let (solo, batched) = (solo_runs(&model), batched_runs(&model));
        assert_eq!(batched, solo, "{name}: batched logits differ from solo");
        // The comparison is not vacuous: different sequences give different logits.
        assert_ne!(solo[0][0], solo[1][0], "{name}");
    }
}

#[test]
fn logits_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, model) in invariance_models(dir.path()) {
        let runs: Vec<_> = [1, 2, 3]
            .into_iter()
            .map(|threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
                pool.install(|| batched_runs(&model))
            })
            .collect();
        assert_eq!(runs[0], runs[1], "{name}: 1 vs 2 threads");
        assert_eq!(runs[0], runs[2], "{name}: 1 vs 3 threads");
    }
}

/// Feeds `prompt` in chunks of the given sizes, then one more token; returns the logits after
/// the prompt and after that token.
fn chunked(model: &Decoder, prompt: &[u32], sizes: &[usize]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(sizes.iter().sum::<usize>(), prompt.len());
    let mut kv = model.new_kv();
    let mut at = 0;
    let mut last = Vec::new();
    for &size in sizes {
        let part = &prompt[at..at + size];
        last = logits(model, &mut [SeqChunk { tokens: part, kv: &mut kv }]).remove(0);
        at += size;
    }
    let next = logits(model, &mut [SeqChunk { tokens: &[77], kv: &mut kv }]).remove(0);
    (last, next)
}

#[test]
fn chunked_prefill_equals_one_shot_prefill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompt: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % 96).collect();
    for (name, model) in invariance_models(dir.path()) {
        let one_shot = chunked(&model, &prompt, &[40]);
        for sizes in [&[5, 11, 24][..], &[16, 16, 8], &[1, 39], &[15, 2, 23], &[1; 40]] {
            // The caches agree too: the next token sees the same past either way.
            assert_eq!(chunked(&model, &prompt, sizes), one_shot, "{name}: chunks {sizes:?}");
        }
    }
}

#[test]
fn a_truncated_clone_reuses_the_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompt: Vec<u32> = (0..37).map(|i| (i * 5 + 1) % 96).collect();
    for (name, model) in invariance_models(dir.path()) {
        let run = |kv: &mut apigen_mt::model::SeqKv, tokens: &[u32]| logits(&model, &mut [SeqChunk { tokens, kv }]).remove(0);
        let mut base = model.new_kv();
        run(&mut base, &prompt);
        // Forks cut inside a block and on a block boundary, then continue differently.
        for keep in [20, 32] {
            let mut fork = base.clone();
            fork.truncate(keep);
            assert_eq!(fork.len(), keep);
            let forked = run(&mut fork, &[9, 10]);
            let mut fresh = model.new_kv();
            let mut direct_prompt = prompt[..keep].to_vec();
            direct_prompt.extend([9, 10]);
            assert_eq!(forked, run(&mut fresh, &direct_prompt), "{name}: fork at {keep}");
        }
        // The original cache is untouched by the forks' writes.
        let next = run(&mut base, &[7]);
        let mut again = model.new_kv();
        let mut whole = prompt.clone();
        whole.push(7);
        assert_eq!(next, run(&mut again, &whole), "{name}: original after forks");
    }
}

#[test]
fn forks_share_their_prefix_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = load(&Spec::llama().write_safetensors(dir.path()));
    let s = Spec::llama();
    assert_eq!(model.kv_bytes_per_token(), s.layers * 2 * s.kv_heads * s.head_dim * 4);
    let mut base = model.new_kv();
    let prompt: Vec<u32> = (0..40).collect();
    logits(&model, &mut [SeqChunk { tokens: &prompt, kv: &mut base }]);
    assert_eq!(base.size_bytes(), 48 * model.kv_bytes_per_token(), "3 blocks of 16");
    let mut fork = base.clone();
    logits(&model, &mut [SeqChunk { tokens: &[5], kv: &mut fork }]);
    let mut ids: Vec<usize> = base.blocks().chain(fork.blocks()).map(|b| b.0).collect();
    ids.sort();
    ids.dedup();
    // Two full blocks shared; the partial third one copied on the fork's write.
    assert_eq!(ids.len(), 4);
}

#[test]
fn a_failed_forward_leaves_caches_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = load(&Spec::llama().write_safetensors(dir.path()));
    let (mut a, mut b) = (model.new_kv(), model.new_kv());
    logits(&model, &mut [SeqChunk { tokens: &[1, 2], kv: &mut a }]);
    let too_far = vec![3u32; Spec::MAX_POSITIONS + 1];
    let err = model.forward(&mut [SeqChunk { tokens: &[4], kv: &mut a }, SeqChunk { tokens: &too_far, kv: &mut b }]).unwrap_err();
    assert!(err.to_string().contains("context length"), "{err}");
    assert_eq!((a.len(), b.len()), (2, 0));
    let err = model.forward(&mut [SeqChunk { tokens: &[500], kv: &mut a }]).unwrap_err();
    assert!(err.to_string().contains("vocabulary"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The real SmolLM2 file: our greedy tokens must equal candle's.

/// Lowest index of the largest value, so both sides break ties the same way.
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn smollm2_greedy_tokens_equal_candle_quantized_llama() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let gguf = dir.join("model-q4_1.gguf");
    let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).expect("tokenizer");
    let prompt = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France? Answer in two sentences.<|im_end|>\n<|im_start|>assistant\n";
    let prompt: Vec<u32> = tokenizer.encode(prompt, false).expect("encode").get_ids().to_vec();
    const STEPS: usize = 48;

    let ours = load(&WeightsSource::Gguf(gguf.clone()));
    assert_eq!(ours.config().arch, Arch::Llama);
    assert_eq!(ours.weights_summary(), "Q4_1 (Q8_0 embeddings)");
    let mut kv = ours.new_kv();
    let mut ours_tokens = Vec::new();
    let mut next = argmax(&logits(&ours, &mut [SeqChunk { tokens: &prompt, kv: &mut kv }])[0]);
    for _ in 0..STEPS {
        ours_tokens.push(next);
        next = argmax(&logits(&ours, &mut [SeqChunk { tokens: &[next], kv: &mut kv }])[0]);
    }

    let mut reference = reference_gguf("llama", &gguf);
    let mut theirs = Vec::new();
    // How far candle's best logit leads its second best, at each step.
    let mut margins = Vec::new();
    let mut row = reference(&prompt, 0);
    for step in 0..STEPS {
        let next = argmax(&row);
        theirs.push(next);
        let runner_up = row.iter().enumerate().filter(|&(i, _)| i as u32 != next).map(|(_, &x)| x).fold(f32::MIN, f32::max);
        margins.push(row[next as usize] - runner_up);
        row = reference(&[next], prompt.len() + step);
    }
    eprintln!("greedy: {:?}", tokenizer.decode(&ours_tokens, false));
    // Our attention and norms reduce in other orders than candle's, so logits agree to rounding
    // only; re-quantizing activations to 8 bits before every product amplifies that to a few
    // hundredths after dozens of steps, and greedy paths may then part where candle's top two
    // logits nearly tie (seen: a 0.07 lead at step 33, long after the answer ended). Compare up
    // to the first such near-tie, which must come after the answer and its end-of-turn token.
    let compared = margins.iter().position(|&m| m < 0.1).unwrap_or(STEPS);
    let end_of_turn = theirs.iter().position(|&t| t == 2).expect("an <|im_end|>");
    eprintln!("compared {compared} of {STEPS} tokens; margins {margins:?}");
    assert!(compared > end_of_turn, "a near-tie at step {compared}, inside the answer");
    assert_eq!(ours_tokens[..compared], theirs[..compared]);
    assert!(tokenizer.decode(&ours_tokens, true).expect("decode").contains("Paris"));
}

/// Greedy decoding of each prompt; `[prompt][step] -> (token, logits)`. With `batched`, every
/// step (the prompts first, then one token per sequence) is one forward pass over all of them.
fn greedy(model: &Decoder, prompts: &[Vec<u32>], steps: usize, batched: bool) -> Vec<Vec<(u32, Vec<f32>)>> {
    let mut kvs: Vec<_> = prompts.iter().map(|_| model.new_kv()).collect();
    let mut out = vec![Vec::new(); prompts.len()];
    let mut inputs: Vec<Vec<u32>> = prompts.to_vec();
    for _ in 0..=steps {
        let rows: Vec<Vec<f32>> = if batched {
            let mut chunks: Vec<SeqChunk> = kvs.iter_mut().zip(&inputs).map(|(kv, tokens)| SeqChunk { tokens, kv }).collect();
            logits(model, &mut chunks)
        } else {
            kvs.iter_mut().zip(&inputs).map(|(kv, tokens)| logits(model, &mut [SeqChunk { tokens, kv }]).remove(0)).collect()
        };
        for (seq, row) in rows.into_iter().enumerate() {
            let next = argmax(&row);
            inputs[seq] = vec![next];
            out[seq].push((next, row));
        }
    }
    out
}

#[test]
fn smollm2_batched_greedy_decoding_equals_each_prompt_alone() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let gguf = dir.join("model-q4_1.gguf");
    let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).expect("tokenizer");
    let encode = |text: &str| -> Vec<u32> { tokenizer.encode(text, false).expect("encode").get_ids().to_vec() };
    let prompts = [
        encode("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"),
        encode("<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\nName three primary colours.<|im_end|>\n<|im_start|>assistant\n"),
        encode("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face. Answer briefly and precisely, and say so when you do not know.<|im_end|>\n<|im_start|>user\nExplain in one sentence why the sky looks blue during the day.<|im_end|>\n<|im_start|>assistant\n"),
    ];
    assert!(prompts[0].len() < prompts[1].len() && prompts[1].len() < prompts[2].len());
    let tokens = |run: &[(u32, Vec<f32>)]| run.iter().map(|s| s.0).collect::<Vec<_>>();
    let mut runs = Vec::new();
    for kv_dtype in [KvDtype::F32, KvDtype::F16] {
        let options = DecoderOptions { kv_dtype, ..DecoderOptions::default() };
        let model = Decoder::load(&WeightsSource::Gguf(gguf.clone()), &options).expect("load");
        let alone = greedy(&model, &prompts, 8, false);
        let together = greedy(&model, &prompts, 8, true);
        for (seq, (a, b)) in alone.iter().zip(&together).enumerate() {
            assert_eq!(tokens(a), tokens(b), "{kv_dtype:?} prompt {seq}: tokens");
            assert!(a == b, "{kv_dtype:?} prompt {seq}: logits differ");
            eprintln!("{kv_dtype:?} prompt {seq}: {:?}", tokenizer.decode(&tokens(a), false));
        }
        runs.push(alone);
    }
    // An f16 cache rounds keys and values: the logits move a little, and only a little.
    let (f32_run, f16_run) = (&runs[0], &runs[1]);
    let first_step_diff = f32_run.iter().zip(f16_run).map(|(a, b)| max_diff(&a[0].1, &b[0].1)).fold(0f32, f32::max);
    eprintln!("max |f32 KV - f16 KV| logits at the first step: {first_step_diff}");
    // Seen: 0.94, over 49,152 logits spread over tens of units.
    assert!(first_step_diff > 0.0 && first_step_diff < 2.0, "{first_step_diff}");
    for (a, b) in f32_run.iter().zip(f16_run) {
        assert_eq!(tokens(a)[..4], tokens(b)[..4]);
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: an error that names the path and the problem, never a panic.

fn load_error(source: &WeightsSource) -> String {
    match Decoder::load(source, &DecoderOptions::default()) {
        Ok(_) => panic!("loading {source:?} should fail"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.gguf");
    let err = load_error(&WeightsSource::Gguf(path.clone()));
    assert!(err.contains(&path.display().to_string()) && err.contains("No such file"), "{err}");
    let err = WeightsSource::from_path(&dir.path().join("nowhere")).unwrap_err().to_string();
    assert!(err.contains("nowhere") && err.contains("does not exist"), "{err}");
    // A directory with a checkpoint resolves to it.
    Spec::llama().write_safetensors(dir.path());
    assert!(matches!(WeightsSource::from_path(dir.path()), Ok(WeightsSource::Safetensors { .. })));
}

#[test]
fn a_truncated_gguf_is_reported_as_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.gguf");
    Spec::llama().write_gguf(&path, |_| GgmlDType::Q8_0);
    let bytes = std::fs::read(&path).expect("read");
    for keep in [bytes.len() * 3 / 4, 40] {
        std::fs::write(&path, &bytes[..keep]).expect("write");
        let err = load_error(&WeightsSource::Gguf(path.clone()));
        assert!(err.contains(&path.display().to_string()) && err.contains("truncated"), "{err}");
    }
}

#[test]
fn a_corrupt_safetensors_file_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = Spec::llama().write_safetensors(dir.path());
    let file = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&file).expect("read");
    // Garble the JSON header while keeping its declared length.
    for b in bytes[8..40].iter_mut() {
        *b = b'#';
    }
    std::fs::write(&file, &bytes).expect("write");
    let err = load_error(&source);
    assert!(err.contains(&file.display().to_string()) && err.contains("safetensors"), "{err}");
    // Cut short: the header promises data the file no longer has.
    let good = tempfile::tempdir().expect("tempdir");
    let source = Spec::llama().write_safetensors(good.path());
    let file = good.path().join("model.safetensors");
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() - 100]).expect("write");
    let err = load_error(&source);
    assert!(err.contains(&file.display().to_string()) && err.contains("truncated"), "{err}");
}

#[test]
fn a_wrong_magic_number_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    Spec::llama().write_safetensors(dir.path());
    let path = dir.path().join("renamed.gguf");
    std::fs::copy(dir.path().join("model.safetensors"), &path).expect("copy");
    let err = load_error(&WeightsSource::Gguf(path.clone()));
    assert!(err.contains(&path.display().to_string()) && err.contains("magic"), "{err}");
}

#[test]
fn an_unknown_architecture_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = Spec::llama().write_safetensors(dir.path());
    let config = dir.path().join("config.json");
    let mut json = Spec::llama().config_json();
    json["model_type"] = "gpt_neox".into();
    std::fs::write(&config, json.to_string()).expect("write");
    let err = load_error(&source);
    assert!(err.contains(&config.display().to_string()) && err.contains("gpt_neox"), "{err}");

    let path = dir.path().join("phi.gguf");
    let source = Spec::llama().write_gguf_with(
        &path,
        |_| GgmlDType::Q8_0,
        |md| {
            md[0].1 = gguf_file::Value::String("phi3".into());
        },
    );
    let err = load_error(&source);
    assert!(err.contains(&path.display().to_string()) && err.contains("phi3"), "{err}");
}

#[test]
fn a_config_that_does_not_match_the_weights_names_the_tensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = Spec::llama().write_safetensors(dir.path());
    let mut json = Spec::llama().config_json();
    json["intermediate_size"] = 128.into();
    std::fs::write(dir.path().join("config.json"), json.to_string()).expect("write");
    let err = load_error(&source);
    let file = dir.path().join("model.safetensors").display().to_string();
    assert!(err.contains(&file) && err.contains("model.layers.0.mlp.gate_proj.weight") && err.contains("[128, 64]"), "{err}");

    let path = dir.path().join("bad.gguf");
    let source = Spec::llama().write_gguf_with(
        &path,
        |_| GgmlDType::Q8_0,
        |md| {
            for (key, value) in md.iter_mut() {
                if key == "llama.attention.head_count_kv" {
                    *value = gguf_file::Value::U32(4);
                }
            }
        },
    );
    let err = load_error(&source);
    assert!(err.contains(&path.display().to_string()) && err.contains("blk.0.attn_k.weight"), "{err}");
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = Spec::llama();
    let tensors: std::collections::HashMap<String, Tensor> =
        spec.weights().into_iter().filter(|(name, _)| name != "model.layers.1.mlp.up_proj.weight").collect();
    std::fs::write(dir.path().join("config.json"), spec.config_json().to_string()).expect("write");
    let file = dir.path().join("model.safetensors");
    candle_core::safetensors::save(&tensors, &file).expect("save");
    let err = load_error(&WeightsSource::from_path(dir.path()).expect("source"));
    assert!(
        err.contains(&file.display().to_string()) && err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("missing"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Timing on the real SmolLM2 file (release, `--ignored`); prints numbers, asserts nothing about
// speed.

/// Decode steps of `batch` sequences at once, each after a short prompt; tokens per second.
fn decode_rate(model: &Decoder, batch: usize, steps: usize) -> f64 {
    let mut kvs: Vec<_> = (0..batch).map(|_| model.new_kv()).collect();
    for (i, kv) in kvs.iter_mut().enumerate() {
        let prompt: Vec<u32> = (0..32).map(|t| (t * 31 + i as u32 * 7 + 100) % 5000).collect();
        logits(model, &mut [SeqChunk { tokens: &prompt, kv }]);
    }
    let start = std::time::Instant::now();
    for step in 0..steps {
        let tokens: Vec<[u32; 1]> = (0..batch).map(|i| [(step * 13 + i * 5 + 200) as u32]).collect();
        let mut chunks: Vec<SeqChunk> = kvs.iter_mut().zip(&tokens).map(|(kv, t)| SeqChunk { tokens: t, kv }).collect();
        logits(model, &mut chunks);
    }
    (batch * steps) as f64 / start.elapsed().as_secs_f64()
}

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn smollm2_timing() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let gguf = dir.join("model-q4_1.gguf");
    let model = load(&WeightsSource::Gguf(gguf));
    for batch in [1, 4, 16] {
        let rate = decode_rate(&model, batch, 24);
        eprintln!("decode batch {batch}: {rate:.1} tok/s");
    }
    let prompt: Vec<u32> = (0..512).map(|t| (t * 37 + 11) % 40000).collect();
    let mut kv = model.new_kv();
    let start = std::time::Instant::now();
    logits(&model, &mut [SeqChunk { tokens: &prompt, kv: &mut kv }]);
    let rate = prompt.len() as f64 / start.elapsed().as_secs_f64();
    eprintln!("prefill 512 tokens: {rate:.1} tok/s");
}
