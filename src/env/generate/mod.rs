//! Generated databases: fresh, seeded worlds in τ-bench's data layout, so that the
//! τ-bench-compatible tools run on them unchanged and every task can start from a different
//! world. Each built-in domain keeps its generator in its own folder (`env/<domain>/generate.rs`);
//! this module holds what they share: names, addresses and dates ([`words`]), unique ids, and
//! money in cents.
//!
//! Determinism is the contract: the same `(domain, seed)` gives the same bytes on every
//! machine. Everything random goes through one `ChaCha8Rng` seeded from the seed, every
//! collection is ordered (`serde_json::Map` keeps insertion order, sets are `BTreeSet`), and
//! money is computed in integer cents so no float summation order can change a total.

pub mod words;

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::env::Db;

/// A fresh database for the environment called `domain`, entirely determined by `seed`.
pub fn generate(domain: &str, seed: u64) -> anyhow::Result<Db> {
    super::resolve(domain)?.generate(seed)
}

/// Hands out identifiers that are unique within one database.
#[derive(Default)]
pub(crate) struct Ids {
    taken: BTreeSet<String>,
}

impl Ids {
    /// A fresh id built by `make`, retried until it has not been handed out before.
    pub(crate) fn fresh(&mut self, rng: &mut ChaCha8Rng, mut make: impl FnMut(&mut ChaCha8Rng) -> String) -> String {
        loop {
            let id = make(rng);
            if self.taken.insert(id.clone()) {
                return id;
            }
        }
    }

    /// Marks ids that must never be generated (ids the tools create themselves).
    pub(crate) fn reserve(&mut self, ids: &[&str]) {
        self.taken.extend(ids.iter().map(|s| s.to_string()));
    }
}

/// A string of `n` random decimal digits, the first one non-zero.
pub(crate) fn digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    let mut s = rng.random_range(1..10u8).to_string();
    for _ in 1..n {
        s.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    s
}

/// A money amount in cents as the JSON number τ-bench stores (dollars with two decimals).
pub(crate) fn dollars(cents: i64) -> Value {
    Value::from(cents as f64 / 100.0)
}

/// A JSON money amount back in cents. Amounts in the databases have at most two decimals.
pub fn cents(v: &Value) -> Option<i64> {
    v.as_f64().map(|x| (x * 100.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_data() {
        for domain in ["retail", "airline"] {
            let a = serde_json::to_string(&generate(domain, 7).unwrap()).unwrap();
            let b = serde_json::to_string(&generate(domain, 7).unwrap()).unwrap();
            let c = serde_json::to_string(&generate(domain, 8).unwrap()).unwrap();
            assert_eq!(a, b, "{domain}: same seed must give the same bytes");
            assert_ne!(a, c, "{domain}: another seed must give other data");
        }
    }

    #[test]
    fn unknown_domain_is_a_clear_error() {
        let err = generate("bank", 0).unwrap_err().to_string();
        assert!(err.contains("'bank'") && err.contains("retail"), "{err}");
    }

    #[test]
    fn money_round_trips_through_cents() {
        for c in [0, 1, 99, 4784, 53665, 138079, 9999999] {
            assert_eq!(cents(&dollars(c)), Some(c));
        }
    }
}
