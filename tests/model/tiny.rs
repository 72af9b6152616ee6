//! Tiny models with random weights, written in the real file formats, for tests that must not
//! depend on downloads: a Hugging Face `config.json` + `model.safetensors`, or a GGUF file with
//! quantized tensors.

use std::collections::HashMap;
use std::path::Path;

use apigen_mt::model::WeightsSource;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// The shape and family of a tiny model.
#[derive(Debug, Clone)]
pub struct Spec {
    /// "llama", "qwen2" or "qwen3" (the HF `model_type` and the GGUF architecture).
    pub arch: &'static str,
    pub vocab: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub tie: bool,
    /// Llama 3 scaling as (factor, low_freq_factor, high_freq_factor, original_max_positions).
    pub llama3_scaling: Option<(f32, f32, f32, usize)>,
    pub seed: u64,
}

impl Spec {
    /// Llama with grouped-query attention: 4 query heads share 2 key/value heads.
    pub fn llama() -> Self {
        Spec {
            arch: "llama",
            vocab: 96,
            hidden: 64,
            intermediate: 96,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            tie: false,
            llama3_scaling: None,
            seed: 1,
        }
    }

    pub fn qwen2() -> Self {
        Spec { arch: "qwen2", seed: 2, ..Self::llama() }
    }

    /// Qwen3 with heads wider than `hidden / heads`, as in the real models.
    pub fn qwen3() -> Self {
        Spec { arch: "qwen3", head_dim: 32, tie: true, seed: 3, ..Self::llama() }
    }

    pub const MAX_POSITIONS: usize = 256;
    pub const ROPE_THETA: f32 = 10_000.0;
    pub const RMS_EPS: f32 = 1e-5;
    pub const BOS: u32 = 1;
    pub const EOS: u32 = 2;

    /// A config.json that both this crate and candle-transformers' config structs accept.
    pub fn config_json(&self) -> serde_json::Value {
        let scaling = self.llama3_scaling.map(|(factor, low, high, original)| {
            json!({"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                   "high_freq_factor": high, "original_max_position_embeddings": original})
        });
        json!({
            "model_type": self.arch,
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "rope_theta": Self::ROPE_THETA,
            "rope_scaling": scaling,
            "rms_norm_eps": Self::RMS_EPS,
            "max_position_embeddings": Self::MAX_POSITIONS,
            "tie_word_embeddings": self.tie,
            "attention_bias": false,
            "hidden_act": "silu",
            "sliding_window": 4096,
            "use_sliding_window": false,
            "max_window_layers": self.layers,
            "bos_token_id": Self::BOS,
            "eos_token_id": Self::EOS,
        })
    }

    /// Random weights under Hugging Face names, the same for the same spec.
    pub fn weights(&self) -> Vec<(String, Tensor)> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut out = Vec::new();
        let (h, q, kv, f) = (self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate);
        let mut add = |name: String, shape: &[usize], center: f32, spread: f32| {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|_| center + rng.random_range(-spread..spread)).collect();
            out.push((name, Tensor::from_vec(data, shape, &Device::Cpu).expect("tensor")));
        };
        // Spreads keep activations near unit scale so every layer matters to the logits.
        let w = |fan_in: usize| (3.0 / fan_in as f32).sqrt();
        add("model.embed_tokens.weight".into(), &[self.vocab, h], 0.0, 1.0);
        for i in 0..self.layers {
            let p = format!("model.layers.{i}");
            add(format!("{p}.input_layernorm.weight"), &[h], 1.0, 0.2);
            add(format!("{p}.self_attn.q_proj.weight"), &[q, h], 0.0, w(h));
            add(format!("{p}.self_attn.k_proj.weight"), &[kv, h], 0.0, w(h));
            add(format!("{p}.self_attn.v_proj.weight"), &[kv, h], 0.0, w(h));
            add(format!("{p}.self_attn.o_proj.weight"), &[h, q], 0.0, w(q));
            if self.arch == "qwen2" {
                add(format!("{p}.self_attn.q_proj.bias"), &[q], 0.0, 0.5);
                add(format!("{p}.self_attn.k_proj.bias"), &[kv], 0.0, 0.5);
                add(format!("{p}.self_attn.v_proj.bias"), &[kv], 0.0, 0.5);
            }
            if self.arch == "qwen3" {
                add(format!("{p}.self_attn.q_norm.weight"), &[self.head_dim], 1.0, 0.2);
                add(format!("{p}.self_attn.k_norm.weight"), &[self.head_dim], 1.0, 0.2);
            }
            add(format!("{p}.post_attention_layernorm.weight"), &[h], 1.0, 0.2);
            add(format!("{p}.mlp.gate_proj.weight"), &[f, h], 0.0, w(h));
            add(format!("{p}.mlp.up_proj.weight"), &[f, h], 0.0, w(h));
            add(format!("{p}.mlp.down_proj.weight"), &[h, f], 0.0, w(f));
        }
        add("model.norm.weight".into(), &[h], 1.0, 0.2);
        if !self.tie {
            add("lm_head.weight".into(), &[self.vocab, h], 0.0, w(h));
        }
        out
    }

