//! Builds a [`Decoder`] from a [`WeightsSource`]: every tensor the config implies, under the
//! format's own name, shape-checked against the config before it is read.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Device};

use super::config::{Arch, ModelConfig};
use super::decoder::{Decoder, Layer, Linear, RmsNorm};
use super::kernels::matmul::Weights;
use super::kv::KvDtype;
use super::random::{RandomModel, RandomTensors};
use super::rope::{Rope, RopeStyle};
use super::weights::{LayerTensor as L, Matrix, OpenedWeights, TensorFile, TensorId, WeightsSource};

/// How a [`Decoder`] is built: where the logits go, how dense weights are stored, and the
/// key/value cache type. Loading a whole model (tokenizer and template included) takes
/// [`crate::engine::loaded::LoadOptions`], which holds one of these.
#[derive(Debug, Clone)]
pub struct DecoderOptions {
    /// The device logits are returned on: the CPU, where the forward pass runs (see
    /// [`Decoder`]; `--device` refuses any other).
    pub device: Device,
    /// How float weights are kept: F32, BF16 or F16 (activations are f32 regardless). `None`
    /// keeps each tensor as the file stores it, so a BF16 checkpoint takes half the memory of
    /// F32 and streams half the bytes per token. Quantized GGUF weights stay quantized either
    /// way.
    pub dtype: Option<DType>,
    /// How the key/value caches of this model's sequences are stored (f16 unless asked: see
    /// [`KvDtype`]).
    pub kv_dtype: KvDtype,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        Self { device: Device::Cpu, dtype: None, kv_dtype: KvDtype::default() }
    }
}

impl DecoderOptions {
    /// The type float weights are converted to, if any (checked).
    fn weight_dtype(&self) -> Result<Option<DType>> {
        match self.dtype {
            Some(dtype) if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) => {
                bail!("weight dtype {dtype:?} is not supported (use F32, BF16 or F16)")
            }
            dtype => Ok(dtype),
        }
    }
}

impl Decoder {
    /// Loads a model. Every failure names the file and the problem.
    pub fn load(source: &WeightsSource, options: &DecoderOptions) -> Result<Decoder> {
        let dtype = options.weight_dtype()?;
        let OpenedWeights { config, tensors } = OpenedWeights::open(source)?;
        Self::build(config, tensors, dtype, options)
    }

    /// Builds `model`'s shape with random weights in its storage types, through the same
    /// steps as [`Decoder::load`]: a benchmark of it measures the product's own decoder.
    pub fn random(model: &RandomModel, options: &DecoderOptions) -> Result<Decoder> {
        let dtype = options.weight_dtype()?;
        model.config.validate()?;
        let tensors = TensorFile::Random(RandomTensors::new(model.clone()));
        Self::build(model.config.clone(), tensors, dtype, options)
    }

    fn build(config: ModelConfig, tensors: TensorFile, dtype: Option<DType>, options: &DecoderOptions) -> Result<Decoder> {
        let mut builder = Builder { tensors, config: &config, dtype, census: Census::default() };

        let (vocab, hidden) = (config.vocab_size, config.hidden_size);
        let embedding = builder.tensors.matrix(TensorId::Embedding, vocab, hidden, dtype)?;
        builder.census.embedding = Some(embedding.stored_as.clone());
        builder.census.params += embedding.elements;
        let embedding_weight = Arc::new(embedding.weight);
        let lm_head = if config.tie_word_embeddings {
            Linear { weight: embedding_weight.clone(), bias: None }
        } else {
            let head = builder.tensors.matrix(TensorId::LmHead, vocab, hidden, dtype)?;
            builder.census.output = Some(head.stored_as.clone());
            builder.census.params += head.elements;
            Linear { weight: Arc::new(head.weight), bias: None }
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for index in 0..config.num_layers {
            layers.push(builder.layer(index)?);
        }
        let final_norm = builder.norm(TensorId::FinalNorm, hidden)?;

        let is_gguf = builder.tensors.is_gguf();
        let style = if is_gguf && config.arch == Arch::Llama { RopeStyle::Interleaved } else { RopeStyle::Half };
        let freq_factors = if is_gguf && builder.tensors.contains(TensorId::RopeFreqs) {
            Some(builder.tensors.vector(TensorId::RopeFreqs, config.head_dim / 2)?)
        } else {
            None
        };
        let rope = Rope::new(&config, style, freq_factors.as_deref());
        let weights_summary = builder.census.summary();
        Ok(Decoder {
            config: config.clone(),
            embedding: embedding_weight,
            layers,
            final_norm,
            lm_head,
            rope,
            dtype,
            kv_dtype: options.kv_dtype,
            device: options.device.clone(),
            param_count: builder.census.params,
            weights_summary,
        })
    }
}

/// Loads tensors in the config's shapes and keeps count of what it loaded.
struct Builder<'a> {
    tensors: TensorFile,
    config: &'a ModelConfig,
    dtype: Option<DType>,
    census: Census,
}

