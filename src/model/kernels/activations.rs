//! Activation rows quantized once per matmul for our own kernels: 32-value blocks split into
//! quants and f32 scales ([`super::q4_1`], [`super::q8_0`]), and Q8_K superblocks with their
//! quants permuted for the K-quant kernels ([`super::q4_k`], [`super::q6_k`]).

use candle_core::quantized::k_quants::{self as kq, GgmlType};
use candle_core::quantized::GgmlDType;
use half::f16;
use rayon::prelude::*;

use super::block_bytes;
use super::simd::Isa;

/// Values per block.
const BLOCK: usize = 32;

/// `[row][block][32]` quants and, per `[row][block]`, the block's f32 scale and (Q8_1 only) its
/// scaled sum; Q8_0 leaves the second at zero.
pub(super) struct Activations {
    pub quants: Vec<i8>,
    pub scales: Vec<[f32; 2]>,
}

impl Activations {
    /// `m` rows of `blocks·32` values, each block quantized as candle's `T::from_float` does it
    /// (the bits our kernels are tested against): `T` is `BlockQ8_0` or `BlockQ8_1`, whose
    /// second scale is the block's scaled quant sum.
    pub(super) fn quantize<T: GgmlType>(x: &[f32], m: usize, blocks: usize) -> Self {
        Self::quantize_with::<T>(Isa::detect(), x, m, blocks)
    }

