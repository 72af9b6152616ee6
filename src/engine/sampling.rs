//! Picking the next token from a row of logits.
//!
//! The pipeline, in order: repeat penalty over the recent tokens; then either greedy argmax
//! (`temperature == 0`) or temperature scaling, top-k, min-p, top-p and a draw from what is
//! left. Candidates are ordered by logit with ties broken by the lower token id, and the
//! probabilities are summed in that order in f64, so that the same logits and seed give the same
//! token on every run.
//!
//! Each request owns a [`Sampler`] with its own ChaCha8 stream seeded from the request's seed:
//! what a request draws never depends on which other requests share the engine.

use std::cmp::Ordering;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::SamplingParams;

/// One request's sampler: its parameters and its random stream.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    pub fn new(params: &SamplingParams) -> Self {
        Self { params: params.clone(), rng: ChaCha8Rng::seed_from_u64(params.seed) }
    }

    /// Picks the next token. `logits` is modified in place (penalties, masking by the caller is
    /// kept); `history` is every token of the sequence so far, prompt included. Returns `None`
    /// when every logit is `-inf` or NaN, i.e. nothing may be emitted.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> Option<u32> {
        let p = &self.params;
        if p.repeat_penalty != 1.0 && p.repeat_last_n > 0 {
            apply_repeat_penalty(logits, history, p.repeat_penalty, p.repeat_last_n);
        }
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite() || **l == f32::INFINITY)
            .map(|(id, l)| (id as u32, *l / p.temperature))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        candidates.sort_by(by_logit_then_id);
        if p.top_k > 0 {
            candidates.truncate(p.top_k);
        }
        let probs = softmax(&candidates);
        let mut kept = probs.len();
        if p.min_p > 0.0 {
            let floor = f64::from(p.min_p) * probs[0];
            kept = probs.iter().take_while(|&&q| q >= floor).count().max(1);
        }
        if p.top_p < 1.0 {
            let mut mass = 0.0;
            let mut n = 0;
            for &q in &probs[..kept] {
                mass += q;
                n += 1;
                if mass >= f64::from(p.top_p) {
                    break;
                }
            }
            kept = n.max(1);
        }
        let total: f64 = probs[..kept].iter().sum();
        let mut target = self.rng.random::<f64>() * total;
        for (i, &q) in probs[..kept].iter().enumerate() {
            if target < q {
                return Some(candidates[i].0);
            }
            target -= q;
        }
        // Rounding left `target` a hair above the last mass: the last kept candidate it is.
        Some(candidates[kept - 1].0)
    }
}

/// Descending logit, ascending id on ties.
fn by_logit_then_id(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The id of the largest logit, the lowest id on ties; `None` when nothing is allowed.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    for (id, &l) in logits.iter().enumerate() {
        if l.is_nan() || l == f32::NEG_INFINITY {
            continue;
        }
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((id as u32, l));
        }
    }
    best.map(|(id, _)| id)
}

