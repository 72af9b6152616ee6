//! The persona sampler: who the user in the task is, so instructions differ in voice and in
//! what the user knows, not only in which order they talk about.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

const TRAITS: &[&str] = &[
    "impatient",
    "meticulous",
    "cheerful",
    "skeptical",
    "forgetful",
    "polite",
    "blunt",
    "anxious",
    "chatty",
    "decisive",
    "indecisive",
    "frugal",
    "generous",
    "suspicious of upsells",
    "easily confused",
];
const OCCUPATIONS: &[&str] = &[
    "nurse",
    "high-school teacher",
    "software tester",
    "retired plumber",
    "graduate student",
    "chef",
    "truck driver",
    "accountant",
    "florist",
    "museum guide",
    "freelance translator",
    "farmer",
    "pharmacist",
];
const TONES: &[&str] = &["formal", "casual", "terse", "warm", "frustrated", "apologetic", "businesslike"];
const KNOWLEDGE: &[&str] = &[
    "knows every id by heart",
    "knows their email but no ids",
    "remembers product names but not order numbers",
    "has the confirmation email open",
    "is unsure which order is which",
];

/// A user persona: a couple of traits, a job, a tone and what they know about their account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Persona {
    pub traits: Vec<&'static str>,
    pub occupation: &'static str,
    pub tone: &'static str,
    pub knowledge: &'static str,
}

impl std::fmt::Display for Persona {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a {} {}, {} in tone, who {}", self.traits.join(" and "), self.occupation, self.tone, self.knowledge)
    }
}

/// A persona drawn from the word lists with `seed`; one to three distinct traits.
pub fn sample(seed: u64) -> Persona {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(1..=3);
    let mut traits: Vec<&'static str> = Vec::new();
    while traits.len() < n {
        let t = TRAITS[rng.random_range(0..TRAITS.len())];
        if !traits.contains(&t) {
            traits.push(t);
        }
    }
    let mut pick = |list: &[&'static str]| list[rng.random_range(0..list.len())];
    Persona { traits, occupation: pick(OCCUPATIONS), tone: pick(TONES), knowledge: pick(KNOWLEDGE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personas_are_seeded_and_varied() {
        assert_eq!(sample(4), sample(4));
        let distinct: std::collections::BTreeSet<String> = (0..30).map(|s| sample(s).to_string()).collect();
        assert!(distinct.len() >= 25, "only {} distinct personas of 30", distinct.len());
        let p = sample(9);
        assert!((1..=3).contains(&p.traits.len()));
        assert!(p.to_string().contains(p.occupation));
    }
}
