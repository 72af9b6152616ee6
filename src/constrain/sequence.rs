//! One sequence's grammar state during decoding: mask, commit, forced tokens, completion.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llguidance::api::StopReason;
use llguidance::toktrie::SimpleVob;
use llguidance::Matcher;
use rayon::prelude::*;

/// A constrained sequence that cannot continue: the grammar rejected a token or hit an internal
/// limit. The request should end with `FinishReason::Error` and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("constrained decoding failed: {0}")]
pub struct ConstraintError(pub String);

/// Time spent computing masks, for the engine's "per-token mask time" metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaskStats {
    pub masks: u64,
    pub total: Duration,
}

impl MaskStats {
    /// Mean time per mask; `None` before the first one.
    pub fn mean(&self) -> Option<Duration> {
        u32::try_from(self.masks).ok().filter(|&n| n > 0).map(|n| self.total / n)
    }
}

/// One sequence's constraint. The decode loop per step is:
/// [`compute_mask`](Self::compute_mask) (or [`compute_masks`] for a batch) →
/// [`apply_mask`](Self::apply_mask) → sample → [`commit`](Self::commit) →
/// [`take_forced_tokens`](Self::take_forced_tokens), until [`is_complete`](Self::is_complete).
pub struct SeqConstraint {
    matcher: Matcher,
    eos_token_ids: Arc<[u32]>,
    /// The mask for the step about to be sampled; cleared by every commit.
    mask: Option<SimpleVob>,
    stats: MaskStats,
}

impl SeqConstraint {
    pub(crate) fn new(matcher: Matcher, eos_token_ids: Arc<[u32]>) -> Self {
        Self { matcher, eos_token_ids, mask: None, stats: MaskStats::default() }
    }

    /// Computes the allowed-token mask for the next step (once; later calls reuse it until the
    /// next commit). A completed grammar allows only the end-of-sequence tokens.
    pub fn compute_mask(&mut self) -> Result<(), ConstraintError> {
        if self.mask.is_some() {
            return Ok(());
        }
        let start = Instant::now();
        let mask = self.matcher.compute_mask_or_eos();
        self.stats.masks += 1;
        self.stats.total += start.elapsed();
        self.mask = Some(mask.map_err(|e| self.failure(e))?);
        Ok(())
    }

    /// Sets every disallowed token's logit to -inf. Logits past the vocabulary (models often pad
    /// their output layer) are disallowed too.
    pub fn apply_mask(&mut self, logits: &mut [f32]) -> Result<(), ConstraintError> {
        self.compute_mask()?;
        if let Some(mask) = &self.mask {
            mask_logits(mask, logits);
        }
        Ok(())
    }

    /// Advances the grammar by the sampled token. An end-of-sequence token is accepted where the
    /// grammar may end, and completes it.
    pub fn commit(&mut self, token: u32) -> Result<(), ConstraintError> {
        if let Some(mask) = &self.mask {
            if !allows(mask, token) {
                return Err(ConstraintError(format!("token {token} is not allowed by the constraint here")));
            }
        }
        self.mask = None;
        self.matcher.consume_token(token).map_err(|e| self.failure(e))
    }

    /// Tokens the grammar now forces (e.g. `":` after a key), already committed. The engine
    /// appends them as one prefill chunk instead of sampling them one step at a time. Empty when
    /// the next token is a real choice or the grammar is complete.
    pub fn take_forced_tokens(&mut self) -> Result<Vec<u32>, ConstraintError> {
        if self.matcher.is_stopped() {
            return self.check_error().map(|()| Vec::new());
        }
        let forced = self.matcher.compute_ff_tokens();
        self.check_error()?;
        if !forced.is_empty() {
            self.mask = None;
            self.matcher.consume_tokens(&forced).map_err(|e| self.failure(e))?;
        }
        Ok(forced)
    }

    /// True once the output is a complete sentence of the grammar and nothing may follow (or an
    /// end-of-sequence token was committed where the grammar may end). The request then ends
    /// with `FinishReason::Constraint`.
    pub fn is_complete(&self) -> bool {
        !self.matcher.is_error() && matches!(self.matcher.stop_reason(), StopReason::NoExtension | StopReason::EndOfSentence)
    }

