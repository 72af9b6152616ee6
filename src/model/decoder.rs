//! The decoder: one forward pass over a batch of sequence chunks.
//!
//! Every linear layer runs once per step over all the batch's tokens stacked into one
//! `[tokens, hidden]` matrix; only attention is per sequence, against that sequence's own cache.
//! There is no padding and no cross-sequence mask. A batch of one chunk is the sequential case.
//!
//! Batch invariance: a sequence's logits should not depend on what else is in the batch. Row-wise
//! ops (embedding, RMSNorm, RoPE, SiLU, residuals) and the per-sequence attention are invariant
//! by construction. The matrix products over all tokens are only as invariant as candle's kernels
//! for a different number of rows: see the module docs of [`crate::model`].

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Result, Tensor};

use super::config::ModelConfig;
use super::kv::SeqKv;
use super::rope::Rope;

/// One sequence's share of a forward pass: its new tokens and its cache, which the pass extends.
pub struct SeqChunk<'a> {
    pub tokens: &'a [u32],
    pub kv: &'a mut SeqKv,
}

/// `x @ W^T (+ b)`, with `W` dense or quantized.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub weight: QMatMul,
    pub bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    pub weight: Tensor,
    pub eps: f32,
}

impl RmsNorm {
    /// Normalises over the last dimension, whatever the leading ones.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(x, &self.weight, self.eps)
    }
}

/// One transformer block. `q_norm`/`k_norm` are Qwen3's per-head norms.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub attn_norm: RmsNorm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub mlp_norm: RmsNorm,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// A loaded model, ready to run forward passes over caches it does not own.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub(crate) config: ModelConfig,
    /// `[vocab, hidden]`, looked up row by row (dequantizing only the rows used).
    pub(crate) embedding: QMatMul,
    pub(crate) layers: Vec<Layer>,
    pub(crate) final_norm: RmsNorm,
    /// The embedding itself when the model ties them.
    pub(crate) lm_head: Linear,
    pub(crate) rope: Rope,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    pub(crate) param_count: usize,
    pub(crate) weights_summary: String,
}

/// Where one chunk's tokens sit in the stacked batch.
struct Span {
    start: usize,
    len: usize,
    /// Tokens already cached before this pass.
    prefix: usize,
}

impl Decoder {
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Number of weights (a tied embedding counted once).
    pub fn param_count(&self) -> usize {
        self.param_count
    }

    /// How the weights are stored, e.g. "Q4_1 (Q8_0 embeddings)" or "BF16".
    pub fn weights_summary(&self) -> &str {
        &self.weights_summary
    }

    /// The dtype activations and the KV cache use.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes of key/value cache one token takes, over all layers.
    pub fn kv_bytes_per_token(&self) -> usize {
        let c = &self.config;
        2 * c.num_layers * c.num_kv_heads * c.head_dim * self.dtype.size_in_bytes()
    }

    /// An empty cache for one sequence.
    pub fn new_kv(&self) -> SeqKv {
        SeqKv::new(
            self.config.num_layers,
            self.config.num_kv_heads,
            self.config.head_dim,
            self.dtype,
            self.device.clone(),
        )
    }

    /// Runs `chunks` through the model, appending their keys and values to their caches, and
    /// returns f32 logits `[chunks.len(), vocab]` for the last token of each chunk.
    ///
    /// If the pass fails, every cache is left as it was.
    pub fn forward(&self, chunks: &mut [SeqChunk]) -> Result<Tensor> {
        let lengths: Vec<usize> = chunks.iter().map(|c| c.kv.len()).collect();
        let result = self.forward_inner(chunks);
        if result.is_err() {
            for (chunk, &len) in chunks.iter_mut().zip(&lengths) {
                chunk.kv.truncate(len);
            }
        }
        result
    }

