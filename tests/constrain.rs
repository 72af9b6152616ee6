//! Constrained decoding against a stand-in model whose logits are seeded noise: whatever the
//! "model" prefers, the output must be a complete sentence of the constraint's grammar.

use std::str::FromStr;

use apigen_mt::constrain::{compute_masks, generate, ConstraintCompiler, Generation, Sampler, SeqConstraint};
use apigen_mt::engine::{Constraint, EngineError, FinishReason};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tokenizers::Tokenizer;

// ---------------------------------------------------------------------------------------------
// A tiny byte-level BPE tokenizer: the 256 byte tokens, merges for JSON punctuation, digits and
// a few words, and an end-of-sequence special token.

/// The GPT-2 byte-to-character table: printable Latin-1 bytes stand for themselves, the rest
/// are shifted to U+0100 onwards in byte order.
fn byte_char(byte: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(byte) {
        char::from(byte)
    } else {
        let rank = (0..byte).filter(|&b| !printable(b)).count() as u32;
        char::from_u32(0x100 + rank).unwrap()
    }
}

const MERGED_WORDS: &[&str] = &[
    "{\"", "\":", "\",", "\"}", "\":\"", "},", "}]", "]}", "[\"", "\"]", "[{", "00", "10", "12", "20", "99", "name", "id", "true", "false",
    "null", "user", "order", "status", "items", "price", " the", " and", "ing", "er", "tion", "#W",
];

struct TinyVocab {
    tokenizer: Tokenizer,
    eos: u32,
}

/// `normalizer` is the tokenizer.json normalizer (null for none).
fn tiny_vocab(normalizer: Value) -> TinyVocab {
    let mut vocab = serde_json::Map::new();
    let mut merges: Vec<String> = Vec::new();
    for byte in 0..=255u8 {
        vocab.insert(byte_char(byte).to_string(), json!(byte));
    }
    for word in MERGED_WORDS {
        let chars: Vec<String> = word.bytes().map(|b| byte_char(b).to_string()).collect();
        let mut prefix = chars[0].clone();
        for next in &chars[1..] {
            let merged = format!("{prefix}{next}");
            let merge = format!("{prefix} {next}");
            if !merges.contains(&merge) {
                merges.push(merge);
            }
            if !vocab.contains_key(&merged) {
                let id = vocab.len();
                vocab.insert(merged.clone(), json!(id));
            }
            prefix = merged;
        }
    }
    let eos = vocab.len() as u32;
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{
            "id": eos, "content": "<|eos|>", "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        }],
        "normalizer": normalizer,
        "pre_tokenizer": byte_level,
        "post_processor": null,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    });
    let tokenizer = Tokenizer::from_str(&spec.to_string()).expect("the test tokenizer is well-formed");
    TinyVocab { tokenizer, eos }
}

fn tiny_compiler() -> (ConstraintCompiler, Tokenizer) {
    let TinyVocab { tokenizer, eos } = tiny_vocab(Value::Null);
    let compiler = ConstraintCompiler::new(&tokenizer, &[eos]).expect("the compiler builds");
    (compiler, tokenizer)
}

// ---------------------------------------------------------------------------------------------
// The stand-in model and helpers.

/// Logits for one step: noise seeded by the request's seed and the number of tokens so far.
fn noise_logits(seed: u64, step: usize, vocab: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step as u64);
    (0..vocab).map(|_| rng.random_range(-4.0f32..4.0)).collect()
}

/// Greedy for even seeds, temperature 1 for odd ones, so both samplers meet the grammar.
fn sampler_for(seed: u64) -> Sampler {
    Sampler::new(if seed.is_multiple_of(2) { 0.0 } else { 1.0 }, seed)
}

fn run_noise(seq: &mut SeqConstraint, seed: u64, vocab: usize, max_tokens: usize) -> (Generation, usize) {
    let mut model_calls = 0;
    let generation = generate(seq, &mut sampler_for(seed), max_tokens, |tokens| {
        model_calls += 1;
        Ok(noise_logits(seed, tokens.len(), vocab))
    });
    (generation, model_calls)
}

