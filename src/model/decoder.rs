//! The decoder: one forward pass over a batch of sequence chunks.
//!
//! Every linear layer runs once per step over all the batch's tokens stacked into one
//! `[tokens, hidden]` matrix, so a step streams each weight matrix from memory once however
//! many sequences share it; attention is per sequence, against that sequence's own cache. There
//! is no padding and no cross-sequence mask. A batch of one chunk is the sequential case.
//!
//! Every kernel computes each output element in an order fixed by that element alone (see
//! [`super::kernels`]), so a sequence's logits are bit-identical however it is scheduled.
//!
//! The pass runs on the host, with weights in host memory; `--device` accepts only the CPU, and
//! GPUs are reached through inference servers instead (see `crate::engine::remote`).

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};

use super::config::ModelConfig;
use super::kernels::attention::{attend, Queries};
use super::kernels::matmul::Weights;
use super::kernels::rowwise::{add_bias, add_in_place, rms_norm, rms_norm_in_place, silu_mul};
use super::kernels::workers::run_pass;
use super::kv::{KvDtype, KvShape, SeqKv};
use super::rope::Rope;

/// One sequence's share of a forward pass: its new tokens and its cache, which the pass extends.
pub struct SeqChunk<'a> {
    pub tokens: &'a [u32],
    pub kv: &'a mut SeqKv,
}

