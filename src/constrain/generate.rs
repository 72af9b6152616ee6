//! A minimal constrained decode loop over any next-token function: the reference for how the
//! engine drives a [`SeqConstraint`], and what tests use with a stand-in model.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::sequence::SeqConstraint;
use crate::response::{EngineError, FinishReason};

/// How a token is picked from masked logits. Deliberately only greedy and plain temperature:
/// nucleus/top-k/penalties belong to the engine's sampler.
#[derive(Debug, Clone)]
pub enum Sampler {
    /// The highest logit; ties go to the lowest token id.
    Greedy,
    /// Softmax of `logits / temperature`, drawn from a stream seeded per request.
    /// The stream is boxed: it is 300 bytes, and most samplers are greedy.
    Temperature { temperature: f32, rng: Box<ChaCha8Rng> },
}

impl Sampler {
    /// A temperature sampler seeded with `seed`; a temperature of 0 (or less) means greedy.
    pub fn new(temperature: f32, seed: u64) -> Self {
        if temperature > 0.0 {
            Sampler::Temperature { temperature, rng: Box::new(ChaCha8Rng::seed_from_u64(seed)) }
        } else {
            Sampler::Greedy
        }
    }

    /// The picked token, or `None` when no logit is finite (everything was masked out).
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        let candidates = logits.iter().enumerate().filter(|(_, l)| l.is_finite());
        let (best, &max) = candidates.clone().fold(None, |best: Option<(usize, &f32)>, (i, l)| match best {
            Some((_, b)) if *b >= *l => best,
            _ => Some((i, l)),
        })?;
        let index = match self {
            Sampler::Greedy => best,
            Sampler::Temperature { temperature, rng } => {
                let t = f64::from(*temperature);
                let weight = |l: f32| ((f64::from(l) - f64::from(max)) / t).exp();
                let total: f64 = candidates.clone().map(|(_, &l)| weight(l)).sum();
                let mut remaining = rng.random::<f64>() * total;
                // Falls back to the best token only through rounding at the very end of the sum.
                candidates
                    .clone()
                    .find(|&(_, &l)| {
                        remaining -= weight(l);
                        remaining < 0.0
                    })
                    .map_or(best, |(i, _)| i)
            }
        };
        u32::try_from(index).ok()
    }
}

/// The output of [`generate`]: what the engine turns into a `Completion`.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated and forced tokens, without the end-of-sequence token.
    pub tokens: Vec<u32>,
    /// `Constraint` when the grammar completed; `Length` when `max_tokens` ran out first (the
    /// tokens are then an unfinished prefix and must not be treated as valid); `Error` on a
    /// model or grammar failure, with `error` saying why.
    pub finish_reason: FinishReason,
    pub error: Option<String>,
}

/// Generates up to `max_tokens` tokens under `seq`. `next_logits` receives every token generated
/// so far (the prompt is its own business) and returns the logits for the next position. Forced
/// tokens are appended without a sampling step, so consecutive calls may see several new tokens.
pub fn generate(
    seq: &mut SeqConstraint,
    sampler: &mut Sampler,
    max_tokens: usize,
    next_logits: impl FnMut(&[u32]) -> Result<Vec<f32>, EngineError>,
) -> Generation {
    let mut tokens = Vec::new();
    match decode(seq, sampler, max_tokens, next_logits, &mut tokens) {
        Ok(finish_reason) => Generation { tokens, finish_reason, error: None },
        Err(error) => Generation { tokens, finish_reason: FinishReason::Error, error: Some(error) },
    }
}

fn decode(
    seq: &mut SeqConstraint,
    sampler: &mut Sampler,
    max_tokens: usize,
    mut next_logits: impl FnMut(&[u32]) -> Result<Vec<f32>, EngineError>,
    tokens: &mut Vec<u32>,
) -> Result<FinishReason, String> {
    loop {
        if seq.is_complete() {
            return Ok(FinishReason::Constraint);
        }
        let forced = seq.take_forced_tokens().map_err(|e| e.to_string())?;
        if !forced.is_empty() {
            let room = max_tokens.saturating_sub(tokens.len());
            tokens.extend(forced.iter().take(room));
            if forced.len() > room {
                return Ok(FinishReason::Length);
            }
            continue;
        }
        if tokens.len() >= max_tokens {
            return Ok(FinishReason::Length);
        }
        let mut logits = next_logits(tokens).map_err(|e| e.to_string())?;
        seq.apply_mask(&mut logits).map_err(|e| e.to_string())?;
        let token =
            sampler.sample(&logits).ok_or_else(|| "no token has a finite logit once the constraint's mask is applied".to_string())?;
        seq.commit(token).map_err(|e| e.to_string())?;
        if seq.is_eos(token) {
            // The mask offers end-of-sequence only where the grammar may end, so this completes it.
            return if seq.is_complete() {
                Ok(FinishReason::Constraint)
            } else {
                Err(format!("end-of-sequence token {token} was accepted before the grammar was complete"))
            };
        }
        tokens.push(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn greedy_picks_the_highest_finite_logit_and_the_lowest_id_on_ties() {
        let mut s = Sampler::new(0.0, 1);
        assert_eq!(s.sample(&[0.5, NEG, 2.0, 2.0, f32::NAN]), Some(2));
        assert_eq!(s.sample(&[NEG, NEG]), None);
        assert_eq!(s.sample(&[]), None);
    }

    #[test]
    fn temperature_sampling_never_picks_a_masked_token_and_is_seeded() {
        let logits = [1.0, NEG, 1.0, NEG, 0.5];
        let draw = |seed| {
            let mut s = Sampler::new(1.0, seed);
            (0..200).map(|_| s.sample(&logits).unwrap()).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert!(a.iter().all(|t| [0, 2, 4].contains(t)), "{a:?}");
        assert!([0, 2, 4].iter().all(|t| a.contains(t)), "every allowed token should appear: {a:?}");
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
    }

    #[test]
    fn low_temperature_concentrates_on_the_best_token() {
        let mut s = Sampler::new(0.01, 3);
        let picks: Vec<u32> = (0..50).map(|_| s.sample(&[1.0, 3.0, 2.0]).unwrap()).collect();
        assert!(picks.iter().all(|&t| t == 1), "{picks:?}");
    }
}