fn decode(tokenizer: &Tokenizer, tokens: &[u32]) -> String {
    tokenizer.decode(tokens, false).expect("generated tokens decode")
}

pub fn assert_valid_json(schema: &Value, text: &str, context: &str) {
    let instance: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {text}"));
    let validator = jsonschema::validator_for(schema).expect("test schemas are valid");
    let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{context}: {text} violates the schema: {errors:?}");
    assert!(blank_outside_strings(text).is_none(), "{context}: whitespace between JSON tokens: {text}");
}

/// Position of the first whitespace character that is not inside a JSON string.
fn blank_outside_strings(text: &str) -> Option<usize> {
    let (mut in_string, mut escaped) = (false, false);
    for (at, c) in text.char_indices() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_string = !in_string,
            (false, _, c) if c.is_whitespace() => return Some(at),
            _ => {}
        }
    }
    None
}

/// Schemas with nested objects, enums, bounded arrays and integers, required fields, and
/// strings bounded by maxLength or a pattern.
pub fn schemas() -> Vec<Value> {
    vec![
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 12},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
                "role": {"enum": ["admin", "user", "guest"]},
                "address": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "maxLength": 10},
                        "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
                    },
                    "required": ["city", "zip"],
                    "additionalProperties": false
                },
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3}
            },
            "required": ["name", "age", "role", "address"],
            "additionalProperties": false
        }),
        json!({
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "pattern": "^#W[0-9]{7}$"},
                "status": {"enum": ["pending", "delivered", "cancelled"]},
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 4,
                    "items": {
                        "type": "object",
                        "properties": {
                            "item_id": {"type": "string", "pattern": "^[0-9]{10}$"},
                            "quantity": {"type": "integer", "minimum": 1, "maximum": 5},
                            "options": {
                                "type": "object",
                                "properties": {
                                    "color": {"enum": ["red", "blue", "black"]},
                                    "size": {"enum": ["S", "M", "L"]}
                                },
                                "required": ["color"],
                                "additionalProperties": false
                            }
                        },
                        "required": ["item_id", "quantity", "options"],
                        "additionalProperties": false
                    }
                },
                "total_cents": {"type": "integer", "minimum": 0, "maximum": 100000},
                "gift": {"type": "boolean"}
            },
            "required": ["order_id", "status", "items", "total_cents"],
            "additionalProperties": false
        }),
        json!({
            "type": "object",
            "properties": {
                "matrix": {
                    "type": "array",
                    "maxItems": 3,
                    "items": {"type": "array", "maxItems": 3, "items": {"type": "integer", "minimum": -5, "maximum": 5}}
                },
                "note": {"anyOf": [{"type": "string", "maxLength": 8}, {"type": "null"}]},
                "flag": {"const": true}
            },
            "required": ["matrix", "note", "flag"],
            "additionalProperties": false
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn noise_under_a_json_schema_always_yields_valid_json() {
    let (compiler, tokenizer) = tiny_compiler();
    let vocab = tokenizer.get_vocab_size(true);
    let schemas = schemas();
    for seed in 0..100u64 {
        let schema = &schemas[seed as usize % schemas.len()];
        let mut seq = compiler.compile(&Constraint::JsonSchema(schema.clone())).expect("schema compiles");
        let (generation, model_calls) = run_noise(&mut seq, seed, vocab, 600);
        let text = decode(&tokenizer, &generation.tokens);
        assert_eq!(generation.finish_reason, FinishReason::Constraint, "seed {seed}: {text} {:?}", generation.error);
        assert_valid_json(schema, &text, &format!("seed {seed}"));
        assert!(model_calls < generation.tokens.len(), "seed {seed}: forced tokens should save model steps");
        assert!(seq.mask_stats().masks >= model_calls as u64, "seed {seed}: every sampled step needs a mask");
    }
}

#[test]
fn a_batch_of_sixteen_schemas_is_masked_together() {
    let (compiler, tokenizer) = tiny_compiler();
    let vocab = tokenizer.get_vocab_size(true);
    // Sixteen distinct schemas: each its own key, bounds, enum and array limit.
    let schemas: Vec<Value> = (0..16)
        .map(|i| {
            let labels: Vec<String> = (0..=i % 5).map(|k| format!("v{i}_{k}")).collect();
            json!({
                "type": "object",
                "properties": {
                    format!("key{i}"): {"type": "integer", "minimum": -i, "maximum": 10 * i + 3},
                    "label": {"enum": labels},
                    "list": {"type": "array", "items": {"type": "boolean"}, "maxItems": i % 4 + 1},
                    "text": {"type": "string", "maxLength": i % 7 + 1}
                },
                "required": [format!("key{i}"), "label", "list"],
                "additionalProperties": false
            })
        })
        .collect();
    let mut seqs: Vec<SeqConstraint> =
        schemas.iter().map(|s| compiler.compile(&Constraint::JsonSchema(s.clone())).expect("schema compiles")).collect();
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); seqs.len()];
    let mut samplers: Vec<Sampler> = (0..seqs.len() as u64).map(sampler_for).collect();

    for step in 0..400 {
        // Forced tokens first, so every remaining sequence needs a sampled token.
        for (seq, out) in seqs.iter_mut().zip(&mut outputs) {
            if !seq.is_complete() {
                out.extend(seq.take_forced_tokens().expect("forcing never fails here"));
            }
        }
        let mut active: Vec<(usize, &mut SeqConstraint)> = seqs.iter_mut().enumerate().filter(|(_, s)| !s.is_complete()).collect();
        if active.is_empty() {
            break;
        }
        let mut batch: Vec<&mut SeqConstraint> = active.iter_mut().map(|(_, s)| &mut **s).collect();
        for result in compute_masks(&mut batch) {
            result.expect("every mask computes");
        }
        for (index, seq) in active {
            let mut logits = noise_logits(index as u64 * 1000 + step, outputs[index].len(), vocab);
            seq.apply_mask(&mut logits).expect("mask applies");
            let token = samplers[index].sample(&logits).expect("some token is allowed");
            seq.commit(token).expect("an allowed token commits");
            if !seq.is_eos(token) {
                outputs[index].push(token);
            }
        }
    }
    for (index, (seq, schema)) in seqs.iter().zip(&schemas).enumerate() {
        let text = decode(&tokenizer, &outputs[index]);
        assert!(seq.is_complete(), "sequence {index} did not finish: {text}");
        assert_valid_json(schema, &text, &format!("sequence {index}"));
        assert!(text.contains(&format!("\"key{index}\":")), "sequence {index} used another schema: {text}");
    }
}

