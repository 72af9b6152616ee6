//! Presets: short names for models we know how to run well.
//!
//! A preset is a TOML file named `<name>.toml` that maps the name to a model spec (a Hugging Face
//! repo, optionally with a GGUF file in it), the tool-call format the model was trained on and its
//! context length. The presets in the repository's `models/` folder are compiled into the binary,
//! so that `--model qwen2.5-0.5b-instruct` works from any directory. Users add their own (or
//! override a built-in one) by dropping files into `$APIGEN_MT_MODELS` or
//! `$XDG_CONFIG_HOME/apigen-mt/models` (default `~/.config/apigen-mt/models`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// How a model writes tool calls, which decides how its replies are parsed and how tools are
/// described to it when its own template cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolFormat {
    /// `<tool_call>{"name": ..., "arguments": ...}</tool_call>` (Qwen, Hermes).
    Hermes,
    /// Llama 3.1+: a bare JSON object `{"name": ..., "parameters": ...}`.
    Llama3,
    /// xLAM: a JSON list of `{"name": ..., "arguments": ...}`.
    Xlam,
    /// `[TOOL_CALLS] [...]`.
    Mistral,
    /// Our own prompt and format, for models trained on none of the above.
    Generic,
}

impl ToolFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolFormat::Hermes => "hermes",
            ToolFormat::Llama3 => "llama3",
            ToolFormat::Xlam => "xlam",
            ToolFormat::Mistral => "mistral",
            ToolFormat::Generic => "generic",
        }
    }
}

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
    /// Where the preset came from: "built-in" or the file's path.
    #[serde(skip_deserializing)]
    pub origin: String,
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
        let mut preset: Preset =
            toml::from_str(text).with_context(|| format!("invalid preset {origin}"))?;
        if preset.context_length == 0 {
            bail!("invalid preset {origin}: context_length must be positive");
        }
        preset.name = name.to_string();
        preset.origin = origin.to_string();
        Ok(preset)
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
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading preset {}", path.display()))?;
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
