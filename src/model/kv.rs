//! One sequence's key/value cache, owned by whoever schedules the sequence (the engine), not by
//! the model, so that any set of sequences can share a forward pass.
//!
//! The cache is paged: positions are grouped into blocks of [`BLOCK_TOKENS`] tokens, each block
//! holding those tokens' keys and values for every layer, behind an `Arc`. So:
//!
//! - cloning a `SeqKv` shares every block (a prompt prefix kept for reuse costs nothing more),
//! - [`SeqKv::truncate`] drops whole trailing blocks,
//! - writing into a block another cache still references copies that one block first
//!   (copy-on-write), so clones never see each other's tokens, and
//! - [`SeqKv::blocks`] names each referenced block, so memory shared between caches (many
//!   conversations behind one long system prompt) can be counted once.
//!
//! Keys and values are stored as f16 by default, or as f32 ([`KvDtype`]). f16 takes half the
//! memory and half the bytes attention reads per cached token, at the cost of rounding keys and
//! values to 11 significant bits; a decode step of many conversations is mostly the reading of
//! their caches, so that is where f16 pays (BENCHMARKS.md, "f16 as the default"). f32 is exact,
//! and what the tests against the reference implementations use. Either way a token's keys are
//! written once and read back by every query, including the queries of the chunk that wrote
//! them, so a prefix served from the cache gives exactly the bits that recomputing it would.

use std::sync::Arc;

use anyhow::{bail, Result};
use half::f16;
use half::slice::HalfFloatSliceExt;

/// How cached keys and values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KvDtype {
    F32,
    #[default]
    F16,
}

impl KvDtype {
    fn size(self) -> usize {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 => 2,
        }
    }
}

/// Tokens per block: small enough that a fork wastes little, large enough that attention reads
/// keys in long contiguous runs. Attention's vectors hold one block's 16 keys' scores.
pub(crate) const BLOCK_TOKENS: usize = 16;

/// The attention dimensions a cache is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KvShape {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl KvShape {
    /// Values in one block.
    fn block_len(&self) -> usize {
        self.layers * self.kv_heads * self.head_len()
    }

    /// Values of one layer and head in a block: `BLOCK_TOKENS × head_dim` keys, then as many
    /// values.
    fn head_len(&self) -> usize {
        2 * BLOCK_TOKENS * self.head_dim
    }

    /// Where `head`'s keys at `layer` start inside a block; its values follow them.
    fn head_start(&self, layer: usize, head: usize) -> usize {
        (layer * self.kv_heads + head) * self.head_len()
    }

    /// Bytes of keys and values per cached token, stored as f32.
    pub(crate) fn bytes_per_token(&self) -> usize {
        self.block_len() / BLOCK_TOKENS * std::mem::size_of::<f32>()
    }
}

/// Keys and values of [`BLOCK_TOKENS`] consecutive positions for every layer, laid out
/// `[layer][kv_head]`, each holding the keys transposed, `[head_dim][token]`, then the values,
/// `[token][head_dim]`: attention scores a query against 16 keys with one vector per key
/// component, and adds 16 weighted values with one vector per value chunk. Slots at or beyond
/// the owner's length are stale.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// A type keys and values are stored in.
pub(crate) trait KvElem: Copy + Send + Sync + 'static {
    /// The block's storage, if it is of this type.
    fn storage(block: &Block) -> Option<&[Self]>;
}

impl KvElem for f32 {
    fn storage(block: &Block) -> Option<&[f32]> {
        match block {
            Block::F32(b) => Some(b),
            Block::F16(_) => None,
        }
    }
}

impl KvElem for f16 {
    fn storage(block: &Block) -> Option<&[f16]> {
        match block {
            Block::F16(b) => Some(b),
            Block::F32(_) => None,
        }
    }
}

/// One block's keys and values for one layer and KV head.
pub(crate) struct HeadBlock<'a, E> {
    /// `[head_dim][BLOCK_TOKENS]`.
    pub keys: &'a [E],
    /// `[BLOCK_TOKENS][head_dim]`.
    pub values: &'a [E],
    /// The block's identity: equal for caches that share it (see [`SeqKv::blocks`]).
    pub id: usize,
}