#[test]
fn regex_constraint_output_matches() {
    let (compiler, tokenizer) = tiny_compiler();
    let vocab = tokenizer.get_vocab_size(true);
    for seed in 0..10 {
        let mut seq = compiler.compile(&Constraint::Regex(r"#W\d{7}( (ok|late))?".into())).expect("regex compiles");
        let (generation, _) = run_noise(&mut seq, seed, vocab, 50);
        let text = decode(&tokenizer, &generation.tokens);
        assert_eq!(generation.finish_reason, FinishReason::Constraint, "{text}");
        // `\d` is ASCII: the id is exactly nine bytes.
        let id = text.get(..9).unwrap_or_else(|| panic!("no nine-byte id: {text}"));
        assert!(id.starts_with("#W") && id[2..].chars().all(|c| c.is_ascii_digit()), "{text}");
        assert!(["", " ok", " late"].contains(&&text[9..]), "{text}");
    }
}

#[test]
fn a_fully_determined_regex_is_forced_without_the_model() {
    let (compiler, tokenizer) = tiny_compiler();
    let mut seq = compiler.compile(&Constraint::Regex("order status".into())).expect("regex compiles");
    let generation =
        generate(&mut seq, &mut Sampler::Greedy, 20, |_| Err(EngineError::Model("the model must not be asked for a forced string".into())));
    assert_eq!(generation.finish_reason, FinishReason::Constraint, "{:?}", generation.error);
    assert_eq!(decode(&tokenizer, &generation.tokens), "order status");
}

