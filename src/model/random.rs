//! Random weights in a real model's shape and storage types, for `bench --random-weights`.
//!
//! Throughput depends on a model's shape and on how its weights are stored, not on their
//! values, so a preset's published shape is enough to measure a model nobody has downloaded.
//! The tensors go through the same loader as a file's (see `Decoder::random`), so the decoder
//! and its kernels are the product's own.
//!
//! Quantized matrices are written as GGML blocks directly: random quants, with f16 scales sized
//! so that values stay near `±sqrt(3 / fan_in)`. Quantizing f32 values instead would take
//! minutes for an 8B model. Blocks are generated in parallel, each chunk from its own position in
//! one ChaCha stream per tensor, so the weights depend on the seed alone, not on the threads.

use anyhow::{bail, Result};
use candle_core::quantized::GgmlDType;
use candle_core::DType;
use half::{bf16, f16};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::config::ModelConfig;
use super::kernels::matmul::Weights;
use super::weights::{LayerTensor, Matrix, TensorId};

/// A model to build with random weights: its shape, and how a real file of it stores weights.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomModel {
    pub config: ModelConfig,
    /// Storage of the transformer blocks' matrices (and of an untied embedding).
    pub matrices: GgmlDType,
    /// Storage of the LM head, and of the embedding when the two are tied.
    pub output: GgmlDType,
    pub seed: u64,
}

/// The storage types model files use for weights, as llama.cpp spells them.
const STORAGE_NAMES: [(&str, GgmlDType); 13] = [
    ("F32", GgmlDType::F32),
    ("F16", GgmlDType::F16),
    ("BF16", GgmlDType::BF16),
    ("Q4_0", GgmlDType::Q4_0),
    ("Q4_1", GgmlDType::Q4_1),
    ("Q5_0", GgmlDType::Q5_0),
    ("Q5_1", GgmlDType::Q5_1),
    ("Q8_0", GgmlDType::Q8_0),
    ("Q2_K", GgmlDType::Q2K),
    ("Q3_K", GgmlDType::Q3K),
    ("Q4_K", GgmlDType::Q4K),
    ("Q5_K", GgmlDType::Q5K),
    ("Q6_K", GgmlDType::Q6K),
];

/// Parses a weight storage type name ("Q4_K", "Q8_0", "BF16", ...).
pub fn parse_storage(name: &str) -> Result<GgmlDType> {
    match STORAGE_NAMES.iter().find(|(n, _)| *n == name) {
        Some(&(_, dtype)) => Ok(dtype),
        None => {
            let known: Vec<&str> = STORAGE_NAMES.iter().map(|(n, _)| *n).collect();
            bail!("unknown weight storage type {name:?}; expected one of {}", known.join(", "))
        }
    }
}

/// The type a matrix whose rows hold `cols` values is stored in: `dtype`, or, where its blocks
/// do not fill the rows, the type llama.cpp's quantizer falls back to (k-quants need rows of a
/// multiple of 256; Qwen2.5 0.5B's 896 is not). llama.cpp turns Q2_K and Q3_K into IQ4_NL,
/// which this crate does not read; Q4_0 has the same size and stands in for it.
pub(crate) fn fitting(dtype: GgmlDType, cols: usize) -> Result<GgmlDType> {
    let fitted = if cols.is_multiple_of(dtype.block_size()) {
        dtype
    } else {
        match dtype {
            GgmlDType::Q2K | GgmlDType::Q3K => GgmlDType::Q4_0,
            GgmlDType::Q4K => GgmlDType::Q5_0,
            GgmlDType::Q5K => GgmlDType::Q5_1,
            GgmlDType::Q6K => GgmlDType::Q8_0,
            other => other,
        }
    };
    if !cols.is_multiple_of(fitted.block_size()) {
        bail!("rows of {cols} values do not fill {fitted:?} blocks of {}", fitted.block_size());
    }
    Ok(fitted)
}

/// Where a block type keeps its f16 scale `d` and, for types with an offset, its min; and how
/// large they are made: `d = w / d_divisor`, `min = d * min_per_d`, where `w` is the spread the
/// values should have. The divisors are the typical magnitude of the block's integer factors
/// (quant times sub-block scale), and the mins re-centre unsigned quants on zero.
struct ScaleLayout {
    d: usize,
    min: Option<(usize, f32)>,
    d_divisor: f32,
}

