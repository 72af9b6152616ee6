//! The shape of a decoder-only transformer, read from a Hugging Face `config.json` or from GGUF
//! metadata. One struct describes every family the decoder runs; the per-family differences are
//! plain fields (`attention_bias`, `qk_norm`, ...) rather than separate model types.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use serde::Deserialize;
use serde_json::Value;

/// The model families the decoder implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Llama 1/2/3 and Mistral: plain attention, optional Llama 3 RoPE scaling.
    Llama,
    /// Qwen2 / Qwen2.5: bias on the q, k and v projections.
    Qwen2,
    /// Qwen3: RMSNorm on each query and key head before RoPE.
    Qwen3,
}

impl Arch {
    /// The family of a GGUF `general.architecture` (or preset `arch`) name.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Llama 3.x ("llama3" type) RoPE frequency scaling: long wavelengths are stretched by `factor`,
/// short ones kept, and the band between interpolated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

/// Everything the decoder needs to know about a model's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rope_scaling: Option<RopeScaling>,
    pub rms_norm_eps: f64,
    /// The longest sequence the model may see. For sliding-window models this is capped at the
    /// window, where full attention and windowed attention agree.
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on the q, k and v projections (Qwen2).
    pub attention_bias: bool,
    /// RMSNorm on each query and key head (Qwen3).
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// Query heads that share one key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// Width of the concatenated query heads.
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Width of the concatenated key (or value) heads.
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read model config {}", path.display()))?;
        Self::from_hf_json_str(&text).with_context(|| format!("invalid model config {}", path.display()))
    }

    /// Parses the text of a Hugging Face `config.json`; errors do not name a file.
    pub fn from_hf_json_str(text: &str) -> Result<Self> {
        let raw: HfConfig = serde_json::from_str(text)?;
        raw.into_config()
    }

    /// Reads the model shape from a GGUF file's metadata and tensor directory (the directory
    /// says whether the LM head is tied: GGUF files omit `output.weight` when it is).
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let md = &content.metadata;
        let arch_name = match md.get("general.architecture") {
            Some(gguf_file::Value::String(s)) => s.as_str(),
            Some(other) => bail!("general.architecture is not a string: {other:?}"),
            None => bail!("metadata has no general.architecture"),
        };
        let Some(arch) = Arch::from_name(arch_name) else {
            bail!("unsupported architecture {arch_name:?} (general.architecture); supported: llama, qwen2, qwen3");
        };
        let key = |suffix: &str| format!("{arch_name}.{suffix}");
        let hidden_size = md_usize(md, &key("embedding_length"))?;
        let num_heads = md_usize(md, &key("attention.head_count"))?;
        let num_kv_heads = md_usize_or(md, &key("attention.head_count_kv"), num_heads)?;
        // Zero heads is caught by `validate`.
        let default_head_dim = hidden_size.checked_div(num_heads).unwrap_or(0);
        let head_dim = md_usize_or(md, &key("attention.key_length"), default_head_dim)?;
        let value_dim = md_usize_or(md, &key("attention.value_length"), head_dim)?;
        if value_dim != head_dim {
            bail!("value heads ({value_dim}) differ from key heads ({head_dim}); not supported");
        }
        let rope_dim = md_usize_or(md, &key("rope.dimension_count"), head_dim)?;
        if rope_dim != head_dim {
            bail!("RoPE covers {rope_dim} of {head_dim} head dimensions; partial RoPE is not supported");
        }
        if let Some(kind) = md.get(&key("rope.scaling.type")) {
            match kind {
                gguf_file::Value::String(s) if s == "none" => {}
                other => bail!("RoPE scaling {other:?} ({}) is not supported", key("rope.scaling.type")),
            }
        }
        let vocab_size = match md.get(&key("vocab_size")) {
            Some(_) => md_usize(md, &key("vocab_size"))?,
            None => match md.get("tokenizer.ggml.tokens") {
                Some(gguf_file::Value::Array(tokens)) => tokens.len(),
                _ => content
                    .tensor_infos
                    .get("token_embd.weight")
                    .and_then(|t| t.shape.dims().first().copied())
                    .context("cannot tell the vocabulary size: no vocab_size, tokenizer.ggml.tokens or token_embd.weight")?,
            },
        };
        let mut eos_token_ids = Vec::new();
        for name in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            if md.contains_key(name) {
                let id = md_u32(md, name)?;
                if !eos_token_ids.contains(&id) {
                    eos_token_ids.push(id);
                }
            }
        }
        let bos_token_id = match md.contains_key("tokenizer.ggml.bos_token_id") {
            true => Some(md_u32(md, "tokenizer.ggml.bos_token_id")?),
            false => None,
        };
        let config = ModelConfig {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: md_usize(md, &key("feed_forward_length"))?,
            num_layers: md_usize(md, &key("block_count"))?,
            num_heads,
            num_kv_heads,
            head_dim,
            rope_theta: md_f32_or(md, &key("rope.freq_base"), 10_000.0)?,
            rope_scaling: None,
            rms_norm_eps: md_f32(md, &key("attention.layer_norm_rms_epsilon"))? as f64,
            max_position_embeddings: md_usize(md, &key("context_length"))?,
            tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
            attention_bias: arch == Arch::Qwen2,
            qk_norm: arch == Arch::Qwen3,
            bos_token_id,
            eos_token_ids,
        };
        config.validate()?;
        Ok(config)
    }

    /// Rejects shapes the decoder cannot run, so later code may divide and index freely.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, value) in positive {
            if value == 0 {
                bail!("{name} must be positive");
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            bail!("num_heads ({}) is not a multiple of num_kv_heads ({})", self.num_heads, self.num_kv_heads);
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!("head_dim ({}) must be even for RoPE", self.head_dim);
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            bail!("rope_theta ({}) must be a positive number", self.rope_theta);
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            bail!("rms_norm_eps ({}) must be a positive number", self.rms_norm_eps);
        }
        if let Some(s) = &self.rope_scaling {
            let ok = s.factor.is_finite()
                && s.factor > 0.0
                && s.low_freq_factor.is_finite()
                && s.high_freq_factor.is_finite()
                && s.high_freq_factor > s.low_freq_factor
                && s.low_freq_factor > 0.0
                && s.original_max_position_embeddings > 0;
            if !ok {
                bail!("invalid llama3 rope_scaling {s:?}");
            }
        }
        for &id in self.eos_token_ids.iter().chain(self.bos_token_id.iter()) {
            if id as usize >= self.vocab_size {
                bail!("special token id {id} is outside the vocabulary ({})", self.vocab_size);
            }
        }
        Ok(())
    }
}

