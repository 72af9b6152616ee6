//! Model spec resolution: local folders and files, the offline hub cache, presets, bad specs.

use std::fs;
use std::path::{Path, PathBuf};

use apigen_mt::model::source::{resolve, HubConfig};
use apigen_mt::model::WeightsSource;

fn touch(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn offline(cache: &Path) -> HubConfig {
    HubConfig { cache_dir: cache.to_path_buf(), token: None, endpoint: "http://127.0.0.1:9".into(), offline: true }
}

fn err(spec: &str, hub: &HubConfig) -> String {
    format!("{:#}", resolve(spec, hub).unwrap_err())
}

/// A fake cache entry `models--org--name/snapshots/<commit>/...` with `refs/main`.
fn cache_repo(cache: &Path, repo: &str, commit: &str, files: &[&str]) -> PathBuf {
    let dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    touch(&dir.join("refs").join("main"), commit);
    let snapshot = dir.join("snapshots").join(commit);
    for file in files {
        touch(&snapshot.join(file), "{}");
    }
    snapshot
}

#[test]
fn a_safetensors_directory_resolves_with_its_text_files() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        touch(&dir.path().join(f), "{}");
    }
    let hub = offline(dir.path());
    let model = resolve(dir.path().to_str().unwrap(), &hub).unwrap();
    assert_eq!(
        model.files.weights,
        WeightsSource::Safetensors { config: dir.path().join("config.json"), files: vec![dir.path().join("model.safetensors")] }
    );
    assert_eq!(model.files.tokenizer, Some(dir.path().join("tokenizer.json")));
    assert_eq!(model.files.generation_config, Some(dir.path().join("generation_config.json")));
    assert_eq!(model.files.chat_template, None);
    assert!(model.preset.is_none());
}

#[test]
fn sharded_safetensors_follow_the_index_and_missing_shards_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model-00001-of-00002.safetensors"] {
        touch(&dir.path().join(f), "{}");
    }
    touch(
        &dir.path().join("model.safetensors.index.json"),
        r#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#,
    );
    let hub = offline(dir.path());
    let message = err(dir.path().to_str().unwrap(), &hub);
    assert!(message.contains("model-00002-of-00002.safetensors"), "{message}");
    touch(&dir.path().join("model-00002-of-00002.safetensors"), "{}");
    let model = resolve(dir.path().to_str().unwrap(), &hub).unwrap();
    let WeightsSource::Safetensors { files, .. } = model.files.weights else { panic!("not safetensors") };
    assert_eq!(files.len(), 2);
}

#[test]
fn a_gguf_file_and_a_directory_with_one_gguf_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("model-q4.gguf");
    touch(&gguf, "");
    touch(&dir.path().join("tokenizer.json"), "{}");
    let hub = offline(dir.path());
    let by_file = resolve(gguf.to_str().unwrap(), &hub).unwrap();
    assert_eq!(by_file.files.weights, WeightsSource::Gguf(gguf.clone()));
    assert_eq!(by_file.files.tokenizer, Some(dir.path().join("tokenizer.json")));
    let by_dir = resolve(dir.path().to_str().unwrap(), &hub).unwrap();
    assert_eq!(by_dir.files.weights, WeightsSource::Gguf(gguf));

    touch(&dir.path().join("model-q8.gguf"), "");
    let message = err(dir.path().to_str().unwrap(), &hub);
    assert!(message.contains("several GGUF files") && message.contains("model-q8.gguf"), "{message}");
}

#[test]
fn folders_without_weights_or_tokenizer_are_refused_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let hub = offline(dir.path());
    let message = err(dir.path().to_str().unwrap(), &hub);
    assert!(message.contains("no model weights") && message.contains(dir.path().to_str().unwrap()), "{message}");
    touch(&dir.path().join("config.json"), "{}");
    touch(&dir.path().join("model.safetensors"), "");
    let message = err(dir.path().to_str().unwrap(), &hub);
    assert!(message.contains("no tokenizer.json"), "{message}");
}

#[test]
fn offline_hub_ids_resolve_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let hub = offline(cache.path());
    let snapshot = cache_repo(cache.path(), "org/tiny-GGUF", "abc123", &["tiny-q4_k_m.gguf", "tiny-q8_0.gguf"]);
    let model = resolve("org/tiny-GGUF:tiny-q8_0.gguf", &hub).unwrap();
    assert_eq!(model.files.weights, WeightsSource::Gguf(snapshot.join("tiny-q8_0.gguf")));
    assert_eq!(model.name, "org/tiny-GGUF:tiny-q8_0.gguf");

    // A pinned commit is read from snapshots/ directly.
    let model = resolve("org/tiny-GGUF@abc123:tiny-q4_k_m.gguf", &hub).unwrap();
    assert_eq!(model.files.weights, WeightsSource::Gguf(snapshot.join("tiny-q4_k_m.gguf")));

    let snapshot = cache_repo(cache.path(), "org/tiny", "def456", &["config.json", "model.safetensors", "tokenizer.json"]);
    let model = resolve("org/tiny", &hub).unwrap();
    assert_eq!(model.files.tokenizer, Some(snapshot.join("tokenizer.json")));
}

#[test]
fn offline_cache_misses_say_offline_and_where() {
    let cache = tempfile::tempdir().unwrap();
    let hub = offline(cache.path());
    let message = err("org/absent", &hub);
    assert!(message.contains("offline") && message.contains(cache.path().to_str().unwrap()), "{message}");
    cache_repo(cache.path(), "org/tiny-GGUF", "abc123", &["tiny-q4_k_m.gguf"]);
    let message = err("org/tiny-GGUF:other.gguf", &hub);
    assert!(message.contains("other.gguf") && message.contains("tiny-q4_k_m.gguf"), "{message}");
    let message = err("org/tiny-GGUF@v2", &hub);
    assert!(message.contains("org/tiny-GGUF@v2"), "{message}");
}

#[test]
fn presets_resolve_through_the_cache_and_keep_their_metadata() {
    let cache = tempfile::tempdir().unwrap();
    let hub = offline(cache.path());
    let message = err("qwen2.5-0.5b-instruct", &hub);
    assert!(message.contains("preset qwen2.5-0.5b-instruct") && message.contains("offline"), "{message}");
    cache_repo(cache.path(), "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "c0ffee", &["qwen2.5-0.5b-instruct-q4_k_m.gguf"]);
    let model = resolve("qwen2.5-0.5b-instruct", &hub).unwrap();
    let preset = model.preset.expect("preset kept");
    assert_eq!((preset.context_length, preset.tool_format.name()), (32768, "hermes"));
    assert_eq!(model.name, "qwen2.5-0.5b-instruct");
}

#[test]
fn bad_specs_are_explained() {
    let cache = tempfile::tempdir().unwrap();
    let hub = offline(cache.path());
    let message = err("no-such-model", &hub);
    assert!(message.contains("unknown model") && message.contains("smollm2-135m-instruct"), "{message}");
    let message = err("./missing/model.gguf", &hub);
    assert!(message.contains("no such file") && message.contains("./missing/model.gguf"), "{message}");
    let message = err("a/b/c", &hub);
    assert!(message.contains("a/b/c"), "{message}");
    let file = cache.path().join("notes.txt");
    touch(&file, "hi");
    let message = err(file.to_str().unwrap(), &hub);
    assert!(message.contains("expected a model directory or a .gguf file"), "{message}");
}
