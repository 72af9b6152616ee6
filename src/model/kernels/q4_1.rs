//! Q4_1 weights × Q8_1 activations: ggml's dot product, repacked so AVX2 computes eight output
//! columns at once.
//!
//! ggml's Q4_1 product reduces each 32-weight block to an exact integer sum, then folds the
//! blocks into one f32 in block order: `sum += sumi·d_w·d_x + m_w·s_x`. candle has no SIMD path
//! for it on x86, and its scalar loop converts four f16 scales per block per call; on SmolLM2
//! that loop was most of every forward pass.
//!
//! Here the weights are repacked once, at load, into groups of eight output columns laid out for
//! the AVX2 kernel: for each block, eight 32-byte registers `R_k` in which the 32-bit lane `c`
//! holds column `c`'s weights `4k..4k+4` (two registers share each byte, one per nibble), then
//! the eight columns' scales and minimums (f16, converted eight at a time). Against an
//! activation block, the kernel broadcasts activation bytes `4k..4k+4` to every lane, multiplies
//! them with `R_k` (`maddubs`), adds the eight products as 16-bit integers (at most 8·3,840, so
//! exact) and sums each lane's pairs: lane `c` is then column `c`'s integer block sum, with no
//! shuffles. The f32 part runs lane-wise, one lane per column, with the same operations in the
//! same order as the scalar formula above, so every output keeps the scalar result's bits (the
//! tests compare with candle's own `vec_dot`), whichever path the CPU takes and however many
//! rows share the call. Unpacked weights are reused across every activation row of a tile, so a
//! prompt pays for unpacking once per tile rather than once per token.

use candle_core::quantized::k_quants as kq;
use half::f16;
use rayon::prelude::*;

use super::activations::Activations;
#[cfg(target_arch = "x86_64")]
use super::matmul::store_group_pair;
use super::matmul::tiled_many;
#[cfg(target_arch = "x86_64")]
use super::prefetch;
use super::simd::Isa;

/// Output columns packed side by side: one AVX2 lane each.
const GROUP: usize = 8;
/// Weights per block.
const BLOCK: usize = 32;
/// Bytes of one GGUF Q4_1 block: f16 scale, f16 minimum, 16 bytes of nibbles.
const Q4_1_BYTES: usize = 20;
/// How many group-blocks ahead the AVX2 kernel prefetches its weights.
const PREFETCH_BLOCKS: usize = 4;

/// A `[rows, cols]` Q4_1 matrix, repacked in groups of [`GROUP`] rows (output columns).
pub(crate) struct Q4_1 {
    rows: usize,
    /// Blocks per row.
    blocks: usize,
    /// `[group][block][4 × 32 bytes]`: see [`packed_at`]; padding columns are zero.
    nibbles: Vec<u8>,
    /// `[group][block][8 scales, then 8 minimums]`, f16 bits as the file stores them: converted
    /// in the kernel (eight at a time with F16C), so the weights stream from memory at their
    /// file size.
    scales: Vec<u16>,
}

impl Q4_1 {
    /// Repacks GGUF bytes of a `[rows, cols]` Q4_1 tensor; the caller has checked the length.
    pub(crate) fn new(bytes: &[u8], rows: usize, cols: usize) -> Self {
        let blocks = cols / BLOCK;
        debug_assert_eq!(bytes.len(), rows * blocks * Q4_1_BYTES);
        let groups = rows.div_ceil(GROUP);
        let mut nibbles = vec![0u8; groups * blocks * GROUP * 16];
        let mut scales = vec![0u16; groups * blocks * 2 * GROUP];
        nibbles.par_chunks_mut((blocks * GROUP * 16).max(1)).zip(scales.par_chunks_mut((blocks * 2 * GROUP).max(1))).enumerate().for_each(
            |(g, (nibbles, scales))| {
                for c in 0..GROUP.min(rows - g * GROUP) {
                    let row = &bytes[(g * GROUP + c) * blocks * Q4_1_BYTES..][..blocks * Q4_1_BYTES];
                    for (b, block) in row.chunks_exact(Q4_1_BYTES).enumerate() {
                        for j in 0..BLOCK {
                            // GGUF order: byte k holds weight k (low nibble) and k + 16 (high).
                            let q = if j < 16 { block[4 + j] & 0x0F } else { block[4 + j - 16] >> 4 };
                            let (at, shift) = packed_at(c, j);
                            nibbles[b * GROUP * 16 + at] |= q << shift;
                        }
                        scales[b * 2 * GROUP + c] = u16::from_le_bytes([block[0], block[1]]);
                        scales[b * 2 * GROUP + GROUP + c] = u16::from_le_bytes([block[2], block[3]]);
                    }
                }
            },
        );
        Self { rows, blocks, nibbles, scales }
    }

