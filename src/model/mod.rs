//! Models: where their files come from and the presets that name them.

pub mod presets;
pub mod source;

use std::path::PathBuf;

/// The weights of a model, as local files.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightsSource {
    Safetensors { config: PathBuf, files: Vec<PathBuf> },
    Gguf(PathBuf),
}