    /// [`Self::quantize`] compiled for the vector unit `isa`, which the CPU must have. The code
    /// is the same plain Rust on each; only the width the compiler vectorizes it to differs, and
    /// every step (a maximum of absolute values, exact integer rounding, an integer sum) gives
    /// the same result in any order.
    fn quantize_with<T: GgmlType>(isa: Isa, x: &[f32], m: usize, blocks: usize) -> Self {
        assert!(isa.available(), "this CPU has no {}", isa.name());
        let with_sum = match T::DTYPE {
            GgmlDType::Q8_0 => false,
            GgmlDType::Q8_1 => true,
            other => unreachable!("activations are quantized to Q8_0 or Q8_1, not {other:?}"),
        };
        let cols = blocks * BLOCK;
        debug_assert_eq!(x.len(), m * cols);
        let mut quants = vec![0i8; m * cols];
        let mut scales = vec![[0f32; 2]; m * blocks];
        quants.par_chunks_mut(cols.max(1)).zip(scales.par_chunks_mut(blocks.max(1))).zip(x.par_chunks(cols.max(1))).for_each(
            |((quants, scales), x)| match isa {
                // SAFETY: the CPU has the unit (asserted above).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { quantize_row_avx512(x, quants, scales, with_sum) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { quantize_row_avx2(x, quants, scales, with_sum) },
                _ => quantize_row(x, quants, scales, with_sum),
            },
        );
        Self { quants, scales }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn quantize_row_avx512(x: &[f32], quants: &mut [i8], scales: &mut [[f32; 2]], with_sum: bool) {
    quantize_row(x, quants, scales, with_sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(x: &[f32], quants: &mut [i8], scales: &mut [[f32; 2]], with_sum: bool) {
    quantize_row(x, quants, scales, with_sum)
}

/// One row's blocks; inlined into each unit's function, so that it is vectorized for that unit.
#[inline(always)]
fn quantize_row(x: &[f32], quants: &mut [i8], scales: &mut [[f32; 2]], with_sum: bool) {
    for ((q, scale), x) in quants.chunks_exact_mut(BLOCK).zip(scales).zip(x.chunks_exact(BLOCK)) {
        *scale = quantize_block(x.try_into().expect("32 values"), q.try_into().expect("32 quants"), with_sum);
    }
}

/// One block as candle's `quantize_row_q8_0`/`_q8_1` computes it: scale `d = amax / 127` (kept
/// as f16), quants `round(x / d)` rounded half away from zero, and for Q8_1 the f16 product of
/// the quant sum and `d`. Returns both scales as f32.
///
/// candle rounds with `f32::round`, a libm call per value that keeps the loop scalar; here the
/// same rounding is integer arithmetic the compiler vectorizes. Values are first clamped to the
/// i8 range, where candle's `as i8` saturates anyway (an infinite `1 / d` from a subnormal `d`
/// included); the truncation is then exact, and so is the remainder `v - trunc(v)`. A NaN gives
/// quant 0, as `f32::round(NaN) as i8` does.
#[inline(always)]
fn quantize_block(x: &[f32; BLOCK], q: &mut [i8; BLOCK], with_sum: bool) -> [f32; 2] {
    // Sixteen running maxima, then one: `max` ignores NaN and the values are not negative, so
    // any order gives the same result, and this one vectorizes.
    let mut lanes = [0f32; 16];
    for half in x.chunks_exact(16) {
        for (lane, &v) in lanes.iter_mut().zip(half) {
            *lane = lane.max(v.abs());
        }
    }
    let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, &x) in q.iter_mut().zip(x) {
        let v = (x * id).clamp(-128.0, 127.0);
        // A NaN (from the value, or 0 · ∞ under a subnormal scale) becomes 0 first, so that the
        // truncation can be the plain one, which vectorizes: the saturating `as i32` compiles to
        // a scalar conversion and its checks per value.
        let v = if v.is_nan() { 0.0 } else { v };
        // SAFETY: `v` is finite and within [-128, 127].
        let t: i32 = unsafe { v.to_int_unchecked() };
        let r = v - t as f32;
        *q = (t + i32::from(r >= 0.5) - i32::from(r <= -0.5)) as i8;
        sum += i32::from(*q);
    }
    let d = f16::from_f32(d);
    [d.to_f32(), if with_sum { (f16::from_f32(sum as f32) * d).to_f32() } else { 0.0 }]
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
                    let bsum = |j: usize| i16::from_le_bytes([block[4 + SUPERBLOCK + 2 * j], block[5 + SUPERBLOCK + 2 * j]]);
                    // A 32-value sum is at most 32·128 in magnitude: exact in i16.
                    *sub_sums = SUB_ORDER.map(|s| bsum(2 * s) + bsum(2 * s + 1));
                    for (offset, pair) in offsets.iter_mut().zip(quants.chunks_exact(2)) {
                        *offset = 32 * (i16::from(pair[0]) + i16::from(pair[1]));
                    }
                }
            });
        Self { quants, d, sub_sums, offsets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// candle's blocks for `x`, read back as quants and f32 scales.
    fn reference<T: GgmlType>(x: &[f32]) -> (Vec<i8>, Vec<[f32; 2]>) {
        let mut blocks = vec![T::zeros(); x.len() / BLOCK];
        T::from_float(x, &mut blocks);
        let size = std::mem::size_of::<T>();
        let header = size - BLOCK;
        let (mut quants, mut scales) = (Vec::new(), Vec::new());
        for block in block_bytes(&blocks).chunks_exact(size) {
            quants.extend(block[header..].iter().map(|&q| q as i8));
            let at = |i: usize| f16::from_le_bytes([block[i], block[i + 1]]).to_f32();
            scales.push([at(0), if header == 4 { at(2) } else { 0.0 }]);
        }
        (quants, scales)
    }

    #[test]
    fn quantized_activations_equal_candles_bit_for_bit() {
        let mut x = super::super::test_values(64 * BLOCK, 7);
        // Exact ties: amax 127 makes the scale 1, so these are quants rounded half away from 0.
        x[..BLOCK]
            .copy_from_slice(&std::array::from_fn::<f32, BLOCK, _>(|i| [127.0, -0.5, 0.5, 2.5, -3.5, -126.5, 1.5, -0.49999997][i % 8]));
        // A zero block, a block with a NaN, one with an infinity, tiny and huge values.
        x[BLOCK..2 * BLOCK].fill(0.0);
        x[2 * BLOCK + 3] = f32::NAN;
        x[3 * BLOCK + 5] = f32::INFINITY;
        x[4 * BLOCK..5 * BLOCK].iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32 - 16.0) * 1e-38);
        x[5 * BLOCK..6 * BLOCK].iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32 - 16.0) * 3e37);
        let rows = 4;
        let bits = |scales: &[[f32; 2]]| scales.iter().flatten().map(|s| s.to_bits()).collect::<Vec<_>>();
        for isa in Isa::ALL {
            if !isa.available() {
                eprintln!("notice: this CPU has no {}; its quantization is not tested here", isa.name());
                continue;
            }
            let ours = Activations::quantize_with::<kq::BlockQ8_1>(isa, &x, rows, x.len() / BLOCK / rows);
            let (quants, scales) = reference::<kq::BlockQ8_1>(&x);
            assert_eq!(ours.quants, quants, "{}", isa.name());
            assert_eq!(bits(&ours.scales), bits(&scales), "{}", isa.name());
            assert_eq!(&ours.quants[..8], &[127, -1, 1, 3, -4, -127, 2, 0]);
            let ours = Activations::quantize_with::<kq::BlockQ8_0>(isa, &x, rows, x.len() / BLOCK / rows);
            let (quants, scales) = reference::<kq::BlockQ8_0>(&x);
            assert_eq!(ours.quants, quants, "{}", isa.name());
            assert_eq!(bits(&ours.scales), bits(&scales), "{}", isa.name());
        }
    }
}
