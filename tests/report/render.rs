//! The exact prompt a model is given: `models render` against Python jinja2's renderings (under
//! transformers' settings) of the stored template fixtures, and Phase 1's trace carrying each
//! request's rendered prompt.

use std::path::{Path, PathBuf};

use apigen_mt::blueprint::run::{run, Progress, Run};
use apigen_mt::chat::Message;
use apigen_mt::config::SettingsFile;
use apigen_mt::dataset::rundir::{RunDir, BLUEPRINTS, BLUEPRINTS_REJECTED, TRACE};
use apigen_mt::engine::loaded::{LoadOptions, LoadedModel, TextModel};
use apigen_mt::engine::{self, EngineConfig, Prompt};
use apigen_mt::prompts::Prompts;
use apigen_mt::roles::Models;
use apigen_mt::samplers::fewshot;
use serde_json::{json, Value};

use super::bin;
use crate::engine::tiny_model;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A tiny model directory whose chat template is fixture `name`, with the special tokens the
/// fixtures were rendered with.
fn model_with_template(dir: &Path, name: &str, expected: &Value) {
    tiny_model(dir);
    let template = std::fs::read_to_string(fixtures().join(format!("{name}.jinja"))).unwrap();
    let config = json!({"chat_template": template, "bos_token": expected["bos_token"], "eos_token": expected["eos_token"]});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

/// Runs `models render` on every case of `cases` and compares with jinja2's output (or error).
fn check(model: &Path, date: &str, cases: &Value, thinking: Option<bool>) -> usize {
    let cases = cases.as_object().unwrap();
    for (stem, want) in cases {
        let conversation = fixtures().join("conversations").join(format!("{stem}.json"));
        let mut cmd = bin();
        cmd.args(["models", "render", "-m"]).arg(model).arg("--messages").arg(&conversation).args(["--date", date]);
        if read_json(&conversation)["add_generation_prompt"] == true {
            cmd.arg("--add-generation-prompt");
        }
        if let Some(t) = thinking {
            cmd.args(["--thinking", &t.to_string()]);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).to_string());
        match want.get("output").and_then(Value::as_str) {
            Some(text) => assert_eq!(stdout, text, "{} × {stem} (thinking {thinking:?}): {stderr}", model.display()),
            None => {
                assert_eq!(out.status.code(), Some(2), "{stem} should fail: {stdout}");
                assert!(stderr.contains(want["error"].as_str().unwrap()) && !stderr.contains("panicked"), "{stderr}");
            }
        }
    }
    cases.len()
}

#[test]
fn models_render_equals_jinja2_on_the_template_fixtures() {
    let mut checked = 0;
    for name in ["hermes", "llama3", "mistral", "qwen3", "xlam"] {
        let expected = read_json(&fixtures().join("expected").join(format!("{name}.json")));
        let dir = tempfile::tempdir().unwrap();
        model_with_template(dir.path(), name, &expected);
        let d = expected["date"].as_array().unwrap();
        let date = format!("{}-{:02}-{:02}", d[0], d[1].as_u64().unwrap(), d[2].as_u64().unwrap());
        checked += check(dir.path(), &date, &expected["cases"], None);
        if let Some(by_flag) = expected.get("enable_thinking") {
            for flag in [true, false] {
                checked += check(dir.path(), &date, &by_flag[flag.to_string()], Some(flag));
            }
        }
    }
    assert_eq!(checked, 38, "every fixture case");
}

#[test]
fn models_render_prints_the_token_ids_the_engine_uses() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path());
    let chat = dir.path().join("chat.json");
    std::fs::write(&chat, json!([{"role": "user", "content": "hi there"}]).to_string()).unwrap();
    let out = bin()
        .args(["models", "render", "--add-generation-prompt", "--json", "-m"])
        .arg(dir.path())
        .arg("--messages")
        .arg(&chat)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["prompt"], "<|user|>hi there</s><|assistant|>");
    let model = LoadedModel::load(dir.path().to_str().unwrap(), &LoadOptions::from_env(true).unwrap()).unwrap();
    let prompt = Prompt::chat(vec![Message::user("hi there")]);
    let ids: Vec<u32> = serde_json::from_value(shown["tokens"].clone()).unwrap();
    assert_eq!(ids, model.frontend.tokenize(&prompt).unwrap());

    // --tokens prints the text, then the ids on a line of their own.
    let out = bin().args(["models", "render", "--tokens", "-m"]).arg(dir.path()).arg("--messages").arg(&chat).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (prompt_text, last) = text.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(prompt_text, "<|user|>hi there</s>");
    let text_model = TextModel::load(dir.path().to_str().unwrap(), &LoadOptions::from_env(true).unwrap()).unwrap();
    assert_eq!(serde_json::from_str::<Vec<u32>>(last).unwrap(), text_model.encode(prompt_text).unwrap());

    // A message with an unknown role is refused naming the file and the message.
    std::fs::write(&chat, json!({"messages": [{"role": "robot", "content": "x"}]}).to_string()).unwrap();
    let out = bin().args(["models", "render", "-m"]).arg(dir.path()).arg("--messages").arg(&chat).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chat.json") && stderr.contains("message 0") && stderr.contains("robot"), "{stderr}");
}

#[test]
fn the_trace_records_each_request_as_the_chat_template_renders_it() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    std::fs::create_dir(&model_dir).unwrap();
    tiny_model(&model_dir);
    let options = LoadOptions::from_env(true).unwrap();
    let engine = engine::start(LoadedModel::load(model_dir.to_str().unwrap(), &options).unwrap(), EngineConfig::default()).unwrap();
    let text = TextModel::load(model_dir.to_str().unwrap(), &options).unwrap();
    // One attempt of a random model: its output is no blueprint, which is all this needs.
    let settings = toml::from_str::<SettingsFile>(
        "domain = 'retail'\nmodel = 'tiny'\nseed = 1\ntasks = 1\nmax_attempts = 1\nrounds = 0\nreviewers = 1\nconcurrency = 1\nrecombine = 0\n[generator]\ntemperature = 0.0\nmax_tokens = 8\n",
    )
    .unwrap()
    .resolve()
    .unwrap();
    let mut config = apigen_mt::blueprint::run::RunConfig::from_settings(&settings, true).unwrap();
    config.progress = false;
    let out_dir = dir.path().join("run");
    let mut out =
        RunDir::open(&out_dir, "blueprints", &settings, json!({"trace": true}), &[BLUEPRINTS, BLUEPRINTS_REJECTED, TRACE]).unwrap();
    let models = Models::single(engine);
    let prompts = Prompts::load(None).unwrap();
    let pool = fewshot::pool("retail", &[] as &[&Path]).unwrap();
    let slots = apigen_mt::schedule::Slots::new(1);
    run(Run { models: &models, prompts: &prompts, config: &config, pool: &pool, slots: &slots }, &mut out, Progress::default(), Vec::new())
        .unwrap();
    let trace = apigen_mt::dataset::jsonl::read_values(&out_dir.join(TRACE)).unwrap();
    assert!(!trace.is_empty());
    for entry in &trace {
        let prompt = entry["prompt"].as_str().unwrap();
        let rendered = entry["rendered_prompt"].as_str().expect("the rendered prompt");
        assert_eq!(rendered, format!("<|user|>{prompt}</s><|assistant|>"), "the tiny model's template around the role prompt");
        assert_eq!(Some(rendered.to_string()), text.render(&Prompt::chat(vec![Message::user(prompt)])).unwrap());
    }
}