fn scale_layout(dtype: GgmlDType) -> Option<ScaleLayout> {
    let (d, min, d_divisor) = match dtype {
        // d·(q − 8), q in 0..16
        GgmlDType::Q4_0 => (0, None, 8.0),
        // d·q + m
        GgmlDType::Q4_1 => (0, Some((2, -8.0)), 8.0),
        GgmlDType::Q5_0 => (0, None, 16.0),
        GgmlDType::Q5_1 => (0, Some((2, -16.0)), 16.0),
        // d·q, q in −128..128
        GgmlDType::Q8_0 => (0, None, 127.0),
        // d·(sc & 15)·q − dmin·(sc >> 4), q in 0..4
        GgmlDType::Q2K => (80, Some((82, 1.5)), 22.5),
        // d·(sc − 32)·q, q in −4..4
        GgmlDType::Q3K => (108, None, 64.0),
        // d·sc·q − dmin·m, 6-bit sc and m, q in 0..16 (Q5_K: 0..32)
        GgmlDType::Q4K => (0, Some((2, 7.5)), 236.0),
        GgmlDType::Q5K => (0, Some((2, 15.5)), 488.0),
        // d·sc·(q − 32), sc an i8
        GgmlDType::Q6K => (208, None, 1024.0),
        _ => return None,
    };
    Some(ScaleLayout { d, min, d_divisor })
}

/// A matrix's contents as a file holds them.
pub(crate) enum Stored {
    /// Row-major values of a float storage type (F32, F16, BF16).
    Floats(Vec<f32>),
    /// GGML blocks of a quantized type.
    Blocks(Vec<u8>),
}

/// Blocks (or values) generated per parallel work item.
const CHUNK: usize = 1024;

/// The tensors of a [`RandomModel`], made on request as a file's would be read.
pub(crate) struct RandomTensors {
    model: RandomModel,
}

impl RandomTensors {
    pub(crate) fn new(model: RandomModel) -> Self {
        Self { model }
    }

    /// Whether a file of this model would hold `id`.
    pub(crate) fn contains(&self, id: TensorId) -> bool {
        let c = &self.model.config;
        match id {
            TensorId::RopeFreqs => false,
            TensorId::LmHead => !c.tie_word_embeddings,
            TensorId::Layer(_, LayerTensor::QBias | LayerTensor::KBias | LayerTensor::VBias) => c.attention_bias,
            TensorId::Layer(_, LayerTensor::QNorm | LayerTensor::KNorm) => c.qk_norm,
            TensorId::Embedding | TensorId::FinalNorm | TensorId::Layer(..) => true,
        }
    }

    /// A `[rows, cols]` matrix in its storage type; float storage is converted to `dtype` where
    /// one is given, as the loader does with a checkpoint's.
    pub(crate) fn matrix(&self, id: TensorId, rows: usize, cols: usize, dtype: Option<DType>) -> Result<Matrix> {
        let (storage, stored) = self.stored(id, rows, cols)?;
        let weight = match stored {
            Stored::Floats(values) => {
                let as_stored = match storage {
                    GgmlDType::F16 => DType::F16,
                    GgmlDType::BF16 => DType::BF16,
                    _ => DType::F32,
                };
                Weights::dense(values, rows, cols, dtype.unwrap_or(as_stored))?
            }
            Stored::Blocks(bytes) => Weights::ggml(storage, &bytes, rows, cols)?,
        };
        Ok(Matrix { weight, stored_as: format!("{storage:?}"), elements: rows * cols })
    }