#[test]
fn forced_text_keeps_its_bytes_when_the_tokenizer_normalizes() {
    // A lowercasing tokenizer would spell the forced "NAME" as "name"; the forced tokens must
    // still spell exactly what the grammar demands.
    let TinyVocab { tokenizer, eos } = tiny_vocab(json!({"type": "Lowercase"}));
    let compiler = ConstraintCompiler::new(&tokenizer, &[eos]).expect("the compiler builds");
    let mut seq = compiler.compile(&Constraint::Regex("NAME id".into())).expect("regex compiles");
    let generation =
        generate(&mut seq, &mut Sampler::Greedy, 20, |_| Err(EngineError::Model("the model must not be asked for a forced string".into())));
    assert_eq!(generation.finish_reason, FinishReason::Constraint, "{:?}", generation.error);
    assert_eq!(decode(&tokenizer, &generation.tokens), "NAME id");
}

#[test]
fn lark_constraint_output_parses() {
    let (compiler, tokenizer) = tiny_compiler();
    let vocab = tokenizer.get_vocab_size(true);
    let grammar = r#"
        start: call
        call: NAME "(" args? ")"
        args: NUMBER ("," NUMBER)*
        NAME: /[a-z]{1,8}/
        NUMBER: /[0-9]{1,3}/
    "#;
    for seed in 0..10 {
        let mut seq = compiler.compile(&Constraint::Lark(grammar.into())).expect("grammar compiles");
        let (generation, _) = run_noise(&mut seq, seed, vocab, 200);
        let text = decode(&tokenizer, &generation.tokens);
        assert_eq!(generation.finish_reason, FinishReason::Constraint, "{text} {:?}", generation.error);
        let (name, rest) = text.split_once('(').unwrap_or_else(|| panic!("no call: {text}"));
        assert!((1..=8).contains(&name.len()) && name.chars().all(|c| c.is_ascii_lowercase()), "{text}");
        let args = rest.strip_suffix(')').unwrap_or_else(|| panic!("unclosed: {text}"));
        if !args.is_empty() {
            for number in args.split(',') {
                assert!((1..=3).contains(&number.len()) && number.chars().all(|c| c.is_ascii_digit()), "{text}");
            }
        }
    }
}

#[test]
fn running_out_of_tokens_is_reported_as_length_not_as_a_result() {
    let (compiler, tokenizer) = tiny_compiler();
    let vocab = tokenizer.get_vocab_size(true);
    let schema = schemas()[1].clone();
    let mut seq = compiler.compile(&Constraint::JsonSchema(schema)).expect("schema compiles");
    let (generation, _) = run_noise(&mut seq, 3, vocab, 5);
    assert_eq!(generation.finish_reason, FinishReason::Length);
    assert_eq!(generation.tokens.len(), 5);
    assert!(!seq.is_complete());
    let text = decode(&tokenizer, &generation.tokens);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "a 5-token prefix cannot be a whole order: {text}");
}

#[test]
fn invalid_constraints_are_refused_with_llguidance_reasons() {
    let (compiler, _) = tiny_compiler();
    let cases = [
        (Constraint::JsonSchema(json!({"type": "object", "properties": {"a": {"type": "strng"}}})), "strng"),
        (Constraint::JsonSchema(json!({"type": "integer", "minimum": 5, "maximum": 1})), "Unsatisfiable"),
        (Constraint::JsonSchema(json!(["not", "a", "schema"])), "JSON object"),
        (Constraint::Regex("(unclosed".into()), "regex parse error"),
        (Constraint::Lark("start: missing_rule".into()), "missing_rule"),
    ];
    for (constraint, reason) in cases {
        match compiler.compile(&constraint) {
            Err(EngineError::Constraint(message)) => assert!(message.contains(reason), "{constraint:?}: {message}"),
            Err(other) => panic!("{constraint:?}: wrong error kind {other}"),
            Ok(_) => panic!("{constraint:?} compiled"),
        }
    }
}

#[test]
fn committing_a_token_outside_the_mask_is_an_error_not_a_panic() {
    let (compiler, tokenizer) = tiny_compiler();
    let mut seq = compiler.compile(&Constraint::Regex("[0-9]+".into())).expect("regex compiles");
    seq.compute_mask().expect("mask computes");
    let letter = tokenizer.token_to_id("a").expect("byte token for 'a'");
    let err = seq.commit(letter).unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
}