    /// Whether `token` ends a sequence for this model.
    pub fn is_eos(&self, token: u32) -> bool {
        self.eos_token_ids.contains(&token)
    }

    pub fn mask_stats(&self) -> MaskStats {
        self.stats
    }

    fn check_error(&self) -> Result<(), ConstraintError> {
        match self.matcher.get_error() {
            Some(message) => Err(ConstraintError::from_llguidance(&message)),
            None => Ok(()),
        }
    }

    fn failure(&self, error: anyhow::Error) -> ConstraintError {
        ConstraintError::from_llguidance(&self.matcher.get_error().unwrap_or_else(|| format!("{error:#}")))
    }
}

impl ConstraintError {
    /// llguidance marks errors whose parser dump was left out (we ask for short errors); the
    /// marker means nothing to a reader of the completion.
    fn from_llguidance(message: &str) -> Self {
        ConstraintError(message.trim_end().trim_end_matches("<non-verbose/>").trim_end().to_string())
    }
}

/// Computes the next-step masks of many sequences in parallel, so that one slow grammar does not
/// hold up the others and the batch's step waits only for the slowest mask. Results are in the
/// order of `seqs`; a failed sequence does not affect the rest.
pub fn compute_masks(seqs: &mut [&mut SeqConstraint]) -> Vec<Result<(), ConstraintError>> {
    seqs.par_iter_mut().map(|seq| seq.compute_mask()).collect()
}

fn allows(mask: &SimpleVob, token: u32) -> bool {
    (token as usize) < mask.len() && mask.is_allowed(token)
}

/// Word-at-a-time over the mask's bitset: a 50k vocabulary is ~1.5k words, most all-zero or
/// all-one.
fn mask_logits(mask: &SimpleVob, logits: &mut [f32]) {
    let in_vocab = mask.len().min(logits.len());
    let (covered, beyond) = logits.split_at_mut(in_vocab);
    beyond.fill(f32::NEG_INFINITY);
    for (chunk, &word) in covered.chunks_mut(32).zip(mask.as_slice()) {
        if word == u32::MAX {
            continue;
        }
        for (bit, logit) in chunk.iter_mut().enumerate() {
            if word & (1 << bit) == 0 {
                *logit = f32::NEG_INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_exactly_the_allowed_tokens() {
        let mut mask = SimpleVob::alloc(70);
        for token in [0, 31, 32, 33, 69] {
            mask.allow_token(token);
        }
        // 75 logits: five past the vocabulary, which must be disallowed too.
        let mut logits = vec![1.0f32; 75];
        mask_logits(&mask, &mut logits);
        let kept: Vec<usize> = (0..logits.len()).filter(|&i| logits[i].is_finite()).collect();
        assert_eq!(kept, vec![0, 31, 32, 33, 69]);
    }

    #[test]
    fn full_words_are_left_untouched() {
        let mut mask = SimpleVob::alloc(64);
        mask.set_all(true);
        let mut logits: Vec<f32> = (0..64).map(|i| i as f32).collect();
        mask_logits(&mask, &mut logits);
        assert!(logits.iter().enumerate().all(|(i, &l)| l == i as f32));
    }

    #[test]
    fn tokens_outside_the_mask_are_not_allowed() {
        let mut mask = SimpleVob::alloc(10);
        mask.allow_token(9);
        assert!(allows(&mask, 9));
        assert!(!allows(&mask, 8));
        assert!(!allows(&mask, 1000));
    }

    #[test]
    fn llguidance_markers_are_dropped_from_messages() {
        let err = ConstraintError::from_llguidance("token \"x\" doesn't satisfy the grammar\n<non-verbose/>");
        assert_eq!(err.0, "token \"x\" doesn't satisfy the grammar");
    }

    #[test]
    fn mean_mask_time() {
        assert_eq!(MaskStats::default().mean(), None);
        let stats = MaskStats { masks: 4, total: Duration::from_micros(100) };
        assert_eq!(stats.mean(), Some(Duration::from_micros(25)));
    }
}
