//! The SmolLM2 `run` split into three shards, run one after another, then merged: the merged
//! directory holds the unsharded run's dataset and record files byte for byte, and its stats
//! count the same records.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::smollm2::{command, whole};

const FILES: [&str; 6] = [
    "blueprints.jsonl",
    "blueprints.rejected.jsonl",
    "trajectories.jsonl",
    "trajectories.rejected.jsonl",
    "dataset.sharegpt.jsonl",
    "dataset.openai.jsonl",
];

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

fn stats(dir: &Path) -> Value {
    serde_json::from_str(&read(dir, "stats.json")).expect("stats.json is JSON")
}

#[test]
fn three_smollm2_shards_merge_to_the_files_of_the_unsharded_run() {
    let Some((gguf, whole)) = whole() else { return };
    let validated = read(whole, "blueprints.jsonl").lines().count();
    assert!(validated >= 2, "the unsharded run validated {validated} blueprints; the comparison needs two or more");
    let root = tempfile::tempdir().unwrap();
    let shards: Vec<_> = (0..3).map(|i| root.path().join(format!("shard-{i}"))).collect();
    let mut committed = 0;
    for (i, dir) in shards.iter().enumerate() {
        let output = command(&gguf, dir).args(["--shard", &format!("{i}/3")]).output().expect("the binary runs");
        assert!(output.status.success(), "shard {i}/3: {}", String::from_utf8_lossy(&output.stderr));
        committed += usize::from(!read(dir, "blueprints.jsonl").is_empty());
    }
    assert!(committed >= 2, "only {committed} shard(s) validated a blueprint, so the merge interleaves nothing");

    let merged = root.path().join("merged");
    let output = Command::new(env!("CARGO_BIN_EXE_apigen-mt")).arg("merge").arg(&merged).args(&shards).output().expect("the binary runs");
    assert!(output.status.success(), "merge: {}", String::from_utf8_lossy(&output.stderr));
    for name in FILES {
        assert_eq!(read(&merged, name), read(whole, name), "{name} of the merged shards differs from the unsharded run's");
    }
    for name in ["dataset.sharegpt.parquet", "dataset.openai.parquet"] {
        let parquet = |dir: &Path| apigen_mt::dataset::parquet::read(&dir.join(name)).expect(name);
        assert_eq!(parquet(&merged), parquet(whole), "{name}");
    }
    let (merged_stats, whole_stats) = (stats(&merged), stats(whole));
    for key in ["blueprints", "trajectories", "dataset", "funnel"] {
        assert_eq!(merged_stats[key], whole_stats[key], "stats.json {key}");
    }
    assert_eq!(merged_stats["timing"]["shards"].as_array().map(Vec::len), Some(3), "{}", merged_stats["timing"]);
}