#[test]
fn a_failing_model_ends_the_generation_with_its_error() {
    let (compiler, _) = tiny_compiler();
    let mut seq = compiler.compile(&Constraint::Regex("[0-9]{3}".into())).expect("regex compiles");
    let generation = generate(&mut seq, &mut Sampler::Greedy, 10, |_| Err(EngineError::Model("device lost".into())));
    assert_eq!(generation.finish_reason, FinishReason::Error);
    assert!(generation.error.as_deref().is_some_and(|e| e.contains("device lost")), "{:?}", generation.error);
    assert!(generation.tokens.is_empty());
}

#[test]
fn the_compiler_refuses_end_tokens_outside_the_vocabulary() {
    let TinyVocab { tokenizer, eos } = tiny_vocab(Value::Null);
    let too_big = ConstraintCompiler::new(&tokenizer, &[eos + 1]).err().expect("out-of-range eos refused");
    assert!(too_big.to_string().contains("outside the vocabulary"), "{too_big}");
    let none = ConstraintCompiler::new(&tokenizer, &[]).err().expect("missing eos refused");
    assert!(none.to_string().contains("end-of-sequence"), "{none}");
}

// ---------------------------------------------------------------------------------------------
// The real SmolLM2 vocabulary (49,152 tokens), when `../shared` is present.

fn smollm2_tokenizer() -> Option<Tokenizer> {
    let path = crate::support::smollm2_dir()?.join("tokenizer.json");
    Some(Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// SmolLM2's end tokens: `<|endoftext|>` and `<|im_end|>`.
fn smollm2_compiler(tokenizer: &Tokenizer) -> ConstraintCompiler {
    let eos: Vec<u32> =
        ["<|endoftext|>", "<|im_end|>"].iter().map(|t| tokenizer.token_to_id(t).expect("SmolLM2 has its end tokens")).collect();
    ConstraintCompiler::new(tokenizer, &eos).expect("the compiler builds on SmolLM2")
}

fn tool_call_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"enum": ["get_order_details", "cancel_pending_order", "find_user_id_by_email"]},
            "arguments": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "pattern": "^#W\\d{7}$"},
                    "reason": {"enum": ["no longer needed", "ordered by mistake"]}
                },
                "required": ["order_id", "reason"],
                "additionalProperties": false
            }
        },
        "required": ["name", "arguments"],
        "additionalProperties": false
    })
}

#[test]
fn smollm2_tool_call_schema_constrains_noise_to_valid_json() {
    let Some(tokenizer) = smollm2_tokenizer() else { return };
    let compiler = smollm2_compiler(&tokenizer);
    assert_eq!(compiler.vocab_size(), 49_152);
    let schema = tool_call_schema();
    for seed in 0..20 {
        let mut seq = compiler.compile(&Constraint::JsonSchema(schema.clone())).expect("schema compiles");
        let (generation, _) = run_noise(&mut seq, seed, compiler.vocab_size(), 120);
        let text = decode(&tokenizer, &generation.tokens);
        assert_eq!(generation.finish_reason, FinishReason::Constraint, "seed {seed}: {text} {:?}", generation.error);
        assert_valid_json(&schema, &text, &format!("seed {seed}"));
        let call: Value = serde_json::from_str(&text).expect("validated above");
        let id = call["arguments"]["order_id"].as_str().expect("validated above");
        assert!(id[2..].bytes().all(|b| b.is_ascii_digit()), "seed {seed}: `\\d` must mean ASCII digits: {id}");
    }
}