/// The fields of a Hugging Face `config.json` that matter here; defaults follow `transformers`.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    rms_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    hidden_act: Option<String>,
    sliding_window: Option<usize>,
    use_sliding_window: Option<bool>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<TokenIds>,
}

/// `eos_token_id` is an integer in most configs and a list in some (Llama 3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl HfConfig {
    fn into_config(self) -> Result<ModelConfig> {
        let arch = match self.model_type.as_str() {
            "llama" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            other => bail!("unsupported architecture {other:?} (model_type); supported: llama, mistral, qwen2, qwen3"),
        };
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                bail!("hidden_act {act:?} is not supported (only silu)");
            }
        }
        if self.mlp_bias == Some(true) {
            bail!("mlp_bias is not supported");
        }
        // Qwen2 always has q/k/v bias. Elsewhere `attention_bias` also adds an output-projection
        // bias, which this decoder does not implement.
        let attention_bias = match arch {
            Arch::Qwen2 => true,
            Arch::Llama | Arch::Qwen3 => {
                if self.attention_bias == Some(true) {
                    bail!("attention_bias is not supported for {}", self.model_type);
                }
                false
            }
        };
        let default_max_positions = match arch {
            Arch::Llama => 2048,
            Arch::Qwen2 | Arch::Qwen3 => 32_768,
        };
        let mut max_position_embeddings = self.max_position_embeddings.unwrap_or(default_max_positions);
        // Mistral applies its window whenever it is set; Qwen only when `use_sliding_window`.
        let window = match (self.model_type.as_str(), self.use_sliding_window) {
            ("mistral", _) | (_, Some(true)) => self.sliding_window,
            _ => None,
        };
        if let Some(window) = window {
            max_position_embeddings = max_position_embeddings.min(window);
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None => {
                if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
                    bail!("hidden_size ({}) is not a multiple of num_attention_heads ({})", self.hidden_size, self.num_attention_heads);
                }
                self.hidden_size / self.num_attention_heads
            }
        };
        let eos_token_ids = match self.eos_token_id {
            None => Vec::new(),
            Some(TokenIds::One(id)) => vec![id],
            Some(TokenIds::Many(ids)) => ids,
        };
        let config = ModelConfig {
            arch,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            num_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            rope_theta: self.rope_theta.unwrap_or(10_000.0) as f32,
            rope_scaling: parse_rope_scaling(self.rope_scaling.as_ref())?,
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            attention_bias,
            qk_norm: arch == Arch::Qwen3,
            bos_token_id: self.bos_token_id,
            eos_token_ids,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Accepts no scaling (`null`, absent, or type "default") and the Llama 3 scheme; anything
/// else would silently change the model's positions, so it is refused.
fn parse_rope_scaling(value: Option<&Value>) -> Result<Option<RopeScaling>> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = value.get("rope_type").or_else(|| value.get("type")).and_then(Value::as_str).unwrap_or("default");
    match kind {
        "default" => Ok(None),
        "llama3" => {
            let number = |name: &str| {
                value.get(name).and_then(Value::as_f64).with_context(|| format!("rope_scaling.{name} is missing or not a number"))
            };
            let original = value
                .get("original_max_position_embeddings")
                .and_then(Value::as_u64)
                .context("rope_scaling.original_max_position_embeddings is missing or not an integer")?;
            Ok(Some(RopeScaling {
                factor: number("factor")? as f32,
                low_freq_factor: number("low_freq_factor")? as f32,
                high_freq_factor: number("high_freq_factor")? as f32,
                original_max_position_embeddings: usize::try_from(original)?,
            }))
        }
        other => bail!("rope_scaling type {other:?} is not supported (only llama3)"),
    }
}