    /// Row `row` dequantized as ggml does it (`q·d + m`); `out` holds `cols` values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let (g, c) = (row / GROUP, row % GROUP);
        for (b, out) in out.chunks_exact_mut(BLOCK).enumerate() {
            let at = g * self.blocks + b;
            let (d, m) = self.scale(at, c);
            for (j, out) in out.iter_mut().enumerate() {
                *out = f32::from(self.weight(at, c, j)) * d + m;
            }
        }
    }

    /// Weight `j` (0..32) of column `c` in the group-block `at`.
    fn weight(&self, at: usize, c: usize, j: usize) -> u8 {
        let (offset, shift) = packed_at(c, j);
        (self.nibbles[at * GROUP * 16 + offset] >> shift) & 0x0F
    }

    /// Column `c`'s scale and minimum in the group-block `at`.
    fn scale(&self, at: usize, c: usize) -> (f32, f32) {
        let s = &self.scales[at * 2 * GROUP..];
        (f16::from_bits(s[c]).to_f32(), f16::from_bits(s[GROUP + c]).to_f32())
    }

    /// `x @ W^T` for `m` rows of activations; returns `[m, rows]`.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        Self::matmul_many(&[self], x, m).remove(0)
    }

    /// `x @ W^T` for each of `matrices` (all of one width) and the same `m` rows of activations,
    /// in one parallel pass that quantizes the activations once; returns `[m, rows]` each.
    pub(crate) fn matmul_many(matrices: &[&Q4_1], x: &[f32], m: usize) -> Vec<Vec<f32>> {
        let Some(first) = matrices.first() else { return Vec::new() };
        debug_assert!(matrices.iter().all(|w| w.blocks == first.blocks));
        let x = Activations::quantize::<kq::BlockQ8_1>(x, m, first.blocks);
        let widths: Vec<usize> = matrices.iter().map(|w| w.rows).collect();
        #[cfg(target_arch = "x86_64")]
        match Isa::detect() {
            Isa::Avx512 if std::is_x86_feature_detected!("avx512vnni") => {
                return tiled_many(m, &widths, 2 * GROUP, |k, rows, cols, out| {
                    // SAFETY: AVX-512 (F, BW, VL), VNNI, AVX2 and F16C are present (checked
                    // above and by `Isa`); `tile_avx512` checks its ranges.
                    unsafe { matrices[k].tile_avx512(&x, rows, cols, out) }
                });
            }
            Isa::Avx2 | Isa::Avx512 => {
                return tiled_many(m, &widths, GROUP, |k, rows, cols, out| {
                    // SAFETY: AVX2 and F16C are present (checked by `Isa`); `tile_avx2` checks
                    // its ranges.
                    unsafe { matrices[k].tile_avx2(&x, rows, cols, out) }
                });
            }
            Isa::Scalar => {}
        }
        tiled_many(m, &widths, GROUP, |k, rows, cols, out| matrices[k].tile_scalar(&x, rows, cols, out))
    }

    /// One tile, one output at a time, in the formula's order.
    fn tile_scalar(&self, x: &Activations, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        let width = cols.1 - cols.0;
        for (i, out) in (rows.0..rows.1).zip(out.chunks_mut(width)) {
            for (j, out) in (cols.0..cols.1).zip(out.iter_mut()) {
                let (g, c) = (j / GROUP, j % GROUP);
                let mut sum = 0f32;
                for b in 0..self.blocks {
                    let at = g * self.blocks + b;
                    let quants = &x.quants[(i * self.blocks + b) * BLOCK..][..BLOCK];
                    let sumi: i32 = (0..BLOCK).map(|j| i32::from(self.weight(at, c, j)) * i32::from(quants[j])).sum();
                    let (d, m) = self.scale(at, c);
                    let [xd, xs] = x.scales[i * self.blocks + b];
                    sum += sumi as f32 * d * xd + m * xs;
                }
                *out = sum;
            }
        }
    }

    /// One tile, eight columns per vector; the same arithmetic as [`Self::tile_scalar`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn tile_avx2(&self, x: &Activations, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        use std::arch::x86_64::*;

        let width = cols.1 - cols.0;
        let n = rows.1 - rows.0;
        assert!(cols.0.is_multiple_of(GROUP) && cols.1 <= self.rows && rows.1 * self.blocks <= x.scales.len());
        assert_eq!(out.len(), n * width);
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        let mut acc = vec![_mm256_setzero_ps(); n];
        for g in cols.0 / GROUP..cols.1.div_ceil(GROUP) {
            acc.fill(_mm256_setzero_ps());
            for b in 0..self.blocks {
                let at = g * self.blocks + b;
                // SAFETY (all loads): `at < groups·blocks`, so the group-block's 128 bytes of
                // nibbles and 16 scales are in bounds; activation blocks `(i, b)` exist for
                // `i < rows.1` (asserted above). Unaligned loads need no alignment.
                let wp = self.nibbles.as_ptr().add(at * GROUP * 16);
                prefetch(wp, PREFETCH_BLOCKS * GROUP * 16, GROUP * 16);
                prefetch(self.scales.as_ptr().add(at * 2 * GROUP), PREFETCH_BLOCKS * 2 * GROUP * 2, 64);
                let mut w = [_mm256_setzero_si256(); 8];
                for k in 0..4 {
                    let packed = _mm256_loadu_si256(wp.add(k * 32).cast());
                    w[k] = _mm256_and_si256(packed, low);
                    w[k + 4] = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low);
                }
                let sp = self.scales.as_ptr().add(at * 2 * GROUP);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(sp.cast()));
                let m = _mm256_cvtph_ps(_mm_loadu_si128(sp.add(GROUP).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let i = rows.0 + r;
                    let xq = x.quants.as_ptr().add((i * self.blocks + b) * BLOCK).cast::<i32>();
                    let mut pairs = _mm256_setzero_si256();
                    for (k, w) in w.iter().enumerate() {
                        let a = _mm256_set1_epi32(xq.add(k).read_unaligned());
                        pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(*w, a));
                    }
                    let sumi = _mm256_madd_epi16(pairs, ones);
                    let [xd, xs] = *x.scales.get_unchecked(i * self.blocks + b);
                    let term = _mm256_add_ps(
                        _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sumi), d), _mm256_set1_ps(xd)),
                        _mm256_mul_ps(m, _mm256_set1_ps(xs)),
                    );
                    *acc = _mm256_add_ps(*acc, term);
                }
            }
            let first = g * GROUP;
            let take = GROUP.min(cols.1 - first);
            let mut lanes = [0f32; GROUP];
            for (r, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(lanes.as_mut_ptr(), *acc);
                out[r * width + first - cols.0..][..take].copy_from_slice(&lanes[..take]);
            }
        }
    }
}

