//! Writes a [`RandomModel`] as a GGUF file, so that another engine (llama.cpp's `llama-bench`)
//! can run exactly the weights `bench --random-weights` measures, and the two speeds compare on
//! a shape nobody has downloaded.
//!
//! The metadata is what [`ModelConfig::from_gguf`] reads back, under llama.cpp's key names; the
//! tokenizer is declared as `none` with the vocabulary's size, which llama.cpp accepts for token
//! prompts. Tensors carry the same bytes [`Decoder::random`](super::Decoder::random) loads.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::Device;
use half::{bf16, f16};

use super::config::ModelConfig;
use super::random::{RandomModel, RandomTensors, Stored};
use super::weights::{LayerTensor as L, TensorId};

/// Writes `model` to `path` as GGUF, atomically (a temporary file renamed into place).
pub fn write_gguf(model: &RandomModel, path: &Path) -> Result<()> {
    model.config.validate()?;
    let tensors = RandomTensors::new(model.clone());
    let mut named = Vec::new();
    for (id, dims) in file_tensors(&model.config) {
        if !tensors.contains(id) {
            continue;
        }
        let tensor = match *dims.as_slice() {
            [rows, cols] => {
                let (dtype, stored) = tensors.stored(id, rows, cols)?;
                let bytes = match stored {
                    Stored::Blocks(bytes) => bytes,
                    Stored::Floats(values) => float_bytes(&values, dtype),
                };
                ggml_file::qtensor_from_ggml(dtype, &bytes, dims, &Device::Cpu)?
            }
            _ => {
                let values = tensors.vector(id, dims.iter().product());
                ggml_file::qtensor_from_ggml(GgmlDType::F32, &float_bytes(&values, GgmlDType::F32), dims, &Device::Cpu)?
            }
        };
        named.push((id.gguf_name(), tensor));
    }
    let metadata = metadata(&model.config);
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = named.iter().map(|(k, t)| (k.as_str(), t)).collect();

    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name().with_context(|| format!("{} has no file name", path.display()))?.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| -> Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = BufWriter::new(file);
        gguf_file::write(&mut out, &metadata, &tensors).with_context(|| format!("writing {}", tmp.display()))?;
        out.flush().with_context(|| format!("writing {}", tmp.display()))?;
        out.get_ref().sync_all().with_context(|| format!("flushing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The model's shape under llama.cpp's metadata keys.
fn metadata(c: &ModelConfig) -> Vec<(String, Value)> {
    let arch = c.arch.name();
    let u32_of = |n: usize| Value::U32(n as u32);
    let key = |suffix: &str| format!("{arch}.{suffix}");
    vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String(format!("random {arch}"))),
        (key("vocab_size"), u32_of(c.vocab_size)),
        (key("context_length"), u32_of(c.max_position_embeddings)),
        (key("embedding_length"), u32_of(c.hidden_size)),
        (key("feed_forward_length"), u32_of(c.intermediate_size)),
        (key("block_count"), u32_of(c.num_layers)),
        (key("attention.head_count"), u32_of(c.num_heads)),
        (key("attention.head_count_kv"), u32_of(c.num_kv_heads)),
        (key("attention.key_length"), u32_of(c.head_dim)),
        (key("attention.value_length"), u32_of(c.head_dim)),
        (key("rope.dimension_count"), u32_of(c.head_dim)),
        (key("rope.freq_base"), Value::F32(c.rope_theta)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(c.rms_norm_eps as f32)),
        ("tokenizer.ggml.model".into(), Value::String("none".into())),
    ]
}

/// Every tensor a file of this shape may hold, with its dimensions (`[rows, cols]` for
/// matrices); which ones it does hold is [`RandomTensors::contains`]'s call.
fn file_tensors(c: &ModelConfig) -> Vec<(TensorId, Vec<usize>)> {
    let (hidden, q, kv, ffn) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
    let mut out = vec![
        (TensorId::Embedding, vec![c.vocab_size, hidden]),
        (TensorId::LmHead, vec![c.vocab_size, hidden]),
        (TensorId::FinalNorm, vec![hidden]),
    ];
    for i in 0..c.num_layers {
        let layer = [
            (L::AttnNorm, vec![hidden]),
            (L::Q, vec![q, hidden]),
            (L::K, vec![kv, hidden]),
            (L::V, vec![kv, hidden]),
            (L::QBias, vec![q]),
            (L::KBias, vec![kv]),
            (L::VBias, vec![kv]),
            (L::QNorm, vec![c.head_dim]),
            (L::KNorm, vec![c.head_dim]),
            (L::O, vec![hidden, q]),
            (L::MlpNorm, vec![hidden]),
            (L::Gate, vec![ffn, hidden]),
            (L::Up, vec![ffn, hidden]),
            (L::Down, vec![hidden, ffn]),
        ];
        out.extend(layer.into_iter().map(|(t, dims)| (TensorId::Layer(i, t), dims)));
    }
    out
}

/// Little-endian bytes of `values` in a float storage type.
fn float_bytes(values: &[f32], dtype: GgmlDType) -> Vec<u8> {
    match dtype {
        GgmlDType::F16 => values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        GgmlDType::BF16 => values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Arch;
    use crate::model::{Decoder, DecoderOptions, SeqChunk, WeightsSource};

    fn tiny(arch: Arch, matrices: GgmlDType, output: GgmlDType, tied: bool) -> RandomModel {
        RandomModel {
            config: ModelConfig {
                arch,
                vocab_size: 96,
                hidden_size: 256,
                intermediate_size: 512,
                num_layers: 2,
                num_heads: 4,
                num_kv_heads: 2,
                head_dim: 64,
                rope_theta: 500_000.0,
                rope_scaling: None,
                rms_norm_eps: 1e-5,
                max_position_embeddings: 256,
                tie_word_embeddings: tied,
                attention_bias: arch == Arch::Qwen2,
                qk_norm: arch == Arch::Qwen3,
                bos_token_id: None,
                eos_token_ids: Vec::new(),
            },
            matrices,
            output,
            seed: 11,
        }
    }

    fn logits(model: &Decoder, tokens: &[u32]) -> Vec<f32> {
        let mut kv = model.new_kv();
        let out = model.forward(&mut [SeqChunk { tokens, kv: &mut kv }]).unwrap();
        out.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn a_written_file_loads_back_as_the_same_model() {
        let dir = tempfile::tempdir().unwrap();
        for (arch, matrices, output, tied) in [
            (Arch::Qwen2, GgmlDType::Q4K, GgmlDType::Q6K, true),
            (Arch::Qwen3, GgmlDType::Q8_0, GgmlDType::F16, false),
            (Arch::Llama, GgmlDType::Q4_1, GgmlDType::Q8_0, false),
        ] {
            let model = tiny(arch, matrices, output, tied);
            let path = dir.path().join(format!("{arch}.gguf"));
            write_gguf(&model, &path).unwrap();
            let source = WeightsSource::from_path(&path).unwrap();
            let loaded = Decoder::load(&source, &DecoderOptions::default()).unwrap();
            let mut expected = model.config.clone();
            expected.rms_norm_eps = 1e-5f32 as f64;
            assert_eq!(loaded.config(), &expected, "{arch}");
            let summary = loaded.weights_summary().to_string();
            assert!(summary.contains(&format!("{matrices:?}")) && summary.contains(&format!("{output:?}")), "{summary}");
            // GGUF Llama files permute query and key rows for interleaved RoPE, which random
            // weights have no reason to honour; the other families compute identically.
            if arch != Arch::Llama {
                let random = Decoder::random(&model, &DecoderOptions::default()).unwrap();
                assert_eq!(logits(&loaded, &[3, 40, 95, 7]), logits(&random, &[3, 40, 95, 7]), "{arch}");
            }
        }
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 3, "no temporary file is left behind: {names:?}");
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("model.gguf");
        let err = write_gguf(&tiny(Arch::Llama, GgmlDType::Q8_0, GgmlDType::Q8_0, true), &path).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }
}
