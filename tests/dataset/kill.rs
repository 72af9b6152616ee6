//! `apigen-mt run` on the real SmolLM2 GGUF, killed with SIGKILL part-way and run again: every
//! output file must equal that of the uninterrupted run (JSONL compared sorted line by line;
//! stats.json without its `timing`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::smollm2::{command, whole};

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn without_timing(path: &Path) -> Value {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("stats.json")).expect("JSON");
    v.as_object_mut().expect("an object").remove("timing");
    v
}

/// Whether the manifest shows at least one committed Phase 1 task.
fn committed_something(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|m| m["progress"]["blueprints"]["next_task"].as_u64())
        .is_some_and(|n| n >= 1)
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_files_of_an_uninterrupted_run() {
    let Some((gguf, whole)) = whole() else { return };
    let killed = tempfile::tempdir().unwrap();

    let mut child = command(&gguf, killed.path()).spawn().expect("the binary runs");
    let started = Instant::now();
    let mut killed_early = false;
    while child.try_wait().expect("wait").is_none() {
        if committed_something(killed.path()) || started.elapsed() > Duration::from_secs(600) {
            child.kill().expect("SIGKILL");
            killed_early = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    if !killed_early {
        eprintln!("notice: the run finished before it could be killed; comparing anyway");
    }
    let output = command(&gguf, killed.path()).output().expect("the binary runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    for name in [
        "blueprints.jsonl",
        "blueprints.rejected.jsonl",
        "trajectories.rejected.jsonl",
        "trajectories.jsonl",
        "dataset.sharegpt.jsonl",
        "dataset.openai.jsonl",
    ] {
        assert_eq!(sorted_lines(&killed.path().join(name)), sorted_lines(&whole.join(name)), "{name}");
    }
    assert_eq!(sorted_lines(&killed.path().join("manifest.json")), sorted_lines(&whole.join("manifest.json")));
    assert_eq!(without_timing(&killed.path().join("stats.json")), without_timing(&whole.join("stats.json")));
    for name in ["dataset.sharegpt.parquet", "dataset.openai.parquet"] {
        let read = |dir: &Path| apigen_mt::dataset::parquet::read(&dir.join(name)).expect(name);
        assert_eq!(read(killed.path()), read(whole), "{name}");
    }
}