/// Prints the mean mask time on SmolLM2's vocabulary. Run with
/// `cargo test --release --test main smollm2_mask_time -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, run on demand"]
fn smollm2_mask_time() {
    let Some(tokenizer) = smollm2_tokenizer() else { return };
    let start = std::time::Instant::now();
    let compiler = smollm2_compiler(&tokenizer);
    let built = start.elapsed();
    let schema = schemas()[1].clone();
    let (mut total, mut masks, mut tokens) = (std::time::Duration::ZERO, 0, 0);
    for seed in 0..20 {
        let start = std::time::Instant::now();
        let mut seq = compiler.compile(&Constraint::JsonSchema(schema.clone())).expect("schema compiles");
        let compiled = start.elapsed();
        let (generation, _) = run_noise(&mut seq, seed, compiler.vocab_size(), 400);
        assert_eq!(generation.finish_reason, FinishReason::Constraint);
        if seed == 0 {
            eprintln!("compiler built in {built:?}; schema compiled in {compiled:?}");
        }
        total += seq.mask_stats().total;
        masks += seq.mask_stats().masks;
        tokens += generation.tokens.len();
    }
    eprintln!("{masks} masks for {tokens} tokens; mean {:?} per mask", total / masks as u32);
}

// ---------------------------------------------------------------------------------------------
// `auto` tool choice: free text until the format's trigger, a well-formed call after it.

/// Feeds `text` to `seq` token by token, computing each mask first; the first refusal's error.
fn feed(seq: &mut SeqConstraint, tokenizer: &Tokenizer, text: &str) -> Result<(), String> {
    let ids = tokenizer.encode(text, false).map_err(|e| e.to_string())?.get_ids().to_vec();
    for id in ids {
        seq.compute_mask().map_err(|e| e.to_string())?;
        seq.commit(id).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn auto_tools() -> Vec<Value> {
    vec![json!({"type": "function", "function": {"name": "get_order", "parameters": {
        "type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}})]
}

#[test]
fn auto_tool_choice_allows_free_text_and_constrains_from_the_trigger_on() {
    use apigen_mt::chat::tools::{tool_choice_constraint, ToolFormat};
    let TinyVocab { tokenizer, eos } = tiny_vocab(Value::Null);
    let compiler = ConstraintCompiler::new(&tokenizer, &[eos]).expect("the compiler builds");
    let constraint = tool_choice_constraint("auto", ToolFormat::Generic, &auto_tools())
        .expect("grammar builds")
        .expect("auto constrains when tools are offered");

    // Plain text, with brackets and braces but no trigger, ends where the model ends it.
    let mut plain = compiler.compile(&constraint).expect("compiles");
    feed(&mut plain, &tokenizer, "Sure {not a call} <b>tool</b>, anything goes.").expect("free text is allowed");
    plain.compute_mask().unwrap();
    plain.commit(eos).expect("free text may end");
    assert!(plain.is_complete());

    // After the trigger only the call may follow.
    let mut call = compiler.compile(&constraint).expect("compiles");
    feed(&mut call, &tokenizer, "Let me look. <tool_call>").expect("text then the trigger");
    let err = feed(&mut call, &tokenizer, "hello").expect_err("prose after the trigger is refused");
    assert!(err.contains("not allowed"), "{err}");

    let mut call = compiler.compile(&constraint).expect("compiles");
    feed(&mut call, &tokenizer, "Let me look. <tool_call>{\"name\":\"get_order\",\"arguments\":{\"id\":\"#W1\"}}</tool_call>")
        .expect("a well-formed call is accepted");
    let mut wrong = compiler.compile(&constraint).expect("compiles");
    let err = feed(&mut wrong, &tokenizer, "<tool_call>{\"name\":\"cancel_order\"").expect_err("unknown tool refused");
    assert!(err.contains("not allowed"), "{err}");
}

#[test]
fn auto_tool_choice_in_json_first_formats_reads_a_leading_brace_as_a_call() {
    use apigen_mt::chat::tools::{tool_choice_constraint, ToolFormat};
    let (compiler, tokenizer) = tiny_compiler();
    let constraint = tool_choice_constraint("auto", ToolFormat::Llama3, &auto_tools()).unwrap().unwrap();
    let mut text = compiler.compile(&constraint).unwrap();
    feed(&mut text, &tokenizer, "The order {id} is on its way.").expect("text that does not start with { is free");
    let mut call = compiler.compile(&constraint).unwrap();
    let err = feed(&mut call, &tokenizer, "{oops").expect_err("a leading brace starts a call");
    assert!(err.contains("not allowed"), "{err}");
}
