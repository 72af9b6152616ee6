//! Presets: short names for models we know how to run well.
//!
//! A preset is a TOML file named `<name>.toml` that maps the name to a model spec (a Hugging Face
//! repo, optionally with a GGUF file in it), the tool-call format the model was trained on and its
//! context length. The presets in the repository's `models/` folder are compiled into the binary,
//! so that `--model qwen2.5-0.5b-instruct` works from any directory. Users add their own (or
//! override a built-in one) by dropping files into `$APIGEN_MT_MODELS` or
//! `$XDG_CONFIG_HOME/apigen-mt/models` (default `~/.config/apigen-mt/models`).
//!
//! A preset may also record its model's architecture (a `[shape]` table, from the published
//! config) and how its file stores weights, which is all `bench --random-weights` needs to
//! measure the model without downloading it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use crate::chat::tools::ToolFormat;
use crate::model::config::{Arch, ModelConfig};
use crate::model::random::{parse_storage, RandomModel};

/// One preset, as written in its TOML file (the name is the file's stem).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    #[serde(skip_deserializing)]
    pub name: String,
    pub description: String,
    /// A hub spec: `org/name`, `org/name@revision` or `org/name:file.gguf`.
    pub model: String,
    pub tool_format: ToolFormat,
    pub context_length: usize,
    /// The model's licence as the Hugging Face hub names it (`apache-2.0`, `llama3.1`, ...),
    /// for the dataset card of a run that used it; optional in user files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The architecture, for building the model with random weights; optional in user files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// Where the preset came from: "built-in" or the file's path.
    #[serde(skip_deserializing)]
    pub origin: String,
}

/// A model's architecture as its published config gives it, and how the preset's file stores
/// its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// The family: "llama", "qwen2" or "qwen3".
    pub arch: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    /// Width of one attention head; `hidden_size / num_heads` when absent (Qwen3 sets its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    pub rope_theta: f32,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    /// How the file stores most matrices, as llama.cpp spells the type: "Q4_K", "Q8_0", "BF16".
    pub weights: String,
    /// How it stores the LM head (and the embedding, when tied); `weights` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_weights: Option<String>,
}

impl Shape {
    /// The model this shape describes, with `context_length` positions and weights from `seed`.
    pub fn random_model(&self, context_length: usize, seed: u64) -> Result<RandomModel> {
        let Some(arch) = Arch::from_name(&self.arch) else {
            bail!("unknown arch {:?}; expected llama, qwen2 or qwen3", self.arch);
        };
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if self.num_heads > 0 && self.hidden_size.is_multiple_of(self.num_heads) => self.hidden_size / self.num_heads,
            None => bail!("hidden_size ({}) is not a multiple of num_heads ({}); give head_dim", self.hidden_size, self.num_heads),
        };
        let config = ModelConfig {
            arch,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_layers,
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim,
            rope_theta: self.rope_theta,
            rope_scaling: None,
            rms_norm_eps: self.rms_norm_eps,
            max_position_embeddings: context_length,
            tie_word_embeddings: self.tie_word_embeddings,
            attention_bias: arch == Arch::Qwen2,
            qk_norm: arch == Arch::Qwen3,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
        };
        config.validate()?;
        let matrices = parse_storage(&self.weights).context("weights")?;
        let output = match &self.output_weights {
            Some(name) => parse_storage(name).context("output_weights")?,
            None => matrices,
        };
        Ok(RandomModel { config, matrices, output, seed })
    }
}