/// Makes recently used tokens less likely: positive logits are divided by `penalty`, negative
/// ones multiplied, so the token always moves away from being chosen. Each token counts once.
fn apply_repeat_penalty(logits: &mut [f32], history: &[u32], penalty: f32, last_n: usize) {
    let start = history.len().saturating_sub(last_n);
    let mut seen = std::collections::HashSet::new();
    for &id in &history[start..] {
        if !seen.insert(id) {
            continue;
        }
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if *l >= 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// Probabilities of sorted candidates (largest first), computed in f64.
fn softmax(candidates: &[(u32, f32)]) -> Vec<f64> {
    let max = f64::from(candidates[0].1);
    if max == f64::INFINITY {
        // Forced tokens: all the mass goes to the +inf ones, shared equally.
        return candidates.iter().map(|c| if c.1 == f32::INFINITY { 1.0 } else { 0.0 }).collect();
    }
    let exps: Vec<f64> = candidates.iter().map(|c| (f64::from(c.1) - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams { temperature, seed: 7, ..SamplingParams::default() }
    }

    /// Counts how often each id is drawn in `n` draws.
    fn histogram(p: &SamplingParams, logits: &[f32], n: usize) -> Vec<usize> {
        let mut sampler = Sampler::new(p);
        let mut counts = vec![0; logits.len()];
        for _ in 0..n {
            let id = sampler.sample(&mut logits.to_vec(), &[]).unwrap();
            counts[id as usize] += 1;
        }
        counts
    }

    #[test]
    fn greedy_takes_the_max_and_ties_go_to_the_lowest_id() {
        let mut s = Sampler::new(&SamplingParams::greedy());
        assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.9], &[]), Some(1));
        assert_eq!(s.sample(&mut [1.0, 5.0, 5.0, 5.0], &[]), Some(1));
        assert_eq!(s.sample(&mut [f32::NAN, f32::NEG_INFINITY, -7.0], &[]), Some(2));
        assert_eq!(s.sample(&mut [f32::NEG_INFINITY; 3], &[]), None);
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut s = Sampler::new(&SamplingParams { temperature: 1.0, seed, ..SamplingParams::default() });
            (0..40).map(|_| s.sample(&mut logits.clone(), &[]).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let logits = [0.0, 1.0];
        let cold = histogram(&params(0.2), &logits, 2000);
        let hot = histogram(&params(5.0), &logits, 2000);
        // At T=0.2 the odds are e^5 ≈ 148:1; at T=5 they are e^0.2 ≈ 1.22:1.
        assert!(cold[0] < 60, "{cold:?}");
        assert!(hot[0] > 800 && hot[0] < 1000, "{hot:?}");
    }

    #[test]
    fn top_k_keeps_only_the_k_best() {
        let logits = [1.0, 4.0, 3.0, 2.0, 3.0];
        let counts = histogram(&SamplingParams { top_k: 2, ..params(10.0) }, &logits, 500);
        // The best is id 1; id 2 and id 4 tie for second and the lower id wins the slot.
        assert_eq!((counts[0], counts[3], counts[4]), (0, 0, 0), "{counts:?}");
        assert!(counts[1] > 0 && counts[2] > 0);
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // Probabilities ≈ 0.64, 0.24, 0.09, 0.03.
        let logits = [3.0, 2.0, 1.0, 0.0];
        let counts = histogram(&SamplingParams { top_p: 0.8, ..params(1.0) }, &logits, 1000);
        assert_eq!((counts[2], counts[3]), (0, 0), "{counts:?}");
        assert!(counts[1] > 100, "{counts:?}");
        let counts = histogram(&SamplingParams { top_p: 0.5, ..params(1.0) }, &logits, 200);
        assert_eq!(counts[0], 200);
    }

    #[test]
    fn min_p_drops_the_unlikely_tail() {
        let logits = [3.0, 2.0, 1.0, 0.0];
        // p/p_max = 1, 0.37, 0.14, 0.05: min_p 0.1 keeps three.
        let counts = histogram(&SamplingParams { min_p: 0.1, ..params(1.0) }, &logits, 2000);
        assert_eq!(counts[3], 0, "{counts:?}");
        assert!(counts[2] > 0, "{counts:?}");
    }

    #[test]
    fn repeat_penalty_pushes_recent_tokens_down_either_sign() {
        let p = SamplingParams { repeat_penalty: 2.0, repeat_last_n: 2, ..SamplingParams::greedy() };
        let mut s = Sampler::new(&p);
        // id 0 is best at 2.0 but was used: 2.0 / 2 = 1.0 < 1.5.
        assert_eq!(s.sample(&mut [2.0, 1.5, -1.0], &[0]), Some(1));
        // Only the last 2 tokens count: 0 is outside the window now.
        assert_eq!(s.sample(&mut [2.0, 1.5, -1.0], &[0, 2, 2]), Some(0));
        let mut logits = [-1.0, -1.5];
        apply_repeat_penalty(&mut logits, &[0, 0], 2.0, 8);
        assert_eq!(logits, [-2.0, -1.5]);
    }

    #[test]
    fn masked_tokens_are_never_drawn_and_a_full_mask_gives_none() {
        let mut logits = vec![0.0; 8];
        for id in [0, 1, 2, 3, 5, 7] {
            logits[id] = f32::NEG_INFINITY;
        }
        let counts = histogram(&params(1.0), &logits, 300);
        assert_eq!(counts[4] + counts[6], 300);
        let mut s = Sampler::new(&params(1.0));
        assert_eq!(s.sample(&mut [f32::NEG_INFINITY; 4], &[]), None);
    }
}
