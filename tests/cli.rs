//! The `apigen-mt` binary: `chat` and `models` on the real SmolLM2 GGUF, and bad input that must
//! end in exit code 2 with an `error:` line naming the file, never a panic.

use std::process::{Command, Output};

use candle_core::quantized::{gguf_file, GgmlDType};

use crate::model::tiny::Spec;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_apigen-mt"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).env("HF_HUB_OFFLINE", "1").output().expect("the binary runs")
}

/// Asserts a clean failure: exit code 2, an `error:` line that names `needle`, no panic.
fn assert_clean_failure(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn chat_prints_a_greedy_reply_from_the_real_model() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let gguf = dir.join("model-q4_1.gguf");
    let args = [
        "chat",
        "--model",
        gguf.to_str().unwrap(),
        "--prompt",
        "What is the capital of France?",
        "--temperature",
        "0",
        "--max-tokens",
        "16",
    ];
    let first = run(&args);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(!stdout.trim().is_empty());
    // Piped output is the reply alone, and greedy decoding repeats itself exactly.
    assert!(!stdout.contains("tokens/s"));
    assert_eq!(run(&args).stdout, first.stdout);
}

#[test]
fn models_inspect_json_describes_the_real_model() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let gguf = dir.join("model-q4_1.gguf");
    let output = run(&["models", "inspect", "--model", gguf.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let d: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(d["architecture"], "llama");
    assert_eq!(d["vocab_size"], 49152);
    assert_eq!(d["context_length"], 8192);
    assert!(d["weights"].as_str().unwrap().contains("Q4_1"), "{d}");
    assert_eq!(d["template_supports_tools"], false);
    assert!(d["parameters"].as_u64().unwrap() > 100_000_000, "{d}");
}

#[test]
fn models_list_shows_presets_as_table_and_json() {
    let output = run(&["models", "list"]);
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.starts_with("NAME") && table.contains("qwen2.5-0.5b-instruct"), "{table}");
    let output = run(&["models", "list", "--json"]);
    let presets: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let xlam = presets.iter().find(|p| p["name"] == "xlam-2-1b-fc-r").expect("xlam preset");
    assert_eq!(xlam["tool_format"], "xlam");
}

#[test]
fn a_missing_model_file_is_a_clean_error() {
    let output = run(&["chat", "--model", "/nonexistent/model.gguf", "--prompt", "hi"]);
    assert_clean_failure(&output, "/nonexistent/model.gguf");
}

#[test]
fn truncated_and_wrong_magic_gguf_files_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.gguf");
    // A valid header (magic, version 3) that stops in the middle of the tensor count.
    std::fs::write(&truncated, b"GGUF\x03\x00\x00\x00\x02\x00").unwrap();
    assert_clean_failure(&run(&["models", "inspect", "--model", truncated.to_str().unwrap()]), "truncated.gguf");

    let wrong = dir.path().join("wrong.gguf");
    std::fs::write(&wrong, b"NOPE this is not a model at all").unwrap();
    let output = run(&["chat", "--model", wrong.to_str().unwrap(), "--prompt", "hi"]);
    assert_clean_failure(&output, "not a GGUF file");
}

#[test]
fn an_unknown_architecture_and_a_shape_mismatch_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mamba = dir.path().join("mamba.gguf");
    Spec::llama().write_gguf_with(
        &mamba,
        |_| GgmlDType::F32,
        |metadata| {
            for (key, value) in metadata.iter_mut() {
                if key == "general.architecture" {
                    *value = gguf_file::Value::String("mamba".into());
                }
            }
        },
    );
    let output = run(&["models", "inspect", "--model", mamba.to_str().unwrap()]);
    assert_clean_failure(&output, "unsupported architecture \"mamba\"");

    // config.json promises a wider model than the tensors hold.
    let checkpoint = dir.path().join("checkpoint");
    std::fs::create_dir(&checkpoint).unwrap();
    Spec::llama().write_safetensors(&checkpoint);
    let mut config = Spec::llama().config_json();
    config["intermediate_size"] = serde_json::json!(128);
    std::fs::write(checkpoint.join("config.json"), config.to_string()).unwrap();
    std::fs::write(checkpoint.join("tokenizer.json"), "{}").unwrap();
    let output = run(&["models", "inspect", "--model", checkpoint.to_str().unwrap()]);
    assert_clean_failure(&output, "has shape");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&checkpoint.join("model.safetensors").display().to_string()), "{stderr}");
}