/// The presets shipped with the crate, as (file name, contents).
const BUILTIN: &[(&str, &str)] = &[
    ("smollm2-135m-instruct", include_str!("../../models/smollm2-135m-instruct.toml")),
    ("smollm2-360m-instruct", include_str!("../../models/smollm2-360m-instruct.toml")),
    ("smollm2-1.7b-instruct", include_str!("../../models/smollm2-1.7b-instruct.toml")),
    ("qwen2.5-0.5b-instruct", include_str!("../../models/qwen2.5-0.5b-instruct.toml")),
    ("qwen2.5-1.5b-instruct", include_str!("../../models/qwen2.5-1.5b-instruct.toml")),
    ("qwen2.5-3b-instruct", include_str!("../../models/qwen2.5-3b-instruct.toml")),
    ("qwen2.5-7b-instruct", include_str!("../../models/qwen2.5-7b-instruct.toml")),
    ("llama-3.2-1b-instruct", include_str!("../../models/llama-3.2-1b-instruct.toml")),
    ("llama-3.2-3b-instruct", include_str!("../../models/llama-3.2-3b-instruct.toml")),
    ("llama-3.1-8b-instruct", include_str!("../../models/llama-3.1-8b-instruct.toml")),
    ("qwen3-0.6b", include_str!("../../models/qwen3-0.6b.toml")),
    ("qwen3-1.7b", include_str!("../../models/qwen3-1.7b.toml")),
    ("qwen3-4b", include_str!("../../models/qwen3-4b.toml")),
    ("qwen3-8b", include_str!("../../models/qwen3-8b.toml")),
    ("xlam-2-1b-fc-r", include_str!("../../models/xlam-2-1b-fc-r.toml")),
    ("xlam-2-3b-fc-r", include_str!("../../models/xlam-2-3b-fc-r.toml")),
    ("xlam-2-8b-fc-r", include_str!("../../models/xlam-2-8b-fc-r.toml")),
];

impl Preset {
    fn parse(name: &str, text: &str, origin: &str) -> Result<Self> {
        let mut preset: Preset = toml::from_str(text).with_context(|| format!("invalid preset {origin}"))?;
        if preset.context_length == 0 {
            bail!("invalid preset {origin}: context_length must be positive");
        }
        if let Some(shape) = &preset.shape {
            shape.random_model(preset.context_length, 0).with_context(|| format!("invalid [shape] in preset {origin}"))?;
        }
        preset.name = name.to_string();
        preset.origin = origin.to_string();
        Ok(preset)
    }

    /// This preset's model with random weights from `seed`, for `bench --random-weights`.
    pub fn random_model(&self, seed: u64) -> Result<RandomModel> {
        let Some(shape) = &self.shape else {
            bail!("preset {} ({}) has no [shape] table, so it cannot be built with random weights", self.name, self.origin);
        };
        shape.random_model(self.context_length, seed).with_context(|| format!("invalid [shape] in preset {}", self.origin))
    }
}

/// The folders user presets are read from, in increasing priority.
pub fn user_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")));
    if let Some(config) = config {
        dirs.push(config.join("apigen-mt").join("models"));
    }
    if let Some(dir) = std::env::var_os("APIGEN_MT_MODELS").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

/// All presets, sorted by name: the built-in ones, then user files from `dirs` (a user file with
/// a built-in's name replaces it). A malformed user file is an error naming the file.
pub fn load_all(dirs: &[PathBuf]) -> Result<Vec<Preset>> {
    let mut presets = Vec::new();
    for (name, text) in BUILTIN {
        presets.push(Preset::parse(name, text, "built-in")?);
    }
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("reading presets in {}", dir.display())),
        };
        let mut files: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|ext| ext == "toml")).collect();
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading preset {}", path.display()))?;
            let preset = Preset::parse(name, &text, &path.display().to_string())?;
            presets.retain(|p| p.name != preset.name);
            presets.push(preset);
        }
    }
    presets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(presets)
}

/// The preset called `name`, if any.
pub fn find(name: &str, dirs: &[PathBuf]) -> Result<Option<Preset>> {
    Ok(load_all(dirs)?.into_iter().find(|p| p.name == name))
}