    fn forward_inner(&self, chunks: &mut [SeqChunk]) -> Result<Tensor> {
        let cfg = &self.config;
        if chunks.is_empty() {
            candle_core::bail!("forward needs at least one chunk");
        }
        let mut spans = Vec::with_capacity(chunks.len());
        let mut tokens = Vec::new();
        let mut positions = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if chunk.tokens.is_empty() {
                candle_core::bail!("chunk {i} has no tokens");
            }
            if !chunk
                .kv
                .fits(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, self.dtype)
            {
                candle_core::bail!("chunk {i}'s cache was not made by this model");
            }
            if let Some(&bad) = chunk.tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                candle_core::bail!("token {bad} is outside the vocabulary ({})", cfg.vocab_size);
            }
            let prefix = chunk.kv.len();
            let end = prefix + chunk.tokens.len();
            if end > cfg.max_position_embeddings {
                candle_core::bail!(
                    "sequence of {end} tokens exceeds the context length ({})",
                    cfg.max_position_embeddings
                );
            }
            spans.push(Span {
                start: tokens.len(),
                len: chunk.tokens.len(),
                prefix,
            });
            tokens.extend_from_slice(chunk.tokens);
            positions.extend(prefix..end);
        }

        let ids = Tensor::new(tokens.as_slice(), &self.device)?;
        let mut x = self.embedding.embedding(&ids)?.to_dtype(self.dtype)?;
        let (cos, sin) = self.rope.tables(&positions, self.dtype, &self.device)?;
        for (index, layer) in self.layers.iter().enumerate() {
            x = self.block(index, layer, &x, &cos, &sin, chunks, &spans)?;
        }
        for (chunk, span) in chunks.iter_mut().zip(&spans) {
            chunk.kv.commit(span.len);
        }

        let last: Vec<u32> = spans.iter().map(|s| (s.start + s.len - 1) as u32).collect();
        let last = Tensor::new(last.as_slice(), &self.device)?;
        let h = self.final_norm.forward(&x.index_select(&last, 0)?)?;
        self.lm_head.forward(&h)?.to_dtype(DType::F32)
    }

    /// Pre-norm attention then pre-norm SwiGLU MLP, each added to the residual stream `x`.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        index: usize,
        layer: &Layer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        chunks: &mut [SeqChunk],
        spans: &[Span],
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let t = x.dim(0)?;
        let h = layer.attn_norm.forward(x)?;
        let mut q = layer
            .q
            .forward(&h)?
            .reshape((t, cfg.num_heads, cfg.head_dim))?;
        let mut k = layer
            .k
            .forward(&h)?
            .reshape((t, cfg.num_kv_heads, cfg.head_dim))?;
        let v = layer
            .v
            .forward(&h)?
            .reshape((t, cfg.num_kv_heads, cfg.head_dim))?;
        if let (Some(q_norm), Some(k_norm)) = (&layer.q_norm, &layer.k_norm) {
            q = q_norm.forward(&q)?;
            k = k_norm.forward(&k)?;
        }
        let q = self.rope.apply(&q, cos, sin)?;
        let k = self.rope.apply(&k, cos, sin)?;

        let mut contexts = Vec::with_capacity(spans.len());
        for (chunk, span) in chunks.iter_mut().zip(spans) {
            // Heads first: [heads, len, head_dim], the layout attention and the cache use.
            let q_s = q
                .narrow(0, span.start, span.len)?
                .transpose(0, 1)?
                .contiguous()?;
            let k_s = k
                .narrow(0, span.start, span.len)?
                .transpose(0, 1)?
                .contiguous()?;
            let v_s = v
                .narrow(0, span.start, span.len)?
                .transpose(0, 1)?
                .contiguous()?;
            let (k_all, v_all) = chunk.kv.write(index, &k_s, &v_s)?;
            contexts.push(self.attend(&q_s, &k_all, &v_all, span.prefix)?);
        }
        let context = Tensor::cat(&contexts, 0)?;
        let x = (x + layer.o.forward(&context)?)?;

        let h = layer.mlp_norm.forward(&x)?;
        let gated = (candle_nn::ops::silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
        x + layer.down.forward(&gated)?
    }

    /// Causal attention of one sequence's new queries `[heads, n, head_dim]` over its cached and
    /// new keys/values `[kv_heads, prefix + n, head_dim]`; returns `[n, heads * head_dim]`.
    ///
    /// Grouped key/value heads are repeated to one per query head, so every product has the
    /// same shape as in candle's reference models and gives the same bits; stacking a group's
    /// queries instead would save the copy but change the GEMM shape, and with it the rounding.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, prefix: usize) -> Result<Tensor> {
        let (heads, n, head_dim) = q.dims3()?;
        let groups = self.config.kv_groups();
        let q = q.to_dtype(DType::F32)?;
        let k = repeat_heads(&k.to_dtype(DType::F32)?, groups)?;
        let v = repeat_heads(&v.to_dtype(DType::F32)?, groups)?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (head_dim as f64).sqrt()))?;
        let scores = if n > 1 {
            scores.broadcast_add(&causal_mask(n, prefix, &self.device)?)?
        } else {
            scores
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.to_dtype(self.dtype)?;
        context.transpose(0, 1)?.reshape((n, heads * head_dim))
    }
}

/// `[kv_heads, len, d]` to a contiguous `[kv_heads * groups, len, d]`, query head `h` reading
/// key/value head `h / groups`.
fn repeat_heads(x: &Tensor, groups: usize) -> Result<Tensor> {
    if groups == 1 {
        return x.contiguous();
    }
    let (kv_heads, len, d) = x.dims3()?;
    Tensor::cat(&vec![x; groups], 1)?.reshape((kv_heads * groups, len, d))
}

/// `[n, prefix + n]`: 0 where query `i` may see key `j` (`j <= prefix + i`), −∞ elsewhere.
fn causal_mask(n: usize, prefix: usize, device: &Device) -> Result<Tensor> {
    let total = prefix + n;
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= prefix + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (n, total), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_sees_the_prefix_and_earlier_chunk_tokens() -> Result<()> {
        let m = causal_mask(2, 1, &Device::Cpu)?.to_vec2::<f32>()?;
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![vec![0.0, 0.0, inf], vec![0.0, 0.0, 0.0]]);
        Ok(())
    }

    #[test]
    fn mask_broadcasts_over_heads() -> Result<()> {
        let scores = Tensor::zeros((3, 2, 3), DType::F32, &Device::Cpu)?;
        let masked = scores.broadcast_add(&causal_mask(2, 1, &Device::Cpu)?)?;
        let last = masked.get(2)?.to_vec2::<f32>()?;
        assert_eq!(last[0][2], f32::NEG_INFINITY);
        assert_eq!(last[1], vec![0.0, 0.0, 0.0]);
        Ok(())
    }
}
