//! The inference core: one decoder for the Llama, Qwen2 and Qwen3 families, loaded from
//! safetensors or GGUF, whose forward pass takes any batch of sequence chunks; and, ahead of it,
//! [`source`] (what `--model` names → local files) and [`presets`] (short names for known models).
//!
//! The model holds only weights. Each sequence's KV cache ([`SeqKv`]) belongs to the caller, so
//! the engine decides which sequences share a step, reuses prefixes by cloning and truncating
//! caches, and a batch of one is just the sequential case.
//!
//! ```no_run
//! use apigen_mt::model::{Decoder, LoadOptions, SeqChunk, WeightsSource};
//! # fn main() -> anyhow::Result<()> {
//! let source = WeightsSource::from_path("model.gguf".as_ref())?;
//! let model = Decoder::load(&source, &LoadOptions::default())?;
//! let (mut a, mut b) = (model.new_kv(), model.new_kv());
//! let logits = model.forward(&mut [
//!     SeqChunk { tokens: &[1, 2, 3], kv: &mut a },
//!     SeqChunk { tokens: &[4], kv: &mut b },
//! ])?; // [2, vocab]: the last token of each chunk
//! # Ok(()) }
//! ```
//!
//! # Batch invariance
//!
//! A sequence's logits should not depend on what else is in the batch. Everything except the
//! matrix products over the stacked tokens is invariant by construction (row-wise ops, and
//! attention computed per sequence). The products are invariant when candle computes each output
//! row independently of the others, which holds for its row-by-row quantized kernels; it does not
//! hold in general for dense (safetensors) weights, where the GEMM may block differently for a
//! different number of rows, nor for quantized types whose x86 kernels switch between a one-row
//! and a many-row path (Q6K). The tests measure how close batched and solo logits are.

pub mod presets;
pub mod source;

mod config;
mod decoder;
mod kv;
mod loader;
mod rope;
mod weights;

pub use config::{Arch, ModelConfig, RopeScaling};
pub use decoder::{Decoder, SeqChunk};
pub use kv::SeqKv;
pub use loader::LoadOptions;
pub use weights::WeightsSource;
