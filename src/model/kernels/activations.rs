//! Activation rows quantized once per matmul for our own kernels: 32-value blocks split into
//! quants and f32 scales ([`super::q4_1`], [`super::q8_0`]), and Q8_K superblocks with their
//! quants permuted for the K-quant kernels ([`super::q4_k`], [`super::q6_k`]).

use candle_core::quantized::k_quants::{self as kq, GgmlType};
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

/// Values per Q8_K superblock.
pub(super) const SUPERBLOCK: usize = 256;
/// Bytes of one Q8_K block: f32 scale, 256 quants, sixteen i16 sums of 16 quants.
const Q8K_BYTES: usize = 4 + SUPERBLOCK + 32;

/// Activation rows quantized to Q8_K by candle's `BlockQ8K::from_float`, laid out for the
/// K-quant kernels.
///
/// Both K-quant reference products keep eight accumulators per column, one per position
/// residue `l = p mod 8`. The quants are therefore permuted into 32-bit words `(v, l)`, `v` and
/// `l` in 0..8: with `b = 64·(v / 2) + 16·(v % 2)`, word `(v, l)` holds positions
/// `b + l, b + 8 + l, b + 32 + l, b + 40 + l`. Broadcast to every lane, one word meets four
/// weights of each of eight columns, all for accumulator `l`: two in 16-value sub-block
/// `u = 4(v / 2) + v % 2` and two in `u + 2`, so one in each of the 32-value sub-blocks
/// `2(v / 2)` and `2(v / 2) + 1`, and words `(2t, l)` and `(2t + 1, l)` split the same two
/// 32-value sub-blocks the same way.
pub(super) struct Superblocks {
    /// `[row][superblock][256]`, permuted as above; see [`permuted`].
    pub quants: Vec<i8>,
    /// `[row][superblock]`: the scale.
    pub d: Vec<f32>,
    /// `[row][superblock]`: the sums of the eight 32-value sub-blocks, which Q4_K's minimums
    /// multiply, ordered `0, 2, 1, 3, 4, 6, 5, 7`: as 32-bit words, word `2h` holds the pair
    /// `(4h, 4h + 2)` and word `2h + 1` the pair `(4h + 1, 4h + 3)`, the i16 pairs that
    /// [`super::q4_k`] cuts out of its minimum bytes.
    pub sub_sums: Vec<[i16; 8]>,
    /// `[row][superblock][128]`: per word of `quants`, `32·(q₀ + q₁)` and `32·(q₂ + q₃)`: what
    /// Q6_K's offset of 32 takes from each pair's product.
    pub offsets: Vec<i16>,
}

/// The order of [`Superblocks::sub_sums`].
const SUB_ORDER: [usize; 8] = [0, 2, 1, 3, 4, 6, 5, 7];

/// Where position `p` (0..256) of a superblock lives in [`Superblocks::quants`].
pub(super) fn permuted(p: usize) -> usize {
    let (t, r) = (p / 64, p % 64);
    let v = 2 * t + r % 32 / 16;
    let k = 2 * (r / 32) + r % 16 / 8;
    (v * 8 + r % 8) * 4 + k
}

impl Superblocks {
    /// Quant `p` (0..256, file order) of superblock `xb` (`row·superblocks + superblock`).
    pub(super) fn quant(&self, xb: usize, p: usize) -> i8 {
        self.quants[xb * SUPERBLOCK + permuted(p)]
    }

    /// The sum of 32-value sub-block `s` of superblock `xb`.
    pub(super) fn sub_sum(&self, xb: usize, s: usize) -> i16 {
        // The order of `sub_sums` swaps 1 with 2 and 5 with 6: its own inverse.
        self.sub_sums[xb][SUB_ORDER[s]]
    }

    /// `m` rows of `superblocks·256` values.
    pub(super) fn quantize(x: &[f32], m: usize, superblocks: usize) -> Self {
        let cols = superblocks * SUPERBLOCK;
        debug_assert_eq!(x.len(), m * cols);
        let n = m * superblocks;
        let mut quants = vec![0i8; n * SUPERBLOCK];
        let mut d = vec![0f32; n];
        let mut sub_sums = vec![[0i16; 8]; n];
        let mut offsets = vec![0i16; n * SUPERBLOCK / 2];
        let per_row = superblocks.max(1);
        quants
            .par_chunks_mut(per_row * SUPERBLOCK)
            .zip(d.par_chunks_mut(per_row))
            .zip(sub_sums.par_chunks_mut(per_row))
            .zip(offsets.par_chunks_mut(per_row * SUPERBLOCK / 2))
            .zip(x.par_chunks(cols.max(1)))
            .for_each(|((((quants, d), sub_sums), offsets), x)| {
                let mut blocks = vec![kq::BlockQ8K::zeros(); superblocks];
                kq::BlockQ8K::from_float(x, &mut blocks);
                let superblocks = block_bytes(&blocks)
                    .chunks_exact(Q8K_BYTES)
                    .zip(quants.chunks_exact_mut(SUPERBLOCK))
                    .zip(d.iter_mut().zip(sub_sums))
                    .zip(offsets.chunks_exact_mut(SUPERBLOCK / 2));
                for (((block, quants), (d, sub_sums)), offsets) in superblocks {
                    *d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
                    for (p, &q) in block[4..4 + SUPERBLOCK].iter().enumerate() {
                        quants[permuted(p)] = q as i8;
                    }
                    let bsum = |j: usize| {
                        i16::from_le_bytes([block[4 + SUPERBLOCK + 2 * j], block[5 + SUPERBLOCK + 2 * j]])
                    };
                    // A 32-value sum is at most 32·128 in magnitude: exact in i16.
                    *sub_sums = SUB_ORDER.map(|s| bsum(2 * s) + bsum(2 * s + 1));
                    for (offset, pair) in offsets.iter_mut().zip(quants.chunks_exact(2)) {
                        *offset = 32 * (i16::from(pair[0]) + i16::from(pair[1]));
                    }
                }
            });
        Self {
            quants,
            d,
            sub_sums,
            offsets,
        }
    }
}