impl Q4_1 {
    /// One tile, sixteen columns (two groups) per vector with VNNI's `dpbusd`, which adds the
    /// four byte products of each lane straight into 32 bits: the same exact integer block sums
    /// as [`Self::tile_avx2`]'s `maddubs`/`madd`, then the same f32 operations, lane by lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512 (F, BW), AVX-512 VNNI, AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn tile_avx512(&self, x: &Activations, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        use std::arch::x86_64::*;

        let width = cols.1 - cols.0;
        let n = rows.1 - rows.0;
        assert!(cols.0.is_multiple_of(GROUP) && cols.1 <= self.rows && rows.1 * self.blocks <= x.scales.len());
        assert_eq!(out.len(), n * width);
        let low = _mm512_set1_epi8(0x0F);
        let mut acc = vec![_mm512_setzero_ps(); n];
        let groups = cols.0 / GROUP..cols.1.div_ceil(GROUP);
        for g in groups.clone().step_by(2) {
            // A lone last group is paired with itself, and the upper half is dropped.
            let h = if g + 1 < groups.end { g + 1 } else { g };
            acc.fill(_mm512_setzero_ps());
            for b in 0..self.blocks {
                let (at, at_h) = (g * self.blocks + b, h * self.blocks + b);
                // SAFETY (all loads): `at` and `at_h` are below groups·blocks, so both
                // group-blocks' 128 bytes of nibbles and 16 scales are in bounds; activation
                // blocks `(i, b)` exist for `i < rows.1` (asserted above).
                let wp = self.nibbles.as_ptr().add(at * GROUP * 16);
                let wp_h = self.nibbles.as_ptr().add(at_h * GROUP * 16);
                prefetch(wp, PREFETCH_BLOCKS * GROUP * 16, GROUP * 16);
                prefetch(wp_h, PREFETCH_BLOCKS * GROUP * 16, GROUP * 16);
                let mut w = [_mm512_setzero_si512(); 8];
                for k in 0..4 {
                    let packed = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(_mm256_loadu_si256(wp.add(k * 32).cast())),
                        _mm256_loadu_si256(wp_h.add(k * 32).cast()),
                    );
                    w[k] = _mm512_and_si512(packed, low);
                    w[k + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(packed), low);
                }
                let sp = self.scales.as_ptr().add(at * 2 * GROUP);
                let sp_h = self.scales.as_ptr().add(at_h * 2 * GROUP);
                let both = |p: *const u16, q: *const u16| {
                    _mm512_insertf32x8::<1>(
                        _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(p.cast()))),
                        _mm256_cvtph_ps(_mm_loadu_si128(q.cast())),
                    )
                };
                let d = both(sp, sp_h);
                let m = both(sp.add(GROUP), sp_h.add(GROUP));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let i = rows.0 + r;
                    let xq = x.quants.as_ptr().add((i * self.blocks + b) * BLOCK).cast::<i32>();
                    let mut sumi = _mm512_setzero_si512();
                    for (k, w) in w.iter().enumerate() {
                        sumi = _mm512_dpbusd_epi32(sumi, *w, _mm512_set1_epi32(xq.add(k).read_unaligned()));
                    }
                    let [xd, xs] = *x.scales.get_unchecked(i * self.blocks + b);
                    let term = _mm512_add_ps(
                        _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sumi), d), _mm512_set1_ps(xd)),
                        _mm512_mul_ps(m, _mm512_set1_ps(xs)),
                    );
                    *acc = _mm512_add_ps(*acc, term);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let lanes: [f32; 16] = std::mem::transmute(*acc);
                store_group_pair(&lanes, (g, h), cols, &mut out[r * width..(r + 1) * width]);
            }
        }
    }
}