/// Per-sequence keys and values, paged and shared copy-on-write.
#[derive(Debug, Clone)]
pub struct SeqKv {
    blocks: Vec<Arc<Block>>,
    len: usize,
    shape: KvShape,
    dtype: KvDtype,
}

impl SeqKv {
    /// Tokens per block, the unit of sharing and of copy-on-write: a write into a block shared
    /// with a clone copies this many tokens' keys and values.
    pub const BLOCK_TOKENS: usize = BLOCK_TOKENS;

    pub(crate) fn new(shape: KvShape, dtype: KvDtype) -> Self {
        Self { blocks: Vec::new(), len: 0, shape, dtype }
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the first `n` tokens (a reusable prefix), releasing the blocks past them; a no-op
    /// when `n >= len()`.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
        self.blocks.truncate(self.len.div_ceil(BLOCK_TOKENS));
    }

    /// Bytes of the blocks this sequence references. A block shared with other caches is
    /// counted in each of them; [`SeqKv::blocks`] tells shared blocks apart.
    pub fn size_bytes(&self) -> usize {
        self.blocks.len() * self.block_bytes()
    }

    /// Each referenced block as (a stable identity, its size in bytes). Two caches yield the
    /// same identity for a block they share, for as long as either holds it.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let bytes = self.block_bytes();
        self.blocks.iter().map(move |b| (Arc::as_ptr(b) as usize, bytes))
    }

    fn block_bytes(&self) -> usize {
        self.shape.block_len() * self.dtype.size()
    }

    /// Whether this cache was made for a model with these attention dimensions and storage.
    pub(crate) fn fits(&self, shape: KvShape, dtype: KvDtype) -> bool {
        self.shape == shape && self.dtype == dtype
    }

    /// Stores one token's keys and values (`kv_heads × head_dim` each) for `layer` at
    /// `position`, which must lie in `len()..` and follow the positions already written in this
    /// pass. The length only advances at [`SeqKv::commit`], once every layer has been written.
    pub(crate) fn write(&mut self, layer: usize, position: usize, k: &[f32], v: &[f32]) -> Result<()> {
        let s = self.shape;
        if layer >= s.layers || k.len() != s.kv_heads * s.head_dim || v.len() != k.len() {
            bail!("key/value write does not fit the cache's shape {s:?}");
        }
        if position < self.len {
            bail!("position {position} is already cached ({} tokens)", self.len);
        }
        let index = position / BLOCK_TOKENS;
        if index == self.blocks.len() {
            self.blocks.push(Arc::new(match self.dtype {
                KvDtype::F32 => Block::F32(vec![0.0; s.block_len()]),
                KvDtype::F16 => Block::F16(vec![f16::ZERO; s.block_len()]),
            }));
        } else if index > self.blocks.len() {
            bail!("position {position} skips past the end of the cache");
        }
        // Copies the block first if another cache still references it.
        let block = Arc::make_mut(&mut self.blocks[index]);
        let slot = position % BLOCK_TOKENS;
        let d = s.head_dim;
        for head in 0..s.kv_heads {
            let at = s.head_start(layer, head);
            let (k, v) = (&k[head * d..(head + 1) * d], &v[head * d..(head + 1) * d]);
            let keys = (0..d).map(|c| at + c * BLOCK_TOKENS + slot);
            let values = at + (BLOCK_TOKENS + slot) * d;
            match block {
                Block::F32(b) => {
                    keys.zip(k).for_each(|(i, &x)| b[i] = x);
                    b[values..values + d].copy_from_slice(v);
                }
                Block::F16(b) => {
                    keys.zip(k).for_each(|(i, &x)| b[i] = f16::from_f32(x));
                    b[values..values + d].convert_from_f32_slice(v);
                }
            }
        }
        Ok(())
    }

    /// Advances the length after every layer has written `added` tokens.
    pub(crate) fn commit(&mut self, added: usize) {
        self.len += added;
    }

    /// Keys and values of block `index` for `layer` and `head`, or `None` if the cache has no
    /// such block or does not store `E`. Only the first
    /// `min(BLOCK_TOKENS, len() - index·BLOCK_TOKENS)` tokens are meaningful.
    pub(crate) fn head_block<E: KvElem>(&self, index: usize, layer: usize, head: usize) -> Option<HeadBlock<'_, E>> {
        let block = self.blocks.get(index)?;
        let storage = E::storage(block)?;
        let at = self.shape.head_start(layer, head);
        let half = BLOCK_TOKENS * self.shape.head_dim;
        Some(HeadBlock { keys: &storage[at..at + half], values: &storage[at + half..at + 2 * half], id: Arc::as_ptr(block) as usize })
    }

    /// How keys and values are stored.
    pub(crate) fn dtype(&self) -> KvDtype {
        self.dtype
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: KvShape = KvShape { layers: 2, kv_heads: 1, head_dim: 2 };

    /// Appends tokens whose keys are `[t, -t]` and values `[10t, 0]`, in both layers.
    fn push(kv: &mut SeqKv, tokens: &[f32]) {
        for (i, &t) in tokens.iter().enumerate() {
            for layer in 0..SHAPE.layers {
                kv.write(layer, kv.len() + i, &[t, -t], &[10.0 * t, 0.0]).unwrap();
            }
        }
        kv.commit(tokens.len());
    }

    /// Component `c` of the key (or value) of token `p` in `layer`, as f32.
    fn component(kv: &SeqKv, layer: usize, value: bool, p: usize, c: usize) -> f32 {
        let (block, slot) = (p / BLOCK_TOKENS, p % BLOCK_TOKENS);
        let d = SHAPE.head_dim;
        let (keys_at, values_at) = (c * BLOCK_TOKENS + slot, slot * d + c);
        let at = if value { values_at } else { keys_at };
        match kv.dtype() {
            KvDtype::F32 => {
                let b = kv.head_block::<f32>(block, layer, 0).unwrap();
                if value {
                    b.values[at]
                } else {
                    b.keys[at]
                }
            }
            KvDtype::F16 => {
                let b = kv.head_block::<f16>(block, layer, 0).unwrap();
                (if value { b.values[at] } else { b.keys[at] }).to_f32()
            }
        }
    }

    /// The first key component of every cached token in `layer`.
    fn keys(kv: &SeqKv, layer: usize) -> Vec<f32> {
        (0..kv.len()).map(|p| component(kv, layer, false, p, 0)).collect()
    }

    fn distinct_blocks(caches: &[&SeqKv]) -> usize {
        let mut ids: Vec<usize> = caches.iter().flat_map(|c| c.blocks().map(|b| b.0)).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    }

    #[test]
    fn clones_do_not_see_each_others_writes() {
        let mut a = SeqKv::new(SHAPE, KvDtype::F32);
        push(&mut a, &[1.0, 2.0, 3.0]);
        let mut b = a.clone();
        b.truncate(2);
        push(&mut b, &[9.0]);
        push(&mut a, &[4.0]);
        assert_eq!(keys(&a, 1), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(keys(&b, 1), [1.0, 2.0, 9.0]);
        assert_eq!(component(&b, 0, true, 2, 0), 90.0);
        assert_eq!(component(&a, 0, true, 2, 0), 30.0);
        assert_eq!(component(&a, 1, false, 2, 1), -3.0);
    }

    #[test]
    fn truncate_drops_whole_blocks_and_writing_after_it_overwrites() {
        let mut a = SeqKv::new(SHAPE, KvDtype::F32);
        let tokens: Vec<f32> = (0..2 * BLOCK_TOKENS + 3).map(|t| t as f32).collect();
        push(&mut a, &tokens);
        assert_eq!(a.blocks().count(), 3);
        a.truncate(BLOCK_TOKENS + 1);
        assert_eq!((a.len(), a.blocks().count()), (BLOCK_TOKENS + 1, 2));
        push(&mut a, &[-5.0]);
        let mut expected: Vec<f32> = tokens[..BLOCK_TOKENS + 1].to_vec();
        expected.push(-5.0);
        assert_eq!(keys(&a, 0), expected);
        a.truncate(BLOCK_TOKENS);
        assert_eq!(a.blocks().count(), 1);
        a.truncate(100);
        assert_eq!(a.len(), BLOCK_TOKENS);
    }

    #[test]
    fn shared_blocks_have_one_identity_and_only_the_written_block_is_copied() {
        let mut a = SeqKv::new(SHAPE, KvDtype::F32);
        let tokens: Vec<f32> = (0..BLOCK_TOKENS + 4).map(|t| t as f32).collect();
        push(&mut a, &tokens);
        let mut b = a.clone();
        assert_eq!(distinct_blocks(&[&a, &b]), 2);
        assert_eq!(a.size_bytes(), b.size_bytes());
        assert_eq!(a.size_bytes(), 2 * BLOCK_TOKENS * SHAPE.bytes_per_token());
        push(&mut b, &[100.0]);
        // The full first block stays shared; the partial second one was copied.
        assert_eq!(distinct_blocks(&[&a, &b]), 3);
        let first = |kv: &SeqKv| kv.blocks().next().unwrap();
        assert_eq!(first(&a), first(&b));
        // A fresh block past a block boundary is not a copy of anything.
        let mut c = a.clone();
        c.truncate(BLOCK_TOKENS);
        push(&mut c, &[7.0]);
        assert_eq!(distinct_blocks(&[&a, &b, &c]), 4);
        assert_eq!(keys(&c, 0)[BLOCK_TOKENS], 7.0);
        assert_eq!(keys(&a, 0), tokens);
    }

    #[test]
    fn an_f16_cache_rounds_to_f16_and_takes_half_the_memory() {
        let mut a = SeqKv::new(SHAPE, KvDtype::F16);
        let mut b = SeqKv::new(SHAPE, KvDtype::F32);
        push(&mut a, &[1.0, 0.1, 3.0e-5]);
        push(&mut b, &[1.0, 0.1, 3.0e-5]);
        let rounded: Vec<f32> = [1.0f32, 0.1, 3.0e-5].iter().map(|&x| f16::from_f32(x).to_f32()).collect();
        assert_eq!(keys(&a, 1), rounded);
        assert_ne!(keys(&a, 1), keys(&b, 1));
        assert_eq!(2 * a.size_bytes(), b.size_bytes());
        assert!(a.fits(SHAPE, KvDtype::F16) && !a.fits(SHAPE, KvDtype::F32));
        // A clone's write copies the block: a new identity, the new contents.
        let mut c = a.clone();
        c.truncate(1);
        push(&mut c, &[7.0]);
        assert_eq!(component(&a, 0, false, 1, 0), f16::from_f32(0.1).to_f32());
        assert_eq!(component(&c, 0, false, 1, 0), 7.0);
        assert_eq!(component(&c, 0, true, 1, 0), 70.0);
        assert_ne!(a.blocks().next(), c.blocks().next());
        assert!(a.head_block::<f32>(0, 0, 0).is_none() && b.head_block::<f16>(0, 0, 0).is_none());
    }

    #[test]
    fn bad_writes_are_refused() {
        let mut a = SeqKv::new(SHAPE, KvDtype::F32);
        push(&mut a, &[1.0]);
        assert!(a.write(0, 0, &[0.0, 0.0], &[0.0, 0.0]).is_err(), "already cached");
        assert!(a.write(0, 2 * BLOCK_TOKENS, &[0.0, 0.0], &[0.0, 0.0]).is_err(), "a gap");
        assert!(a.write(2, 1, &[0.0, 0.0], &[0.0, 0.0]).is_err(), "no such layer");
        assert!(a.write(0, 1, &[0.0], &[0.0]).is_err(), "wrong width");
        assert_eq!(a.len(), 1);
    }
}
