//! Rotary position embeddings, evaluated at each token's own position.
//!
//! A batched forward pass mixes tokens from many sequences, each at a different position, so the
//! cos/sin rows are gathered per token rather than sliced from one running offset. They are
//! computed on the fly (`position * inv_freq`, then `cos`/`sin` in f32), which gives the same
//! bits as a precomputed table and needs no table sized to the context length.

use super::config::ModelConfig;

/// Which pairs of head dimensions rotate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RopeStyle {
    /// Dimension `i` pairs with `i + head_dim/2` (Hugging Face weights, GGUF Qwen).
    Half,
    /// Dimension `2i` pairs with `2i + 1`. GGUF converters permute the rows of Llama's q/k
    /// projections so that this pairing reproduces the original model.
    Interleaved,
}

#[derive(Debug, Clone)]
pub(crate) struct Rope {
    inv_freq: Vec<f32>,
    style: RopeStyle,
}

impl Rope {
    /// `freq_factors` are GGUF's `rope_freqs.weight`: per-frequency divisors that encode Llama 3
    /// scaling in files whose metadata does not.
    pub(crate) fn new(config: &ModelConfig, style: RopeStyle, freq_factors: Option<&[f32]>) -> Self {
        let d = config.head_dim;
        let mut inv_freq: Vec<f32> = (0..d).step_by(2).map(|i| 1f32 / config.rope_theta.powf(i as f32 / d as f32)).collect();
        if let Some(s) = &config.rope_scaling {
            let original = s.original_max_position_embeddings as f32;
            let low_freq_wavelen = original / s.low_freq_factor;
            let high_freq_wavelen = original / s.high_freq_factor;
            for freq in inv_freq.iter_mut() {
                let wavelen = 2.0 * std::f32::consts::PI / *freq;
                if wavelen > low_freq_wavelen {
                    *freq /= s.factor;
                } else if wavelen >= high_freq_wavelen {
                    let smooth = (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                    *freq = (1.0 - smooth) * *freq / s.factor + smooth * *freq;
                }
            }
        }
        if let Some(factors) = freq_factors {
            for (freq, factor) in inv_freq.iter_mut().zip(factors) {
                *freq /= factor;
            }
        }
        Self { inv_freq, style }
    }

    /// cos and sin for each position, `[positions.len(), head_dim / 2]` each.
    pub(crate) fn tables(&self, positions: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &pos in positions {
            for &freq in &self.inv_freq {
                let angle = pos as f32 * freq;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        (cos, sin)
    }

    /// Rotates `x` of shape `[tokens, heads, head_dim]` in place, token `t` by row `t` of the
    /// tables.
    pub(crate) fn apply(&self, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        let half = head_dim / 2;
        let tokens = cos.len() / half;
        let per_token = x.len() / tokens.max(1);
        for (t, row) in x.chunks_mut(per_token).enumerate() {
            let (cos, sin) = (&cos[t * half..(t + 1) * half], &sin[t * half..(t + 1) * half]);
            for head in row.chunks_mut(head_dim) {
                for i in 0..half {
                    let (a, b) = match self.style {
                        RopeStyle::Half => (i, i + half),
                        RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    };
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * cos[i] - x1 * sin[i];
                    head[b] = x0 * sin[i] + x1 * cos[i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{Arch, RopeScaling};

    fn config(head_dim: usize, rope_scaling: Option<RopeScaling>) -> ModelConfig {
        ModelConfig {
            arch: Arch::Llama,
            vocab_size: 8,
            hidden_size: head_dim,
            intermediate_size: 8,
            num_layers: 1,
            num_heads: 1,
            num_kv_heads: 1,
            head_dim,
            rope_theta: 10_000.0,
            rope_scaling,
            rms_norm_eps: 1e-6,
            max_position_embeddings: 256,
            tie_word_embeddings: true,
            attention_bias: false,
            qk_norm: false,
            bos_token_id: None,
            eos_token_ids: vec![],
        }
    }

    #[test]
    fn gguf_frequency_factors_reproduce_llama3_scaling() {
        let scaling = RopeScaling { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 };
        let scaled = Rope::new(&config(16, Some(scaling)), RopeStyle::Half, None);
        let plain = Rope::new(&config(16, None), RopeStyle::Half, None);
        // The factors a GGUF converter writes: plain frequency over scaled frequency.
        let factors: Vec<f32> = plain.inv_freq.iter().zip(&scaled.inv_freq).map(|(p, s)| p / s).collect();
        assert!(factors.contains(&1.0), "some frequencies are kept");
        assert!(factors.iter().any(|&f| (f - 8.0).abs() < 1e-5), "some are divided by the factor");
        assert!(factors.iter().any(|&f| f > 1.0 && f < 7.99), "some are interpolated");
        let from_factors = Rope::new(&config(16, None), RopeStyle::Half, Some(&factors));
        for (a, b) in from_factors.inv_freq.iter().zip(&scaled.inv_freq) {
            assert!((a - b).abs() <= 1e-6 * b.abs(), "{a} vs {b}");
        }
    }

    /// `x` with head dimensions reordered: `out[.., i] = x[.., perm[i]]`.
    fn permute(x: &[f32], d: usize, perm: &[usize]) -> Vec<f32> {
        x.chunks(d).flat_map(|head| perm.iter().map(move |&p| head[p])).collect()
    }

    #[test]
    fn interleaved_style_is_half_style_on_permuted_dimensions() {
        let d = 8;
        let x: Vec<f32> = (0..3 * 2 * d).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        // Half pairs (i, i + d/2); interleaved pairs (2i, 2i + 1).
        let perm: Vec<usize> = (0..d / 2).flat_map(|i| [i, i + d / 2]).collect();
        let positions = [0, 5, 17];
        let half = Rope::new(&config(d, None), RopeStyle::Half, None);
        let inter = Rope::new(&config(d, None), RopeStyle::Interleaved, None);
        let (cos, sin) = half.tables(&positions);
        let mut a = x.clone();
        half.apply(&mut a, d, &cos, &sin);
        let a = permute(&a, d, &perm);
        let mut b = permute(&x, d, &perm);
        inter.apply(&mut b, d, &cos, &sin);
        assert_eq!(a, b);
        // Position 0 is the identity; later positions are not.
        let px = permute(&x, d, &perm);
        assert_eq!(b[..2 * d], px[..2 * d]);
        assert_ne!(b[2 * d..4 * d], px[2 * d..4 * d]);
    }

    #[test]
    fn half_style_matches_candles_rope() -> candle_core::Result<()> {
        use candle_core::{Device, Tensor};
        let d = 16;
        let x: Vec<f32> = (0..2 * 3 * d).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let rope = Rope::new(&config(d, None), RopeStyle::Half, None);
        let (cos, sin) = rope.tables(&[3, 40]);
        let mut ours = x.clone();
        rope.apply(&mut ours, d, &cos, &sin);
        // candle's kernel with tokens as its batch axis, each picking its own table row.
        let xt = Tensor::from_vec(x, (2, 3, 1, d), &Device::Cpu)?;
        let ct = Tensor::from_vec(cos, (2, 1, d / 2), &Device::Cpu)?;
        let st = Tensor::from_vec(sin, (2, 1, d / 2), &Device::Cpu)?;
        let theirs = candle_nn::rotary_emb::rope(&xt, &ct, &st)?.flatten_all()?.to_vec1::<f32>()?;
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        Ok(())
    }
}
