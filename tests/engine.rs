//! The engine end to end on a tiny random-weight model: greedy decoding against a
//! hand-written decoder loop, stop strings, length limits, the context limit, constraints, and
//! many threads sharing one handle.

use std::path::Path;

use apigen_mt::chat::Message;
use apigen_mt::engine::loaded::{LoadOptions, LoadedModel};
use apigen_mt::engine::{Constraint, EngineHandle, FinishReason, Prompt, Request, SamplingParams};
use apigen_mt::model::{Decoder, DecoderOptions, SeqChunk, WeightsSource};
use apigen_mt::tokenizer::Tokenizer;
use candle_core::quantized::GgmlDType;
use serde_json::json;

use crate::model::tiny::Spec;

/// Special tokens of the tiny tokenizer; the rest of the vocabulary is one character per id.
const SPECIALS: [&str; 5] = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>"];
const CHARS: &str = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?:;'\"-()[]{}/@#$%&*+=_~^`";

/// Writes a tiny model directory: random llama weights, a character-level tokenizer whose ids
/// match the model's vocabulary, and a chat template that does not render tools.
pub(crate) fn tiny_model(dir: &Path) -> WeightsSource {
    tiny_model_with(dir, None)
}

/// Like [`tiny_model`], with the weights in a GGUF file of quantization `quant` when given.
pub fn tiny_model_with(dir: &Path, quant: Option<GgmlDType>) -> WeightsSource {
    let spec = Spec::llama();
    let weights = match quant {
        None => spec.write_safetensors(dir),
        Some(quant) => spec.write_gguf(&dir.join("model.gguf"), |_| quant),
    };
    let vocab: serde_json::Map<String, serde_json::Value> = SPECIALS
        .iter()
        .map(|s| s.to_string())
        .chain(CHARS.chars().map(String::from))
        .take(spec.vocab)
        .enumerate()
        .map(|(id, token)| (token, json!(id)))
        .collect();
    assert_eq!(vocab.len(), spec.vocab, "the tokenizer must name every id the model can emit");
    let added: Vec<_> = SPECIALS
        .iter()
        .enumerate()
        .map(|(id, s)| json!({"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": null, "post_processor": null,
        // SentencePiece-style (byte fallback, then join), a decoder llguidance can read.
        "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []},
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let template = "{% for m in messages %}{% if m.role == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}\
                    {{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
    let config = json!({"chat_template": template, "bos_token": "<s>", "eos_token": "</s>"});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    weights
}

/// A user preset file with a tiny Qwen3 shape: Q4_K blocks, a Q6_K LM head, untied.
pub(crate) const TINY_PRESET: &str = r#"description = "tiny random Qwen3 for tests"
model = "tests/tiny"
tool_format = "hermes"
context_length = 1024

[shape]
arch = "qwen3"
vocab_size = 512
hidden_size = 256
intermediate_size = 512
num_layers = 2
num_heads = 4
num_kv_heads = 2
head_dim = 64
rope_theta = 1000000.0
rms_norm_eps = 1e-6
tie_word_embeddings = false
weights = "Q4_K"
output_weights = "Q6_K"
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    weights: WeightsSource,
    engine: EngineHandle,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let weights = tiny_model(dir.path());
    let options = LoadOptions::from_env(true).unwrap();
    let model = LoadedModel::load(dir.path().to_str().unwrap(), &options).unwrap();
    let engine = apigen_mt::engine::start(model, apigen_mt::engine::EngineConfig::default()).unwrap();
    Fixture { _dir: dir, weights, engine }
}

fn text_request(prompt: &str, max_tokens: usize) -> Request {
    Request::new(Prompt::Text(prompt.into())).sampling(SamplingParams::greedy()).max_tokens(max_tokens)
}

/// Greedy decoding written out by hand on a separately loaded decoder.
fn manual_greedy(weights: &WeightsSource, prompt: &[u32], max_tokens: usize) -> Vec<u32> {
    let decoder = Decoder::load(weights, &DecoderOptions::default()).unwrap();
    let mut kv = decoder.new_kv();
    let mut step = prompt.to_vec();
    let mut out = Vec::new();
    while out.len() < max_tokens {
        let logits = decoder.forward(&mut [SeqChunk { tokens: &step, kv: &mut kv }]).unwrap();
        let row: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
        let best = (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best }) as u32;
        if best == Spec::EOS {
            break;
        }
        out.push(best);
        step = vec![best];
    }
    out
}

#[test]
fn greedy_generation_matches_a_manual_decoder_loop_and_streams_the_same_text() {
    let f = fixture();
    let dir = f._dir.path();
    let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let prompt = tokenizer.encode("the quick brown fox", true).unwrap();
    let expected = manual_greedy(&f.weights, &prompt, 12);
    assert!(!expected.is_empty(), "the reference loop should produce something to compare");

    let mut streamed = String::new();
    let completion = f.engine.generate_streaming(text_request("the quick brown fox", 12), &mut |p| streamed.push_str(p)).unwrap();
    assert_eq!(completion.tokens, expected);
    assert_eq!(completion.prompt_tokens, prompt.len());
    assert_eq!(completion.text, tokenizer.decode(&expected, true).unwrap());
    assert_eq!(streamed, completion.text);
    let reason = if expected.len() == 12 { FinishReason::Length } else { FinishReason::Stop };
    assert_eq!(completion.finish_reason, reason);
    let metrics = f.engine.metrics();
    assert_eq!(metrics.generated_tokens, completion.tokens.len() as u64);
    assert!(metrics.forward_time > std::time::Duration::ZERO);
    // One pass computes the prompt and samples the first token; each later pass feeds back one
    // token, and only the end-of-sequence token that stops generation is not kept.
    assert_eq!(metrics.prefill_steps, 1);
    let stopped = u64::from(reason == FinishReason::Stop);
    assert_eq!(metrics.steps - metrics.prefill_steps, completion.tokens.len() as u64 - 1 + stopped);
    assert!(metrics.prefill_time > std::time::Duration::ZERO && metrics.prefill_time < metrics.forward_time);

    // The arithmetic of those passes, counted here multiply by multiply over every weight
    // matrix, logit and (query head, key) pair: the prompt's pass, then one token per pass.
    let s = Spec::llama();
    let matrices = [
        (s.heads * s.head_dim, s.hidden),
        (s.kv_heads * s.head_dim, s.hidden),
        (s.kv_heads * s.head_dim, s.hidden),
        (s.hidden, s.heads * s.head_dim),
        (s.intermediate, s.hidden),
        (s.intermediate, s.hidden),
        (s.hidden, s.intermediate),
    ];
    let per_token: usize = s.layers * matrices.iter().map(|&(rows, cols)| 2 * rows * cols).sum::<usize>();
    let pass = |positions: std::ops::Range<usize>| -> u64 {
        let attention: usize = positions.clone().map(|p| s.layers * s.heads * (p + 1) * 2 * (2 * s.head_dim)).sum();
        (positions.len() * per_token + attention + 2 * s.vocab * s.hidden) as u64
    };
    let prefill = pass(0..prompt.len());
    let decode: u64 = (0..metrics.steps - 1).map(|k| pass(prompt.len() + k as usize..prompt.len() + k as usize + 1)).sum();
    assert_eq!(metrics.prefill_flops, prefill);
    assert_eq!(metrics.flops, prefill + decode);
}

#[test]
fn max_tokens_and_stop_strings_end_generation() {
    let f = fixture();
    // Sampling with a fixed seed and no end-of-sequence token allowed to win early is not
    // available here, so find a prompt whose greedy reply runs the full budget.
    let full = ["hello there", "abc", "zzz", "once upon a time", "42"]
        .iter()
        .map(|p| (p, f.engine.generate(text_request(p, 10)).unwrap()))
        .find(|(_, c)| c.tokens.len() == 10)
        .expect("some prompt runs ten tokens");
    let (prompt, completion) = full;
    assert_eq!(completion.finish_reason, FinishReason::Length);

    let chars: Vec<char> = completion.text.chars().collect();
    assert!(chars.len() >= 4, "{:?}", completion.text);
    let stop: String = chars[2..4].iter().collect();
    let cut = completion.text.find(&stop).unwrap();
    let mut streamed = String::new();
    let stopped = f.engine.generate_streaming(text_request(prompt, 10).stop(vec![stop.clone()]), &mut |p| streamed.push_str(p)).unwrap();
    assert_eq!(stopped.finish_reason, FinishReason::Stop);
    assert_eq!(stopped.text, completion.text[..cut]);
    assert_eq!(streamed, stopped.text, "the stop string is never streamed");

    let none = f.engine.generate(text_request(prompt, 0)).unwrap();
    assert_eq!((none.finish_reason, none.tokens.len()), (FinishReason::Length, 0));
}

#[test]
fn the_context_length_bounds_prompt_and_generation() {
    let f = fixture();
    let context = Spec::MAX_POSITIONS;
    let too_long = "a".repeat(context + 10);
    let refused = f.engine.generate(text_request(&too_long, 5)).unwrap();
    assert_eq!(refused.finish_reason, FinishReason::Length);
    assert!(refused.tokens.is_empty());
    assert_eq!(refused.prompt_tokens, context + 10);

    // Three positions left: generation stops there, whatever max_tokens says.
    let nearly_full = "b".repeat(context - 3);
    let sampling = SamplingParams { temperature: 1.0, seed: 3, ..SamplingParams::default() };
    let mut stopped_early = 0;
    for seed in 0..5 {
        let request = text_request(&nearly_full, 50).sampling(SamplingParams { seed, ..sampling.clone() });
        let c = f.engine.generate(request).unwrap();
        assert!(c.tokens.len() <= 3, "{}", c.tokens.len());
        if c.tokens.len() == 3 {
            assert_eq!(c.finish_reason, FinishReason::Length);
        } else {
            stopped_early += 1;
        }
    }
    assert!(stopped_early < 5, "no run reached the context limit");
}

#[test]
fn many_threads_on_one_handle_get_what_sequential_calls_get() {
    let f = fixture();
    let requests: Vec<Request> = (0..8)
        .map(|i| {
            let sampling = SamplingParams { temperature: 0.9, top_k: 20, seed: i, ..SamplingParams::default() };
            text_request(["red fox", "blue sky", "green tea", "gold"][i as usize % 4], 8).sampling(sampling)
        })
        .collect();
    let sequential: Vec<_> = requests.iter().map(|r| f.engine.generate(r.clone()).unwrap()).collect();
    let concurrent: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| {
                let engine = f.engine.clone();
                let r = r.clone();
                s.spawn(move || engine.generate(r).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tokens = |cs: &[apigen_mt::engine::Completion]| cs.iter().map(|c| c.tokens.clone()).collect::<Vec<_>>();
    assert_eq!(tokens(&concurrent), tokens(&sequential));
    let distinct: std::collections::HashSet<_> = sequential.iter().map(|c| c.tokens.clone()).collect();
    assert!(distinct.len() > 1, "different seeds and prompts should not all agree");
}

#[test]
fn chat_prompts_render_through_the_template_with_tools_falling_back() {
    let f = fixture();
    let messages = vec![Message::user("hi")];
    let plain = f.engine.count_tokens(&Prompt::chat(messages.clone())).unwrap();
    // <|user|> h i </s> <|assistant|>
    assert_eq!(plain, 5);
    let tool = json!({"type": "function", "function": {"name": "get_time", "description": "now", "parameters": {"type": "object", "properties": {}}}});
    let with_tools = Prompt::Chat { messages, tools: vec![tool], add_generation_prompt: true, thinking: None };
    assert!(!f.engine.info().template_supports_tools);
    assert!(f.engine.count_tokens(&with_tools).unwrap() > plain, "the generic tool prompt adds the tool's description");
}

#[test]
fn a_regex_constraint_shapes_the_output_and_ends_it() {
    let f = fixture();
    let request = text_request("pick", 20).constraint(Constraint::Regex("[abc]{3}!".into()));
    let c = f.engine.generate(request).unwrap();
    assert_eq!(c.finish_reason, FinishReason::Constraint, "{c:?}");
    assert_eq!(c.text.len(), 4, "{:?}", c.text);
    assert!(c.text[..3].chars().all(|ch| "abc".contains(ch)) && c.text.ends_with('!'), "{:?}", c.text);

    let cut = f.engine.generate(text_request("pick", 2).constraint(Constraint::Regex("[abc]{3}!".into()))).unwrap();
    assert_eq!(cut.finish_reason, FinishReason::Length, "an unfinished constrained output says so");
}

#[test]
fn bad_requests_are_refused_before_generation() {
    let f = fixture();
    let empty = f.engine.generate(text_request("", 4));
    assert!(matches!(empty, Err(apigen_mt::engine::EngineError::Invalid(_))), "{empty:?}");
    let out_of_vocab = f.engine.generate(Request::new(Prompt::Tokens(vec![5, 10_000])).max_tokens(2));
    assert!(matches!(out_of_vocab, Err(apigen_mt::engine::EngineError::Invalid(_))), "{out_of_vocab:?}");
    let bad_regex = f.engine.generate(text_request("x", 4).constraint(Constraint::Regex("(".into())));
    assert!(matches!(bad_regex, Err(apigen_mt::engine::EngineError::Constraint(_))), "{bad_regex:?}");
}

#[test]
fn a_random_weights_preset_serves_token_prompts_and_refuses_text() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY_PRESET).unwrap();
    let preset = apigen_mt::model::presets::find("tiny", &[dir.path().to_path_buf()]).unwrap().unwrap();
    let options = LoadOptions::from_env(true).unwrap();
    let model = LoadedModel::random_from(&preset, 5, &options).unwrap();
    assert_eq!(model.decoder.weights_summary(), "Q4K (Q6K output)");
    assert_eq!(model.frontend.vocab_size(), 512);
    let engine = apigen_mt::engine::start(model, apigen_mt::engine::EngineConfig::default()).unwrap();
    let tokens = Request::new(Prompt::Tokens(vec![7, 300, 42])).sampling(SamplingParams::greedy()).max_tokens(9);
    let first = engine.generate(tokens.clone()).unwrap();
    // No end-of-sequence token: only the budget stops it, and there is no text to decode.
    assert_eq!((first.tokens.len(), first.finish_reason), (9, FinishReason::Length));
    assert!(first.text.is_empty());
    let distinct: std::collections::HashSet<_> = first.tokens.iter().collect();
    assert!(distinct.len() > 1, "random weights should not collapse to one token: {:?}", first.tokens);
    // The same seed gives the same weights, so the same greedy output.
    let again = apigen_mt::engine::start(LoadedModel::random_from(&preset, 5, &options).unwrap(), Default::default()).unwrap();
    assert_eq!(again.generate(tokens).unwrap().tokens, first.tokens);
    let text = engine.generate(text_request("hello", 4));
    assert!(matches!(&text, Err(apigen_mt::engine::EngineError::Invalid(m)) if m.contains("token-id")), "{text:?}");
}