/// Preset `name`, to be built with random weights; an unknown name is an error that lists the
/// presets that have a shape.
pub fn find_random(name: &str) -> Result<Preset> {
    let all = load_all(&user_dirs())?;
    let known: Vec<&str> = all.iter().filter(|p| p.shape.is_some()).map(|p| p.name.as_str()).collect();
    let known = known.join(", ");
    match all.into_iter().find(|p| p.name == name) {
        Some(preset) => Ok(preset),
        None => bail!("unknown preset {name:?} for random weights; known: {known}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_presets_parse_and_name_hub_repos() {
        let presets = load_all(&[]).unwrap();
        assert_eq!(presets.len(), BUILTIN.len());
        for preset in &presets {
            let repo = preset.model.split([':', '@']).next().unwrap();
            assert_eq!(repo.split('/').count(), 2, "{}: {}", preset.name, preset.model);
            assert!(preset.context_length >= 8192, "{}", preset.name);
        }
        let qwen = presets.iter().find(|p| p.name == "qwen2.5-0.5b-instruct").unwrap();
        assert_eq!(qwen.tool_format, ToolFormat::Hermes);
    }

    /// The nominal size in a preset's name ("1b", "0.5b", "135m"), in parameters.
    fn nominal_size(name: &str) -> f64 {
        name.split('-')
            .find_map(|part| {
                let (number, unit) = part.split_at(part.len().checked_sub(1)?);
                let scale = match unit {
                    "b" => 1e9,
                    "m" => 1e6,
                    _ => return None,
                };
                Some(number.parse::<f64>().ok()? * scale)
            })
            .unwrap_or_else(|| panic!("no size in {name}"))
    }

    #[test]
    fn builtin_shapes_are_consistent_and_match_the_size_in_the_name() {
        for preset in load_all(&[]).unwrap() {
            let name = &preset.name;
            let model = preset.random_model(0).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let c = &model.config;
            assert_eq!(c.num_heads % c.num_kv_heads, 0, "{name}");
            if c.arch != Arch::Qwen3 {
                assert_eq!(c.num_heads * c.head_dim, c.hidden_size, "{name}");
            }
            assert_eq!(c.max_position_embeddings, preset.context_length, "{name}");
            for cols in [c.hidden_size, c.q_dim(), c.intermediate_size] {
                crate::model::random::fitting(model.matrices, cols).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            }
            crate::model::random::fitting(model.output, c.hidden_size).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            // Parameters, counting a tied embedding once; norms are too small to matter.
            let layer = c.hidden_size * (2 * c.q_dim() + 2 * c.kv_dim()) + 3 * c.hidden_size * c.intermediate_size;
            let embeddings = if c.tie_word_embeddings { 1 } else { 2 } * c.vocab_size * c.hidden_size;
            let params = (c.num_layers * layer + embeddings) as f64;
            let ratio = params / nominal_size(name);
            assert!((0.75..1.6).contains(&ratio), "{name}: {params} parameters");
        }
    }

    #[test]
    fn a_bad_shape_names_the_file_and_a_missing_one_is_reported_for_random_weights() {
        let dir = tempfile::tempdir().unwrap();
        let head = "description = \"d\"\nmodel = \"me/m\"\ntool_format = \"generic\"\ncontext_length = 4096\n";
        std::fs::write(dir.path().join("plain.toml"), head).unwrap();
        let plain = find("plain", &[dir.path().to_path_buf()]).unwrap().unwrap();
        let err = format!("{:#}", plain.random_model(0).unwrap_err());
        assert!(err.contains("plain") && err.contains("[shape]"), "{err}");

        let shape = "[shape]\narch = \"llama\"\nvocab_size = 64\nhidden_size = 64\nintermediate_size = 128\n\
                     num_layers = 1\nnum_heads = 4\nnum_kv_heads = 3\nrope_theta = 1e4\nrms_norm_eps = 1e-5\n\
                     tie_word_embeddings = true\nweights = \"Q8_0\"\n";
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, format!("{head}{shape}")).unwrap();
        let err = format!("{:#}", load_all(&[dir.path().to_path_buf()]).unwrap_err());
        assert!(err.contains(&bad.display().to_string()) && err.contains("num_kv_heads"), "{err}");
    }

    #[test]
    fn user_file_overrides_builtin_and_bad_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("qwen3-0.6b.toml"),
            "description = \"mine\"\nmodel = \"me/qwen\"\ntool_format = \"generic\"\ncontext_length = 4096\n",
        )
        .unwrap();
        let presets = load_all(&[dir.path().to_path_buf()]).unwrap();
        let mine = presets.iter().find(|p| p.name == "qwen3-0.6b").unwrap();
        assert_eq!(mine.model, "me/qwen");
        assert_eq!(presets.iter().filter(|p| p.name == "qwen3-0.6b").count(), 1);

        let bad = dir.path().join("broken.toml");
        std::fs::write(&bad, "model = \"x/y\"\ntool_format = \"morse\"\n").unwrap();
        let err = format!("{:#}", load_all(&[dir.path().to_path_buf()]).unwrap_err());
        assert!(err.contains(&bad.display().to_string()), "{err}");
    }
}