/// `x @ W^T (+ b)`, with `W` dense or quantized.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub weight: Arc<Weights>,
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    /// `x` is `m` rows; returns `m` rows of `weight.rows()` values.
    fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut y = self.weight.matmul(x, m);
        if let Some(b) = &self.bias {
            add_bias(&mut y, b);
        }
        y
    }

    /// [`Self::forward`] for several layers reading the same input, in one pass over it.
    fn forward_many<const N: usize>(layers: [&Linear; N], x: &[f32], m: usize) -> [Vec<f32>; N] {
        let weights = layers.map(|l| &*l.weight);
        let mut ys = Weights::matmul_many(&weights, x, m).into_iter();
        layers.map(|l| {
            let mut y = ys.next().unwrap_or_default();
            if let Some(b) = &l.bias {
                add_bias(&mut y, b);
            }
            y
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    pub weight: Vec<f32>,
    pub eps: f32,
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
    pub(crate) embedding: Arc<Weights>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) final_norm: RmsNorm,
    /// The embedding itself when the model ties them.
    pub(crate) lm_head: Linear,
    pub(crate) rope: Rope,
    pub(crate) dtype: Option<DType>,
    /// How the caches this decoder makes store keys and values.
    pub(crate) kv_dtype: KvDtype,
    pub(crate) device: Device,
    pub(crate) param_count: usize,
    pub(crate) weights_summary: String,
}

/// One chunk's place in the step: where its tokens sit in the stacked batch.
struct Span {
    start: usize,
    len: usize,
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

    /// The type float weights were converted to, or `None` where each is kept as its file
    /// stores it. Activations are f32 regardless; the KV cache is [`Self::kv_dtype`].
    pub fn dtype(&self) -> Option<DType> {
        self.dtype
    }

    /// Where the logits are returned (the pass itself runs on the host).
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn kv_shape(&self) -> KvShape {
        KvShape { layers: self.config.num_layers, kv_heads: self.config.num_kv_heads, head_dim: self.config.head_dim }
    }

    /// An empty cache for one sequence.
    pub fn new_kv(&self) -> SeqKv {
        SeqKv::new(self.kv_shape(), self.kv_dtype)
    }

    /// How caches store keys and values.
    pub fn kv_dtype(&self) -> KvDtype {
        self.kv_dtype
    }

    /// Bytes of cache one token occupies (keys and values of every layer); caches grow in
    /// blocks of 16 tokens.
    pub fn kv_bytes_per_token(&self) -> usize {
        let bytes = self.kv_shape().bytes_per_token();
        match self.kv_dtype {
            KvDtype::F32 => bytes,
            KvDtype::F16 => bytes / 2,
        }
    }

    /// Floating-point operations of a pass over chunks given as (tokens already cached, new
    /// tokens), two per multiply-add: the matrix products of every new token, the logits of each
    /// chunk's last token, and attention's scores and weighted values, each query against every
    /// key up to its own position. It is the pass's work whatever its speed, so forward time
    /// divided into it says how close a run comes to the machine's arithmetic peak. Norms, RoPE,
    /// the softmax and the activation are left out: each costs a few operations per value, where
    /// a score and its weighted value cost `4 · head_dim`.
    pub fn pass_flops(&self, chunks: impl IntoIterator<Item = (usize, usize)>) -> u64 {
        let cfg = &self.config;
        let (hidden, q_dim, kv_dim) = (cfg.hidden_size as u64, cfg.q_dim() as u64, cfg.kv_dim() as u64);
        let layers = cfg.num_layers as u64;
        // q, k, v, o, then gate, up and down.
        let per_token = 2 * layers * (hidden * (2 * q_dim + 2 * kv_dim) + 3 * hidden * cfg.intermediate_size as u64);
        // A query head's scores against one key, and that key's value added in: 2·head_dim each.
        let per_key = 4 * layers * q_dim;
        let logits = 2 * hidden * cfg.vocab_size as u64;
        chunks
            .into_iter()
            .map(|(cached, new)| {
                let (cached, new) = (cached as u64, new as u64);
                // Position p attends to p + 1 keys, for p in cached..cached + new.
                let keys = new * cached + new * (new + 1) / 2;
                new * per_token + keys * per_key + logits
            })
            .sum()
    }

    /// Runs `chunks` through the model, appending their keys and values to their caches, and
    /// returns f32 logits `[chunks.len(), vocab]` for the last token of each chunk.
    ///
    /// If the pass fails, every cache is left as it was.
    pub fn forward(&self, chunks: &mut [SeqChunk]) -> Result<Tensor> {
        let lengths: Vec<usize> = chunks.iter().map(|c| c.kv.len()).collect();
        // On a pool worker, with the others kept awake (see `workers`): run from the engine's
        // thread, SmolLM2 decoded one sequence at 95 tokens/s instead of 132.
        let result = run_pass(|| self.forward_inner(chunks));
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
        // For each token: its chunk and its absolute position.
        let mut rows = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if chunk.tokens.is_empty() {
                candle_core::bail!("chunk {i} has no tokens");
            }
            if !chunk.kv.fits(self.kv_shape(), self.kv_dtype) {
                candle_core::bail!("chunk {i}'s cache was not made by this model");
            }
            if let Some(&bad) = chunk.tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                candle_core::bail!("token {bad} is outside the vocabulary ({})", cfg.vocab_size);
            }
            let prefix = chunk.kv.len();
            let end = prefix + chunk.tokens.len();
            if end > cfg.max_position_embeddings {
                candle_core::bail!("sequence of {end} tokens exceeds the context length ({})", cfg.max_position_embeddings);
            }
            spans.push(Span { start: tokens.len(), len: chunk.tokens.len() });
            tokens.extend_from_slice(chunk.tokens);
            rows.extend((prefix..end).map(|p| (i, p)));
        }

        let hidden = cfg.hidden_size;
        let mut x = vec![0f32; tokens.len() * hidden];
        for (row, &token) in x.chunks_mut(hidden).zip(&tokens) {
            self.embedding.row_into(token as usize, row);
        }
        let positions: Vec<usize> = rows.iter().map(|&(_, p)| p).collect();
        let (cos, sin) = self.rope.tables(&positions);
        for (index, layer) in self.layers.iter().enumerate() {
            self.block(index, layer, &mut x, (&cos, &sin), chunks, &rows)?;
        }
        for (chunk, span) in chunks.iter_mut().zip(&spans) {
            chunk.kv.commit(span.len);
        }

        let mut last = Vec::with_capacity(spans.len() * hidden);
        for span in &spans {
            let at = (span.start + span.len - 1) * hidden;
            last.extend_from_slice(&x[at..at + hidden]);
        }
        let h = rms_norm(&last, &self.final_norm.weight, self.final_norm.eps);
        let logits = self.lm_head.forward(&h, spans.len());
        Tensor::from_vec(logits, (spans.len(), cfg.vocab_size), &self.device)
    }

    /// Pre-norm attention then pre-norm SwiGLU MLP, each added to the residual stream `x`.
    fn block(
        &self,
        index: usize,
        layer: &Layer,
        x: &mut [f32],
        (cos, sin): (&[f32], &[f32]),
        chunks: &mut [SeqChunk],
        rows: &[(usize, usize)],
    ) -> Result<()> {
        let cfg = &self.config;
        let t = rows.len();
        let h = rms_norm(x, &layer.attn_norm.weight, layer.attn_norm.eps);
        let [mut q, mut k, v] = Linear::forward_many([&layer.q, &layer.k, &layer.v], &h, t);
        if let (Some(q_norm), Some(k_norm)) = (&layer.q_norm, &layer.k_norm) {
            rms_norm_in_place(&mut q, &q_norm.weight, q_norm.eps);
            rms_norm_in_place(&mut k, &k_norm.weight, k_norm.eps);
        }
        self.rope.apply(&mut q, cfg.head_dim, cos, sin);
        self.rope.apply(&mut k, cfg.head_dim, cos, sin);

        let kv_dim = cfg.kv_dim();
        for (token, &(seq, position)) in rows.iter().enumerate() {
            let span = token * kv_dim..(token + 1) * kv_dim;
            chunks[seq].kv.write(index, position, &k[span.clone()], &v[span]).map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
        }
        let caches: Vec<&SeqKv> = chunks.iter().map(|c| &*c.kv).collect();
        let queries = Queries { q: &q, rows, heads: cfg.num_heads, kv_heads: cfg.num_kv_heads, head_dim: cfg.head_dim };
        let context = attend(&queries, &caches, index);
        add_in_place(x, &layer.o.forward(&context, t));

        let h = rms_norm(x, &layer.mlp_norm.weight, layer.mlp_norm.eps);
        let [mut gated, up] = Linear::forward_many([&layer.gate, &layer.up], &h, t);
        silu_mul(&mut gated, &up);
        add_in_place(x, &layer.down.forward(&gated, t));
        Ok(())
    }
}
