//! The few-shot sampler: example blueprints for the generator to imitate.
//!
//! The pool is the environment's own examples (a built-in domain's `examples.jsonl`) plus the
//! validated blueprints of earlier runs given with `--few-shot FILE…` (any JSONL whose lines
//! carry `instruction`, `actions` and `outputs`, such as a previous `blueprints.jsonl`).

use std::path::Path;

use anyhow::{bail, Context as _};
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// The example pool of the environment called `domain`: its own examples, then every line of
/// every `files` entry, in order.
pub fn pool(domain: &str, files: &[impl AsRef<Path>]) -> anyhow::Result<Vec<Value>> {
    let env = crate::env::resolve(domain)?;
    let mut pool = parse_lines(env.examples(), &format!("the examples of {}", env.name()))?;
    for file in files {
        let path = file.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading few-shot file {}", path.display()))?;
        pool.extend(parse_lines(&text, &path.display().to_string())?);
    }
    Ok(pool)
}

/// Each non-empty line, kept down to the three parts an example shows.
fn parse_lines(text: &str, origin: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("{origin}:{}: not JSON", i + 1))?;
        let (Some(instruction), Some(actions), Some(outputs)) = (
            v.get("instruction").and_then(Value::as_str),
            v.get("actions").filter(|a| a.is_array()),
            v.get("outputs").filter(|o| o.is_array()),
        ) else {
            bail!("{origin}:{}: a few-shot example needs instruction (string), actions and outputs (lists)", i + 1);
        };
        out.push(json!({"instruction": instruction, "actions": actions, "outputs": outputs}));
    }
    Ok(out)
}

/// `n` distinct examples drawn from `pool` with `seed` (fewer when the pool is smaller).
pub fn sample(pool: &[Value], seed: u64, n: usize) -> Vec<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked: Vec<usize> = sample_indices(&mut rng, pool.len(), n.min(pool.len())).into_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| pool[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pool_reads_seed_examples_and_files() {
        let seeds = pool("retail", &[] as &[&Path]).unwrap();
        assert!(!seeds.is_empty());
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, r#"{{"id": "x", "instruction": "You want a refund.", "actions": [], "outputs": ["42"]}}"#).unwrap();
        let more = pool("retail", &[file.path()]).unwrap();
        assert_eq!(more.len(), seeds.len() + 1);
        assert_eq!(more.last().unwrap()["outputs"][0], "42");
        assert!(more.last().unwrap().get("id").is_none());

        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, r#"{{"instruction": 3}}"#).unwrap();
        let err = format!("{:#}", pool("retail", &[bad.path()]).unwrap_err());
        assert!(err.contains(":1:") && err.contains("needs instruction"), "{err}");
    }

    #[test]
    fn sampling_is_seeded_and_bounded() {
        let pool: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        assert_eq!(sample(&pool, 3, 2), sample(&pool, 3, 2));
        assert_eq!(sample(&pool, 3, 2).len(), 2);
        assert_eq!(sample(&pool, 3, 9).len(), 5);
        assert!(sample(&[], 3, 2).is_empty());
    }
}