impl Builder<'_> {
    fn layer(&mut self, i: usize) -> Result<Layer> {
        let c = self.config;
        let (hidden, q_dim, kv_dim, ffn) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let bias = |b: &mut Self, t: L, len: usize| -> Result<Option<Vec<f32>>> {
            if c.attention_bias {
                Ok(Some(b.vector(TensorId::Layer(i, t), len)?))
            } else {
                Ok(None)
            }
        };
        let q_bias = bias(self, L::QBias, q_dim)?;
        let k_bias = bias(self, L::KBias, kv_dim)?;
        let v_bias = bias(self, L::VBias, kv_dim)?;
        let (q_norm, k_norm) = if c.qk_norm {
            (Some(self.norm(TensorId::Layer(i, L::QNorm), c.head_dim)?), Some(self.norm(TensorId::Layer(i, L::KNorm), c.head_dim)?))
        } else {
            (None, None)
        };
        Ok(Layer {
            attn_norm: self.norm(TensorId::Layer(i, L::AttnNorm), hidden)?,
            q: Linear { weight: self.matrix(i, L::Q, q_dim, hidden)?, bias: q_bias },
            k: Linear { weight: self.matrix(i, L::K, kv_dim, hidden)?, bias: k_bias },
            v: Linear { weight: self.matrix(i, L::V, kv_dim, hidden)?, bias: v_bias },
            o: Linear { weight: self.matrix(i, L::O, hidden, q_dim)?, bias: None },
            q_norm,
            k_norm,
            mlp_norm: self.norm(TensorId::Layer(i, L::MlpNorm), hidden)?,
            gate: Linear { weight: self.matrix(i, L::Gate, ffn, hidden)?, bias: None },
            up: Linear { weight: self.matrix(i, L::Up, ffn, hidden)?, bias: None },
            down: Linear { weight: self.matrix(i, L::Down, hidden, ffn)?, bias: None },
        })
    }

    fn matrix(&mut self, i: usize, t: L, rows: usize, cols: usize) -> Result<Arc<Weights>> {
        let Matrix { weight, stored_as, elements } = self.tensors.matrix(TensorId::Layer(i, t), rows, cols, self.dtype)?;
        *self.census.layers.entry(stored_as).or_default() += elements;
        self.census.params += elements;
        Ok(Arc::new(weight))
    }

    fn vector(&mut self, id: TensorId, len: usize) -> Result<Vec<f32>> {
        self.census.params += len;
        self.tensors.vector(id, len)
    }

    fn norm(&mut self, id: TensorId, len: usize) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: self.vector(id, len)?, eps: self.config.rms_norm_eps as f32 })
    }
}

/// What was loaded: parameter count and storage types, for `models inspect`.
#[derive(Debug, Default)]
struct Census {
    params: usize,
    /// Storage type of the transformer blocks' matrices → element count.
    layers: HashMap<String, usize>,
    embedding: Option<String>,
    /// Storage type of an untied LM head.
    output: Option<String>,
}

impl Census {
    /// "Q4_1 (Q8_0 embeddings)", "Q4K + Q6K (Q6K output)", "BF16".
    fn summary(&self) -> String {
        let mut kinds: Vec<(&String, &usize)> = self.layers.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let main = kinds.first().map(|(k, _)| k.as_str()).unwrap_or("");
        let mut text = kinds.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(" + ");
        let mut extras = Vec::new();
        if let Some(e) = self.embedding.as_deref().filter(|&e| e != main) {
            extras.push(format!("{e} embeddings"));
        }
        if let Some(o) = self.output.as_deref().filter(|&o| o != main) {
            extras.push(format!("{o} output"));
        }
        if !extras.is_empty() {
            text.push_str(&format!(" ({})", extras.join(", ")));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_the_main_type_and_the_exceptions() {
        let mut c = Census::default();
        c.layers.insert("Q4_1".into(), 1000);
        c.embedding = Some("Q8_0".into());
        assert_eq!(c.summary(), "Q4_1 (Q8_0 embeddings)");
        c.layers.insert("Q6K".into(), 10);
        c.output = Some("Q6K".into());
        assert_eq!(c.summary(), "Q4_1 + Q6K (Q8_0 embeddings, Q6K output)");
        let mut d = Census::default();
        d.layers.insert("BF16".into(), 5);
        d.embedding = Some("BF16".into());
        assert_eq!(d.summary(), "BF16");
    }
}
