//! One sequence's key/value cache, owned by whoever schedules the sequence (the engine), not by
//! the model, so that any set of sequences can share a forward pass.
//!
//! Each layer keeps K and V in buffers of shape `[num_kv_heads, capacity, head_dim]` that grow
//! geometrically, so a decode step writes one row instead of copying the whole cache. Buffers
//! are shared copy-on-write: cloning a `SeqKv` (to keep a prompt prefix for reuse) is cheap, and
//! the first write to a shared buffer copies it, so clones never see each other's tokens.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};

/// A layer's K and V storage; rows at or beyond the owning `SeqKv::len` are stale.
#[derive(Debug)]
struct KvBuffer {
    k: Tensor,
    v: Tensor,
}

impl KvBuffer {
    fn capacity(&self) -> usize {
        self.k.dims()[1]
    }
}

/// Per-sequence, per-layer keys and values.
#[derive(Debug, Clone)]
pub struct SeqKv {
    layers: Vec<Option<Arc<KvBuffer>>>,
    len: usize,
    num_kv_heads: usize,
    head_dim: usize,
    dtype: DType,
    device: Device,
}

impl SeqKv {
    /// Tokens per unit of copy-on-write: a write into storage shared with a clone copies at most
    /// this many tokens' keys and values.
    pub const BLOCK_TOKENS: usize = 16;

    pub(crate) fn new(
        num_layers: usize,
        num_kv_heads: usize,
        head_dim: usize,
        dtype: DType,
        device: Device,
    ) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
            num_kv_heads,
            head_dim,
            dtype,
            device,
        }
    }

    /// Tokens cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the first `n` tokens (a reusable prefix); a no-op when `n >= len()`.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// Bytes of K/V storage this sequence holds, allocated capacity included. A buffer shared
    /// with a clone is counted in each of them.
    pub fn size_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|b| b.k.elem_count() * b.k.dtype().size_in_bytes() * 2)
            .sum()
    }

    /// The storage this sequence references: a stable identity for each buffer and its size in
    /// bytes, so that memory shared between clones can be counted once.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.layers.iter().flatten().map(|b| {
            (Arc::as_ptr(b) as usize, b.k.elem_count() * b.k.dtype().size_in_bytes() * 2)
        })
    }

    /// Whether this cache was made for a model with these attention dimensions.
    pub(crate) fn fits(
        &self,
        num_layers: usize,
        num_kv_heads: usize,
        head_dim: usize,
        dtype: DType,
    ) -> bool {
        self.layers.len() == num_layers
            && self.num_kv_heads == num_kv_heads
            && self.head_dim == head_dim
            && self.dtype == dtype
    }

    /// Writes `k` and `v` (`[num_kv_heads, n, head_dim]`, contiguous) for `layer` at positions
    /// `len()..len() + n` and returns views of keys and values `0..len() + n`. The length only
    /// advances at [`SeqKv::commit`], once every layer has been written.
    pub(crate) fn write(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (_, added, _) = k.dims3()?;
        let needed = self.len + added;
        let Some(slot) = self.layers.get_mut(layer) else {
            candle_core::bail!(
                "layer {layer} is outside this cache ({} layers)",
                self.layers.len()
            )
        };
        let (capacity, shared) = match slot {
            Some(buffer) => (buffer.capacity(), Arc::strong_count(buffer) > 1),
            None => (0, false),
        };
        if capacity < needed || shared {
            let new_capacity = if capacity < needed {
                needed.max(2 * capacity)
            } else {
                capacity
            };
            let shape = (self.num_kv_heads, new_capacity, self.head_dim);
            let fresh = KvBuffer {
                k: Tensor::zeros(shape, self.dtype, &self.device)?,
                v: Tensor::zeros(shape, self.dtype, &self.device)?,
            };
            if let Some(old) = slot.as_ref() {
                if self.len > 0 {
                    fresh.k.slice_set(&old.k, 1, 0)?;
                    fresh.v.slice_set(&old.v, 1, 0)?;
                }
            }
            *slot = Some(Arc::new(fresh));
        }
        let Some(buffer) = slot.as_ref() else {
            candle_core::bail!("kv buffer for layer {layer} was not allocated")
        };
        // The buffer is now held only by this sequence, so writing in place is invisible to clones.
        buffer.k.slice_set(k, 1, self.len)?;
        buffer.v.slice_set(v, 1, self.len)?;
        Ok((
            buffer.k.narrow(1, 0, needed)?,
            buffer.v.narrow(1, 0, needed)?,
        ))
    }

    /// Advances the length after every layer has written `added` tokens.
    pub(crate) fn commit(&mut self, added: usize) {
        self.len += added;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(kv: &mut SeqKv, values: &[f32]) -> Result<(Tensor, Tensor)> {
        let t = Tensor::from_slice(values, (1, values.len(), 1), &Device::Cpu)?;
        kv.write(0, &t, &(&t * 10.0)?)
    }

    #[test]
    fn clones_do_not_see_each_others_writes() -> Result<()> {
        let mut a = SeqKv::new(1, 1, 1, DType::F32, Device::Cpu);
        rows(&mut a, &[1.0, 2.0, 3.0])?;
        a.commit(3);
        let mut b = a.clone();
        b.truncate(2);
        let (k, v) = rows(&mut b, &[9.0])?;
        b.commit(1);
        assert_eq!(k.flatten_all()?.to_vec1::<f32>()?, [1.0, 2.0, 9.0]);
        assert_eq!(v.flatten_all()?.to_vec1::<f32>()?, [10.0, 20.0, 90.0]);
        let (k, _) = rows(&mut a, &[4.0])?;
        a.commit(1);
        assert_eq!(k.flatten_all()?.to_vec1::<f32>()?, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!((a.len(), b.len()), (4, 3));
        Ok(())
    }

    #[test]
    fn capacity_grows_geometrically() -> Result<()> {
        let mut a = SeqKv::new(1, 1, 1, DType::F32, Device::Cpu);
        assert_eq!(a.size_bytes(), 0);
        for i in 0..5 {
            rows(&mut a, &[i as f32])?;
            a.commit(1);
        }
        // 1 -> 2 -> 4 -> 8 rows, K and V, 4 bytes each.
        assert_eq!(a.size_bytes(), 8 * 2 * 4);
        let (k, _) = rows(&mut a, &[5.0])?;
        assert_eq!(
            k.flatten_all()?.to_vec1::<f32>()?,
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        Ok(())
    }
}
