//! What many test modules need: where the shared real model lives.

use std::path::PathBuf;

/// The real SmolLM2-135M-Instruct folder (`../shared/models/smollm2-135m-instruct`, or under
/// `$APIGEN_SHARED` when set), or `None` with a printed notice where it is absent, so that the
/// suite still passes on a machine without it.
pub fn smollm2_dir() -> Option<PathBuf> {
    let root = std::env::var_os("APIGEN_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")));
    let dir = root.join("models/smollm2-135m-instruct");
    if dir.join("model-q4_1.gguf").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}
