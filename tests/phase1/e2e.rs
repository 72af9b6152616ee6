//! `apigen-mt blueprints` on the real SmolLM2 GGUF, sized for a test: the run completes, the
//! files are well formed, the stats add up, the sampled actions stay fixed while the model
//! revises its write-up, and the same seed gives the same files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn blueprints(gguf: &Path, out: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_apigen-mt"))
        .args(["blueprints", "--domain", "retail", "--model", gguf.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--count", "1", "--max-attempts", "2", "--reviewers", "1", "--rounds", "1", "--seed", "3", "--trace"])
        .args(["--generator-max-tokens", "200", "--reviewer-max-tokens", "96", "--summarizer-max-tokens", "48"])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).unwrap()).unwrap();
    stats
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Two runs of two attempts (the same seed must give the same files): 157 s in release on 2
/// cores with the AVX2 kernels, most of it prefill of the generator's 2,500-token prompts.
#[test]
fn blueprints_run_on_smollm2_is_complete_consistent_and_reproducible() {
    let Some(gguf) = crate::support::smollm2_dir().map(|d| d.join("model-q4_1.gguf")) else { return };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let stats = blueprints(&gguf, a.path());
    eprintln!("smollm2 blueprint stats: {stats}");
    let counts = &stats["blueprints"];
    let attempted = counts["attempted"].as_u64().unwrap();
    let validated = counts["validated"].as_u64().unwrap();
    assert!((1..=2).contains(&attempted));
    assert!(validated <= 1);
    assert_eq!(jsonl(&a.path().join("blueprints.jsonl")).len() as u64, validated);
    let rejected = jsonl(&a.path().join("blueprints.rejected.jsonl"));
    assert_eq!(rejected.len() as u64, attempted - validated);
    let by_stage: u64 = counts["rejected_by_stage"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_stage, attempted - validated);
    for r in &rejected {
        assert!(r["stage"].is_string() && r["reason"].is_string(), "{r}");
    }
    let trace = jsonl(&a.path().join("trace.jsonl"));
    assert!(trace.iter().any(|t| t["role"] == "generator"));

    // Sampled actions (the default): every generator prompt of a task lists the same calls, a
    // revision's included, the model answers with a write-up that has no actions of its own,
    // and a validated blueprint carries exactly the listed calls.
    let mut calls: BTreeMap<u64, Vec<Vec<Value>>> = BTreeMap::new();
    for t in trace.iter().filter(|t| t["role"] == "generator") {
        let prompt = t["prompt"].as_str().unwrap();
        let listed = prompt.split_once("\nThe calls:\n").map_or("", |(_, rest)| rest);
        let listed: Vec<Value> = listed
            .lines()
            .map_while(|l| l.split_once(". ").filter(|(n, _)| n.parse::<usize>().is_ok()))
            .map(|(_, call)| serde_json::from_str(call).unwrap_or_else(|e| panic!("{call}: {e}")))
            .collect();
        assert!(!listed.is_empty(), "a generator prompt without its sampled calls: {prompt}");
        if let Some(reply) = t["completion"].as_str().and_then(|c| serde_json::from_str::<Value>(c).ok()) {
            assert!(reply.get("actions").is_none(), "the write-up drafted actions: {reply}");
        }
        calls.entry(t["task"].as_u64().unwrap()).or_default().push(listed);
    }
    assert!(calls.values().any(|c| c.len() > 1), "no task was revised, so the fixed actions went untested: {calls:?}");
    for (task, listed) in &calls {
        assert!(listed.iter().all(|l| l == &listed[0]), "task {task}: a revision changed the calls: {listed:?}");
    }
    for bp in jsonl(&a.path().join("blueprints.jsonl")) {
        let listed = &calls[&bp["task"].as_u64().unwrap()][0];
        assert_eq!(bp["actions"].as_array().unwrap(), listed, "{bp}");
    }

    blueprints(&gguf, b.path());
    for file in ["blueprints.jsonl", "blueprints.rejected.jsonl", "trace.jsonl"] {
        let read = |dir: &Path| std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(read(a.path()), read(b.path()), "{file} differs between two runs with the same seed");
    }
}