#[test]
fn a_broken_chat_template_is_a_clean_error() {
    let Some(shared) = crate::support::smollm2_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("model.gguf");
    std::os::unix::fs::symlink(shared.join("model-q4_1.gguf"), &gguf).unwrap();
    std::fs::copy(shared.join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    let config = dir.path().join("tokenizer_config.json");
    std::fs::write(&config, r#"{"chat_template": "{% for m in messages %}{{ m.content }"}"#).unwrap();
    assert_clean_failure(&run(&["chat", "--model", gguf.to_str().unwrap(), "--prompt", "hi"]), "tokenizer_config.json");
}

#[test]
fn gpu_devices_are_refused_with_the_way_to_an_inference_server() {
    for device in ["cuda", "metal:1"] {
        let output = run(&["chat", "--model", "/nonexistent.gguf", "--device", device, "--prompt", "hi"]);
        assert_clean_failure(&output, device);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("CPU only") && stderr.contains("http://127.0.0.1:8000/v1"), "{stderr}");
    }
}

#[test]
fn bench_reports_throughput_per_concurrency_as_json_and_verifies_invariance() {
    let dir = tempfile::tempdir().unwrap();
    crate::engine::tiny_model_with(dir.path(), Some(GgmlDType::Q8_0));
    let model = dir.path().to_str().unwrap();
    let args = ["bench", "--model", model, "--concurrency", "1,3", "--prompt-tokens", "48", "--gen-tokens", "8"];
    let output = run(&[&args[..], &["--shared-prefix", "40", "--json", "--verify"]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for (line, c) in lines.iter().zip([1, 3]) {
        assert_eq!(line["concurrency"], c);
        assert!(line["prefill_tok_s"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["decode_tok_s"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["peak_rss_mb"].as_f64().unwrap() > 0.0, "{line}");
        assert_eq!(line["batch_invariant"], true, "{line}");
    }
    // With three requests sharing a 40-token prefix, the later ones take it from the cache.
    assert!(lines[1]["prefix_hit_tokens"].as_u64().unwrap() >= 2 * 32, "{}", lines[1]);

    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, r#"{"type": "array", "items": {"type": "integer"}, "minItems": 12}"#).unwrap();
    let output = run(&[&args[..], &["--json", "--json-schema", schema.to_str().unwrap()]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let first: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&output.stdout).lines().next().unwrap()).unwrap();
    assert!(first["mask_us_per_token"].as_f64().unwrap() > 0.0, "{first}");

    let bad = run(&["bench", "--model", model, "--prompt-tokens", "8", "--shared-prefix", "8"]);
    assert_clean_failure(&bad, "--shared-prefix");
}

#[test]
fn bench_measures_a_preset_shape_with_random_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny-random.toml"), crate::engine::TINY_PRESET).unwrap();
    let bench = |args: &[&str]| {
        let mut all = vec!["bench"];
        all.extend(args);
        bin().args(all).env("APIGEN_MT_MODELS", dir.path()).env("HF_HUB_OFFLINE", "1").output().expect("the binary runs")
    };
    let args = ["--random-weights", "tiny-random", "--concurrency", "1,2", "--prompt-tokens", "40", "--gen-tokens", "6"];
    let output = bench(&[&args[..], &["--json", "--verify"]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for (line, c) in lines.iter().zip([1, 2]) {
        assert_eq!(
            (line["concurrency"].as_u64(), line["prompt_tokens"].as_u64(), line["gen_tokens"].as_u64()),
            (Some(c), Some(40), Some(6)),
            "{line}"
        );
        for field in ["prefill_tok_s", "decode_tok_s", "peak_rss_mb", "mean_batch"] {
            assert!(line[field].as_f64().unwrap() > 0.0, "{field}: {line}");
        }
        assert_eq!(line["batch_invariant"], true, "{line}");
    }

    let unknown = bench(&["--random-weights", "no-such-model"]);
    assert_clean_failure(&unknown, "no-such-model");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("llama-3.2-1b-instruct") && stderr.contains("tiny-random"), "the known presets are listed: {stderr}");
    let both = bench(&["--random-weights", "tiny-random", "--model", "tiny-random"]);
    assert_clean_failure(&both, "--model");
    let schema = bench(&[&args[..], &["--json-schema", "schema.json"]].concat());
    assert_clean_failure(&schema, "tokenizer");

    // The same weights as a GGUF file (the unit tests load such files back).
    let gguf = dir.path().join("tiny.gguf");
    let saved = bench(&["--random-weights", "tiny-random", "--save-gguf", gguf.to_str().unwrap()]);
    assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));
    let bytes = std::fs::read(&gguf).unwrap();
    assert!(bytes.starts_with(b"GGUF") && bytes.len() > 500_000, "{} bytes", bytes.len());
    let lonely = bench(&["--save-gguf", gguf.to_str().unwrap(), "--model", "x"]);
    assert_clean_failure(&lonely, "--random-weights");
}