/// Where weight `j` (0..32) of column `c` lives in a group-block's 128 packed bytes: register
/// `R_k` (`k = j / 4`) holds it in lane `c`, byte `j % 4`; registers `R_k` and `R_{k+4}` share
/// 32 bytes, as low and high nibbles. Returns (byte offset, shift).
fn packed_at(c: usize, j: usize) -> (usize, u32) {
    let k = j / 4;
    ((k % 4) * 32 + c * 4 + j % 4, if k < 4 { 0 } else { 4 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::matmul::typed;
    use crate::model::kernels::{check_tiles, test_quantized, test_reference, test_values};
    use candle_core::quantized::k_quants::GgmlType;
    use candle_core::quantized::GgmlDType;

    #[test]
    fn scalar_and_simd_tiles_give_candles_bits() {
        // 21 columns: two full groups and a padded one.
        let (rows, cols, m) = (21, 256, 3);
        let bytes = test_quantized(GgmlDType::Q4_1, rows, cols);
        let w = Q4_1::new(&bytes, rows, cols);
        let x = test_values(m * cols, 2);
        let expected = test_reference::<kq::BlockQ4_1>(&bytes, &x, m, cols);
        let xa = Activations::quantize::<kq::BlockQ8_1>(&x, m, w.blocks);

        check_tiles("scalar", &expected, m, rows, |r, c, out| w.tile_scalar(&xa, r, c, out));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
            // SAFETY: the features were checked just above.
            check_tiles("AVX2", &expected, m, rows, |r, c, out| unsafe { w.tile_avx2(&xa, r, c, out) });
        } else {
            eprintln!("skipped: this CPU has no AVX2");
        }
        #[cfg(target_arch = "x86_64")]
        if Isa::Avx512.available() && std::is_x86_feature_detected!("avx512vnni") {
            // The whole product is a pair of groups and then a lone padded one.
            // SAFETY: the features were checked just above.
            check_tiles("AVX-512", &expected, m, rows, |r, c, out| unsafe { w.tile_avx512(&xa, r, c, out) });
        } else {
            eprintln!("skipped: this CPU has no AVX-512 VNNI");
        }
    }

    #[test]
    fn many_matrices_equal_one_at_a_time_and_rows_dequantize_like_candle() {
        let (cols, m) = (128, 5);
        let x = test_values(m * cols, 3);
        let (a, b) = (test_quantized(GgmlDType::Q4_1, 24, cols), test_quantized(GgmlDType::Q4_1, 9, cols));
        let (a, b) = (Q4_1::new(&a, 24, cols), Q4_1::new(&b, 9, cols));
        assert_eq!(Q4_1::matmul_many(&[&a, &b], &x, m), vec![a.matmul(&x, m), b.matmul(&x, m)]);

        let bytes = test_quantized(GgmlDType::Q4_1, 9, cols);
        let blocks: Vec<kq::BlockQ4_1> = typed(&bytes);
        let mut theirs = vec![0f32; cols];
        kq::BlockQ4_1::to_float(&blocks[4 * cols / BLOCK..5 * cols / BLOCK], &mut theirs);
        let mut ours = vec![0f32; cols];
        b.row_into(4, &mut ours);
        assert_eq!(ours, theirs);
    }
}