fn md_value<'a>(md: &'a HashMap<String, gguf_file::Value>, key: &str) -> Result<&'a gguf_file::Value> {
    md.get(key).with_context(|| format!("metadata has no {key}"))
}

/// GGUF writers disagree on integer widths, so any non-negative integer type is accepted.
fn md_u64(md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<u64> {
    use gguf_file::Value as V;
    let value = md_value(md, key)?;
    let n = match value {
        V::U8(v) => Some(*v as u64),
        V::U16(v) => Some(*v as u64),
        V::U32(v) => Some(*v as u64),
        V::U64(v) => Some(*v),
        V::I8(v) => u64::try_from(*v).ok(),
        V::I16(v) => u64::try_from(*v).ok(),
        V::I32(v) => u64::try_from(*v).ok(),
        V::I64(v) => u64::try_from(*v).ok(),
        _ => None,
    };
    n.with_context(|| format!("{key} is not a non-negative integer: {value:?}"))
}

fn md_usize(md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<usize> {
    let n = md_u64(md, key)?;
    usize::try_from(n).with_context(|| format!("{key} is too large: {n}"))
}

fn md_u32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<u32> {
    let n = md_u64(md, key)?;
    u32::try_from(n).with_context(|| format!("{key} is too large: {n}"))
}

fn md_usize_or(md: &HashMap<String, gguf_file::Value>, key: &str, default: usize) -> Result<usize> {
    if md.contains_key(key) {
        md_usize(md, key)
    } else {
        Ok(default)
    }
}

fn md_f32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Result<f32> {
    match md_value(md, key)? {
        gguf_file::Value::F32(v) => Ok(*v),
        gguf_file::Value::F64(v) => Ok(*v as f32),
        other => bail!("{key} is not a number: {other:?}"),
    }
}

fn md_f32_or(md: &HashMap<String, gguf_file::Value>, key: &str, default: f32) -> Result<f32> {
    if md.contains_key(key) {
        md_f32(md, key)
    } else {
        Ok(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOL: &str = r#"{
        "model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "rms_norm_eps": 1e-05, "rope_theta": 100000, "rope_scaling": null,
        "max_position_embeddings": 8192, "tie_word_embeddings": true, "attention_bias": false,
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"
    }"#;

    #[test]
    fn reads_a_llama_config() {
        let c = ModelConfig::from_hf_json_str(SMOL).unwrap();
        assert_eq!(c.arch, Arch::Llama);
        assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim, c.kv_groups()), (9, 3, 64, 3));
        assert_eq!(c.eos_token_ids, vec![2]);
        assert_eq!(c.bos_token_id, Some(1));
        assert!(c.tie_word_embeddings && !c.attention_bias && !c.qk_norm);
        assert_eq!(c.rope_theta, 100_000.0);
    }

    #[test]
    fn reads_llama3_scaling_and_an_eos_list() {
        let text = SMOL.replace(
            r#""rope_scaling": null"#,
            r#""rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#,
        );
        let text = text.replace(r#""eos_token_id": 2"#, r#""eos_token_id": [2, 7]"#);
        let c = ModelConfig::from_hf_json_str(&text).unwrap();
        assert_eq!(c.eos_token_ids, vec![2, 7]);
        let s = c.rope_scaling.unwrap();
        assert_eq!((s.factor, s.original_max_position_embeddings), (8.0, 8192));
    }

    #[test]
    fn refuses_unknown_families_and_scalings() {
        let err = ModelConfig::from_hf_json_str(&SMOL.replace("\"llama\"", "\"gpt2\"")).unwrap_err();
        assert!(err.to_string().contains("gpt2"), "{err}");
        let yarn = SMOL.replace(r#""rope_scaling": null"#, r#""rope_scaling": {"type": "yarn", "factor": 4.0}"#);
        let err = ModelConfig::from_hf_json_str(&yarn).unwrap_err();
        assert!(err.to_string().contains("yarn"), "{err}");
    }

    #[test]
    fn refuses_heads_that_do_not_group() {
        let text = SMOL.replace(r#""num_key_value_heads": 3"#, r#""num_key_value_heads": 4"#);
        let err = ModelConfig::from_hf_json_str(&text).unwrap_err();
        assert!(err.to_string().contains("num_kv_heads"), "{err}");
    }

    #[test]
    fn qwen_defaults_follow_the_family() {
        let text = SMOL
            .replace("\"llama\"", "\"qwen2\"")
            .replace(r#""hidden_act": "silu""#, r#""hidden_act": "silu", "sliding_window": 4096, "use_sliding_window": true"#);
        let c = ModelConfig::from_hf_json_str(&text).unwrap();
        assert!(c.attention_bias && !c.qk_norm);
        assert_eq!(c.max_position_embeddings, 4096, "the window caps the context");
        let c = ModelConfig::from_hf_json_str(&SMOL.replace("\"llama\"", "\"qwen3\"")).unwrap();
        assert!(c.qk_norm && !c.attention_bias);
    }
}