    /// A `[rows, cols]` matrix as a file of this model stores it: its storage type, and its
    /// values (float types) or GGML blocks.
    pub(crate) fn stored(&self, id: TensorId, rows: usize, cols: usize) -> Result<(GgmlDType, Stored)> {
        let output = id == TensorId::LmHead || (id == TensorId::Embedding && self.model.config.tie_word_embeddings);
        let declared = if output { self.model.output } else { self.model.matrices };
        let storage = fitting(declared, cols)?;
        let spread = (3.0 / cols as f32).sqrt();
        let rng = self.stream(id);
        let stored = match scale_layout(storage) {
            None => {
                // Rounded to the storage type, as a file of it holds them.
                let mut v = values(rows * cols, 0.0, spread, &rng);
                match storage {
                    GgmlDType::F16 => v.iter_mut().for_each(|x| *x = f16::from_f32(*x).to_f32()),
                    GgmlDType::BF16 => v.iter_mut().for_each(|x| *x = bf16::from_f32(*x).to_f32()),
                    _ => {}
                }
                Stored::Floats(v)
            }
            Some(layout) => {
                let blocks = rows * cols / storage.block_size();
                Stored::Blocks(blocks_bytes(storage, &layout, blocks, spread, &rng))
            }
        };
        Ok((storage, stored))
    }

    /// A 1-D tensor: norm weights near 1, biases near 0.
    pub(crate) fn vector(&self, id: TensorId, len: usize) -> Vec<f32> {
        let bias = matches!(id, TensorId::Layer(_, LayerTensor::QBias | LayerTensor::KBias | LayerTensor::VBias));
        let (center, spread) = if bias { (0.0, 0.5) } else { (1.0, 0.2) };
        values(len, center, spread, &self.stream(id))
    }

    /// The tensor's own ChaCha stream under the model's seed.
    fn stream(&self, id: TensorId) -> ChaCha8Rng {
        let index = match id {
            TensorId::Embedding => 0,
            TensorId::FinalNorm => 1,
            TensorId::LmHead => 2,
            TensorId::RopeFreqs => 3,
            TensorId::Layer(layer, t) => 16 + 16 * layer as u64 + t as u64,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.model.seed);
        rng.set_stream(index);
        rng
    }
}

/// `n` values uniform in `center ± spread`, one 32-bit word of `rng`'s stream each.
fn values(n: usize, center: f32, spread: f32, rng: &ChaCha8Rng) -> Vec<f32> {
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK * 64).enumerate().for_each(|(i, chunk)| {
        let mut rng = rng.clone();
        rng.set_word_pos((i * CHUNK * 64) as u128);
        for v in chunk {
            let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
            *v = center + spread * (2.0 * unit - 1.0);
        }
    });
    out
}

