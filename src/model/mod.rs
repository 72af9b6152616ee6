//! The inference core: one decoder for the Llama, Qwen2 and Qwen3 families, loaded from
//! safetensors or GGUF, whose forward pass takes any batch of sequence chunks; and, ahead of it,
//! [`source`] (what `--model` names → local files) and [`presets`] (short names for known models).
//!
//! The model holds only weights. Each sequence's KV cache ([`SeqKv`]) belongs to the caller, so
//! the engine decides which sequences share a step, reuses prefixes by cloning and truncating
//! caches (paged, so clones share memory), and a batch of one is just the sequential case.
//!
//! ```no_run
//! use apigen_mt::model::{Decoder, DecoderOptions, SeqChunk, WeightsSource};
//! # fn main() -> anyhow::Result<()> {
//! let source = WeightsSource::from_path("model.gguf".as_ref())?;
//! let model = Decoder::load(&source, &DecoderOptions::default())?;
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
//! A sequence's logits are bit-identical however it is scheduled: alone or batched with any
//! other sequences, its prompt prefilled in one chunk or several, its prefix served from a
//! cloned and truncated cache or recomputed, and on any number of rayon threads. The tests
//! check this with `assert_eq!` on the logits, for dense and quantized models.
//!
//! It holds because every output element is computed by a fixed sequence of operations that
//! depends on nothing but that element's own inputs (see the `kernels` module):
//!
//! - matrix products compute each (token, output) as one dot product whose kernel and grouping
//!   depend only on the output's index, never on how many tokens share the step or how work is
//!   split across threads;
//! - attention computes each (sequence, head, query) alone, reading the query's keys in position
//!   order in blocks aligned to absolute positions, so chunk boundaries cannot change it;
//! - everything else (embedding, RMSNorm, RoPE, SiLU, residuals) is row-wise; and
//! - the cache stores exactly the f32 keys and values a recomputation would produce.
//!
//! The results are not bit-identical to candle-transformers' reference models, whose attention
//! and norms reduce in other orders; they agree within rounding (see the tests).

pub mod presets;
pub mod source;

mod config;
mod decoder;
mod export;
mod kernels;
mod kv;
mod loader;
mod random;
mod rope;
mod weights;

pub use config::{Arch, ModelConfig, RopeScaling};
pub use decoder::{Decoder, SeqChunk};
pub use export::write_gguf;
#[cfg(test)]
pub(crate) use kv::KvShape;
pub use kv::{KvDtype, SeqKv};
pub use loader::DecoderOptions;
pub use random::{parse_storage, RandomModel};
pub use weights::WeightsSource;