    /// Writes `config.json` and `model.safetensors` (f32) into `dir`.
    pub fn write_safetensors(&self, dir: &Path) -> WeightsSource {
        let config = dir.join("config.json");
        std::fs::write(&config, self.config_json().to_string()).expect("write config");
        let file = dir.join("model.safetensors");
        let tensors: HashMap<String, Tensor> = self.weights().into_iter().collect();
        candle_core::safetensors::save(&tensors, &file).expect("write safetensors");
        WeightsSource::Safetensors { config, files: vec![file] }
    }

    /// Writes a GGUF file: norms and biases in F32, each matrix in `quant(gguf_name)`.
    pub fn write_gguf(&self, path: &Path, quant: impl Fn(&str) -> GgmlDType) -> WeightsSource {
        self.write_gguf_with(path, quant, |_| {})
    }

    /// Like [`Spec::write_gguf`], letting `edit` change the metadata first.
    pub fn write_gguf_with(
        &self,
        path: &Path,
        quant: impl Fn(&str) -> GgmlDType,
        edit: impl FnOnce(&mut Vec<(String, gguf_file::Value)>),
    ) -> WeightsSource {
        use gguf_file::Value as V;
        let a = self.arch;
        let mut metadata = vec![
            ("general.architecture".to_string(), V::String(a.into())),
            // candle's quantized Qwen3 builds its RoPE table in F16 unless told the model is F32.
            ("general.dtype".into(), V::U32(0)),
            (format!("{a}.block_count"), V::U32(self.layers as u32)),
            (format!("{a}.embedding_length"), V::U32(self.hidden as u32)),
            (format!("{a}.feed_forward_length"), V::U32(self.intermediate as u32)),
            (format!("{a}.attention.head_count"), V::U32(self.heads as u32)),
            (format!("{a}.attention.head_count_kv"), V::U32(self.kv_heads as u32)),
            (format!("{a}.attention.key_length"), V::U32(self.head_dim as u32)),
            (format!("{a}.attention.value_length"), V::U32(self.head_dim as u32)),
            (format!("{a}.rope.dimension_count"), V::U32(self.head_dim as u32)),
            (format!("{a}.rope.freq_base"), V::F32(Self::ROPE_THETA)),
            (format!("{a}.attention.layer_norm_rms_epsilon"), V::F32(Self::RMS_EPS)),
            (format!("{a}.context_length"), V::U32(Self::MAX_POSITIONS as u32)),
            ("tokenizer.ggml.bos_token_id".into(), V::U32(Self::BOS)),
            ("tokenizer.ggml.eos_token_id".into(), V::U32(Self::EOS)),
        ];
        edit(&mut metadata);
        let tensors: Vec<(String, QTensor)> = self
            .weights()
            .into_iter()
            .map(|(name, t)| {
                let name = gguf_name(&name);
                let dtype = if t.rank() == 1 { GgmlDType::F32 } else { quant(&name) };
                let q = QTensor::quantize(&t, dtype).expect("quantize");
                (name, q)
            })
            .collect();
        let md: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut file = std::fs::File::create(path).expect("create gguf");
        gguf_file::write(&mut file, &md, &ts).expect("write gguf");
        WeightsSource::Gguf(path.to_path_buf())
    }
}

/// The GGUF name of a Hugging Face tensor name (llama.cpp's convention).
pub fn gguf_name(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.").expect("a layer tensor");
    let (index, part) = rest.split_once('.').expect("layer index");
    let part = match part {
        "input_layernorm.weight" => "attn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        other => panic!("no GGUF name for {other}"),
    };
    format!("blk.{index}.{part}")
}
