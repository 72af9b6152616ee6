//! Activation rows quantized to an 8-bit block type, split into quants and f32 scales for the
//! SIMD kernels ([`super::q4_1`], [`super::q8_0`]).

use candle_core::quantized::k_quants::GgmlType;
use rayon::prelude::*;

use super::{block_bytes, f16_at};

/// Values per block.
const BLOCK: usize = 32;

/// `[row][block][32]` quants and, per `[row][block]`, the block's f32 scale and (Q8_1 only) its
/// scaled sum; Q8_0 leaves the second at zero.
pub(super) struct Activations {
    pub quants: Vec<i8>,
    pub scales: Vec<[f32; 2]>,
}

impl Activations {
    /// `m` rows of `blocks·32` values, each quantized by candle's `T::from_float`. `T` is an 8-bit
    /// block type as GGUF lays it out: one or two f16 values, then 32 signed bytes.
    pub(super) fn quantize<T: GgmlType>(x: &[f32], m: usize, blocks: usize) -> Self {
        let cols = blocks * BLOCK;
        debug_assert_eq!(x.len(), m * cols);
        let mut quantized = vec![T::zeros(); m * blocks];
        quantized
            .par_chunks_mut(blocks.max(1))
            .zip(x.par_chunks(cols.max(1)))
            .for_each(|(q, x)| T::from_float(x, q));
        let size = std::mem::size_of::<T>();
        let header = size - BLOCK;
        debug_assert!(header == 2 || header == 4, "not an 8-bit block type");
        let bytes = block_bytes(&quantized);
        let mut quants = Vec::with_capacity(m * cols);
        let mut scales = Vec::with_capacity(m * blocks);
        for block in bytes.chunks_exact(size) {
            quants.extend(block[header..].iter().map(|&q| q as i8));
            scales.push([f16_at(block, 0), if header == 4 { f16_at(block, 2) } else { 0.0 }]);
        }
        Self { quants, scales }
    }
}