/// `blocks` GGML blocks of `dtype`: random bytes from `rng`'s stream, with every scale replaced
/// by one within a factor 1.5 of the layout's, so that no block holds an infinity or a NaN.
fn blocks_bytes(dtype: GgmlDType, layout: &ScaleLayout, blocks: usize, spread: f32, rng: &ChaCha8Rng) -> Vec<u8> {
    let size = dtype.type_size();
    let base = spread / layout.d_divisor;
    let mut bytes = vec![0u8; blocks * size];
    // CHUNK is a multiple of 4, so every chunk starts on a whole 32-bit word of the stream.
    bytes.par_chunks_mut(CHUNK * size).enumerate().for_each(|(i, chunk)| {
        let mut rng = rng.clone();
        rng.set_word_pos((i * CHUNK * size / 4) as u128);
        rng.fill_bytes(chunk);
        for block in chunk.chunks_exact_mut(size) {
            let noise = u16::from_le_bytes([block[layout.d], block[layout.d + 1]]);
            let d = base * (0.75 + 0.5 * noise as f32 / u16::MAX as f32);
            block[layout.d..layout.d + 2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
            if let Some((at, per_d)) = layout.min {
                block[at..at + 2].copy_from_slice(&f16::from_f32(d * per_d).to_le_bytes());
            }
        }
    });
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Arch;

    fn tiny(matrices: GgmlDType, output: GgmlDType) -> RandomModel {
        RandomModel {
            config: ModelConfig {
                arch: Arch::Qwen2,
                vocab_size: 64,
                hidden_size: 256,
                intermediate_size: 512,
                num_layers: 1,
                num_heads: 4,
                num_kv_heads: 2,
                head_dim: 64,
                rope_theta: 10_000.0,
                rope_scaling: None,
                rms_norm_eps: 1e-6,
                max_position_embeddings: 128,
                tie_word_embeddings: true,
                attention_bias: true,
                qk_norm: false,
                bos_token_id: None,
                eos_token_ids: Vec::new(),
            },
            matrices,
            output,
            seed: 7,
        }
    }

    fn row(m: &Matrix, index: usize, cols: usize) -> Vec<f32> {
        let mut out = vec![0.0; cols];
        m.weight.row_into(index, &mut out);
        out
    }

    #[test]
    fn every_storage_type_gives_finite_centred_values_of_the_intended_size() {
        let cols = 512;
        let spread = (3.0f32 / cols as f32).sqrt();
        for (name, dtype) in STORAGE_NAMES {
            let tensors = RandomTensors::new(tiny(dtype, dtype));
            let id = TensorId::Layer(0, LayerTensor::Down);
            let m = tensors.matrix(id, 8, cols, Some(DType::F32)).unwrap();
            let float = matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
            assert_eq!(m.weight.dtype(), if float { GgmlDType::F32 } else { dtype }, "{name}");
            let values: Vec<f32> = (0..8).flat_map(|r| row(&m, r, cols)).collect();
            assert!(values.iter().all(|v| v.is_finite()), "{name}");
            let mean = values.iter().sum::<f32>() / values.len() as f32;
            let rms = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
            assert!(mean.abs() < 0.5 * spread, "{name}: mean {mean}, spread {spread}");
            assert!(rms > spread / 8.0 && rms < 4.0 * spread, "{name}: rms {rms}, spread {spread}");
        }
    }

    #[test]
    fn weights_depend_on_the_seed_and_the_tensor_only() {
        let a = RandomTensors::new(tiny(GgmlDType::Q4K, GgmlDType::Q6K));
        let q = TensorId::Layer(0, LayerTensor::Q);
        let first = row(&a.matrix(q, 256, 256, Some(DType::F32)).unwrap(), 200, 256);
        let again = row(&a.matrix(q, 256, 256, Some(DType::F32)).unwrap(), 200, 256);
        assert_eq!(first, again);
        let k = row(&a.matrix(TensorId::Layer(0, LayerTensor::K), 256, 256, Some(DType::F32)).unwrap(), 200, 256);
        assert_ne!(first, k);
        let mut other = tiny(GgmlDType::Q4K, GgmlDType::Q6K);
        other.seed = 8;
        let reseeded = row(&RandomTensors::new(other).matrix(q, 256, 256, Some(DType::F32)).unwrap(), 200, 256);
        assert_ne!(first, reseeded);
    }

    #[test]
    fn the_output_type_covers_a_tied_embedding_and_k_quants_fall_back_like_llama_cpp() {
        let t = RandomTensors::new(tiny(GgmlDType::Q4K, GgmlDType::Q6K));
        let embedding = t.matrix(TensorId::Embedding, 64, 256, Some(DType::F32)).unwrap();
        assert_eq!(embedding.stored_as, "Q6K");
        let layer = t.matrix(TensorId::Layer(0, LayerTensor::Up), 512, 256, Some(DType::F32)).unwrap();
        assert_eq!(layer.stored_as, "Q4K");
        // Rows of 896 (Qwen2.5 0.5B) cannot hold 256-value blocks.
        assert_eq!(fitting(GgmlDType::Q4K, 896).unwrap(), GgmlDType::Q5_0);
        assert_eq!(fitting(GgmlDType::Q6K, 896).unwrap(), GgmlDType::Q8_0);
        let err = fitting(GgmlDType::Q8_0, 100).unwrap_err();
        assert!(err.to_string().contains("100"), "{err}");
        assert!(!t.contains(TensorId::LmHead) && t.contains(TensorId::Layer(0, LayerTensor::QBias)));
    }

    #[test]
    fn storage_names_follow_llama_cpp() {
        assert_eq!(parse_storage("Q4_K").unwrap(), GgmlDType::Q4K);
        assert_eq!(parse_storage("BF16").unwrap(), GgmlDType::BF16);
        let err = parse_storage("Q4_K_M").unwrap_err().to_string();
        assert!(err.contains("Q4_K_M") && err.contains("Q6_K"), "{err}");
    }
}
