//! Q8_0 weights × Q8_0 activations: ggml's reference dot product, eight output columns per vector.
//!
//! Q8_0 usually stores the token embedding, which small models reuse as the output head: the
//! widest matrix of the model, read in full for every sequence's next token. ggml's reference
//! product reduces each 32-value block to an exact integer sum and folds the blocks into one f32
//! in block order (`sum += sumi·d_w·d_x`); candle's generic `vec_dot` does exactly that.
//!
//! The weights are repacked at load in groups of eight output columns, like [`super::q4_1`]'s:
//! per block, eight 32-byte registers `R_k` whose 32-bit lane `c` holds column `c`'s values
//! `4k..4k+4`. The AVX2 kernel broadcasts activation bytes `4k..4k+4`, multiplies them with
//! `|R_k|` after moving `R_k`'s signs onto them (`maddubs` takes one unsigned operand), and
//! sums pairs into 32-bit lanes: lane `c` becomes column `c`'s block sum with no shuffles. The
//! f32 part runs lane-wise in the scalar formula's order, so both paths give the reference bits
//! on every CPU (candle's own AVX2 `vec_dot` sums in another order and differs in the last bits).
//!
//! With AVX-512 VNNI, one 64-byte register holds two groups' `R_k`, and `dpbusd` (unsigned by
//! signed bytes) multiplies and sums four products a lane. Its unsigned operand is the
//! activation bytes offset by 128 (`x + 128`); the offset's share, `128 · Σ w` a column, is taken
//! off afterwards. Block sums are exact integers either way, so this path also gives the
//! reference bits.

use candle_core::quantized::k_quants as kq;
use half::f16;
use rayon::prelude::*;

use super::activations::Activations;
#[cfg(target_arch = "x86_64")]
use super::matmul::store_group_pair;
use super::matmul::tiled_many;
#[cfg(target_arch = "x86_64")]
use super::prefetch;
#[cfg(target_arch = "x86_64")]
use super::simd::Isa;

/// Output columns packed side by side: one AVX2 lane each.
const GROUP: usize = 8;
/// Values per block.
const BLOCK: usize = 32;
/// Bytes of one GGUF Q8_0 block: f16 scale, 32 signed bytes.
const Q8_0_BYTES: usize = 34;
/// How many group-blocks ahead the AVX2 kernel prefetches its weights.
const PREFETCH_BLOCKS: usize = 2;

/// A `[rows, cols]` Q8_0 matrix, repacked in groups of [`GROUP`] rows (output columns).
pub(crate) struct Q8_0 {
    rows: usize,
    /// Blocks per row.
    blocks: usize,
    /// `[group][block][8 registers × 32 bytes]`: value `j` of column `c` at `(j/4)·32 + 4c + j%4`;
    /// padding columns are zero.
    quants: Vec<i8>,
    /// `[group][block][8 columns]`, f16 bits.
    scales: Vec<u16>,
}

/// Where value `j` (0..32) of column `c` lives in a group-block's 256 bytes.
fn packed_at(c: usize, j: usize) -> usize {
    (j / 4) * 32 + c * 4 + j % 4
}

impl Q8_0 {
    /// Repacks GGUF bytes of a `[rows, cols]` Q8_0 tensor; the caller has checked the length.
    pub(crate) fn new(bytes: &[u8], rows: usize, cols: usize) -> Self {
        let blocks = cols / BLOCK;
        debug_assert_eq!(bytes.len(), rows * blocks * Q8_0_BYTES);
        let groups = rows.div_ceil(GROUP);
        let mut quants = vec![0i8; groups * blocks * GROUP * BLOCK];
        let mut scales = vec![0u16; groups * blocks * GROUP];
        quants.par_chunks_mut((blocks * GROUP * BLOCK).max(1)).zip(scales.par_chunks_mut((blocks * GROUP).max(1))).enumerate().for_each(
            |(g, (quants, scales))| {
                for c in 0..GROUP.min(rows - g * GROUP) {
                    let row = &bytes[(g * GROUP + c) * blocks * Q8_0_BYTES..][..blocks * Q8_0_BYTES];
                    for (b, block) in row.chunks_exact(Q8_0_BYTES).enumerate() {
                        scales[b * GROUP + c] = u16::from_le_bytes([block[0], block[1]]);
                        for (j, &q) in block[2..].iter().enumerate() {
                            quants[b * GROUP * BLOCK + packed_at(c, j)] = q as i8;
                        }
                    }
                }
            },
        );
        Self { rows, blocks, quants, scales }
    }

    /// Column `c`'s scale in the group-block `at`.
    fn scale(&self, at: usize, c: usize) -> f32 {
        f16::from_bits(self.scales[at * GROUP + c]).to_f32()
    }

    /// Row `row` dequantized as ggml does it (`q·d`); `out` holds `cols` values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let (g, c) = (row / GROUP, row % GROUP);
        for (b, out) in out.chunks_exact_mut(BLOCK).enumerate() {
            let at = g * self.blocks + b;
            let d = self.scale(at, c);
            for (j, out) in out.iter_mut().enumerate() {
                *out = f32::from(self.quants[at * GROUP * BLOCK + packed_at(c, j)]) * d;
            }
        }
    }

    /// `x @ W^T` for `m` rows of activations; returns `[m, rows]`.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let x = Activations::quantize::<kq::BlockQ8_0>(x, m, self.blocks);
        #[cfg(target_arch = "x86_64")]
        if Isa::detect() == Isa::Avx512 && std::is_x86_feature_detected!("avx512vnni") {
            return tiled_many(m, &[self.rows], 2 * GROUP, |_, rows, cols, out| {
                // SAFETY: AVX-512 (F, BW, VL), VNNI, AVX2 and F16C are present (checked above
                // and by `Isa`); `tile_avx512` checks its ranges.
                unsafe { self.tile_avx512(&x, rows, cols, out) }
            })
            .remove(0);
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
            return tiled_many(m, &[self.rows], GROUP, |_, rows, cols, out| {
                // SAFETY: AVX2 and F16C are present (checked above); `tile_avx2` checks its ranges.
                unsafe { self.tile_avx2(&x, rows, cols, out) }
            })
            .remove(0);
        }
        tiled_many(m, &[self.rows], GROUP, |_, rows, cols, out| self.tile_scalar(&x, rows, cols, out)).remove(0)
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
                    let w = &self.quants[at * GROUP * BLOCK..][..GROUP * BLOCK];
                    let a = &x.quants[(i * self.blocks + b) * BLOCK..][..BLOCK];
                    let sumi: i32 = (0..BLOCK).map(|k| i32::from(w[packed_at(c, k)]) * i32::from(a[k])).sum();
                    sum += sumi as f32 * self.scale(at, c) * x.scales[i * self.blocks + b][0];
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
        let mut acc = vec![_mm256_setzero_ps(); n];
        for g in cols.0 / GROUP..cols.1.div_ceil(GROUP) {
            acc.fill(_mm256_setzero_ps());
            for b in 0..self.blocks {
                let at = g * self.blocks + b;
                // SAFETY (all loads): `at < groups·blocks`, so the group-block's 256 bytes and 8
                // scales are in bounds; activation blocks `(i, b)` exist for `i < rows.1`
                // (asserted above). Unaligned loads need no alignment.
                let wp = self.quants.as_ptr().add(at * GROUP * BLOCK);
                prefetch(wp, PREFETCH_BLOCKS * GROUP * BLOCK, GROUP * BLOCK);
                let mut w = [_mm256_setzero_si256(); 8];
                let mut magnitude = [_mm256_setzero_si256(); 8];
                for k in 0..8 {
                    w[k] = _mm256_loadu_si256(wp.add(k * 32).cast());
                    magnitude[k] = _mm256_sign_epi8(w[k], w[k]);
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(self.scales.as_ptr().add(at * GROUP).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let i = rows.0 + r;
                    let xq = x.quants.as_ptr().add((i * self.blocks + b) * BLOCK).cast::<i32>();
                    let mut sumi = _mm256_setzero_si256();
                    for k in 0..8 {
                        let a = _mm256_sign_epi8(_mm256_set1_epi32(xq.add(k).read_unaligned()), w[k]);
                        let pairs = _mm256_maddubs_epi16(magnitude[k], a);
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pairs, ones));
                    }
                    let [xd, _] = *x.scales.get_unchecked(i * self.blocks + b);
                    let term = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sumi), d), _mm256_set1_ps(xd));
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

    /// One tile, two groups (sixteen columns) per vector; the same arithmetic as
    /// [`Self::tile_scalar`]: each block's exact integer sums, then the same f32 operations, lane
    /// by lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512 (F, BW), AVX-512 VNNI, AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c")]
    unsafe fn tile_avx512(&self, x: &Activations, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        use std::arch::x86_64::*;

        let width = cols.1 - cols.0;
        let n = rows.1 - rows.0;
        assert!(cols.0.is_multiple_of(GROUP) && cols.1 <= self.rows && rows.1 * self.blocks <= x.scales.len());
        assert_eq!(out.len(), n * width);
        let offset = _mm512_set1_epi8(-128);
        let mut acc = vec![_mm512_setzero_ps(); n];
        let groups = cols.0 / GROUP..cols.1.div_ceil(GROUP);
        for g in groups.clone().step_by(2) {
            // A lone last group is paired with itself, and the upper half is dropped.
            let h = if g + 1 < groups.end { g + 1 } else { g };
            acc.fill(_mm512_setzero_ps());
            for b in 0..self.blocks {
                let (at, at_h) = (g * self.blocks + b, h * self.blocks + b);
                // SAFETY (all loads): `at` and `at_h` are below groups·blocks, so both
                // group-blocks' 256 bytes and 8 scales are in bounds; activation blocks `(i, b)`
                // exist for `i < rows.1` (asserted above).
                let wp = self.quants.as_ptr().add(at * GROUP * BLOCK);
                let wp_h = self.quants.as_ptr().add(at_h * GROUP * BLOCK);
                prefetch(wp, PREFETCH_BLOCKS * GROUP * BLOCK, GROUP * BLOCK);
                prefetch(wp_h, PREFETCH_BLOCKS * GROUP * BLOCK, GROUP * BLOCK);
                let mut w = [_mm512_setzero_si512(); 8];
                // `128 · Σ w` per column: what the offset activations add to each block sum.
                let mut excess = _mm512_setzero_si512();
                for (k, w) in w.iter_mut().enumerate() {
                    *w = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(_mm256_loadu_si256(wp.add(k * 32).cast())),
                        _mm256_loadu_si256(wp_h.add(k * 32).cast()),
                    );
                    excess = _mm512_dpbusd_epi32(excess, offset, *w);
                }
                let d = _mm512_insertf32x8::<1>(
                    _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(self.scales.as_ptr().add(at * GROUP).cast()))),
                    _mm256_cvtph_ps(_mm_loadu_si128(self.scales.as_ptr().add(at_h * GROUP).cast())),
                );
                for (r, acc) in acc.iter_mut().enumerate() {
                    let i = rows.0 + r;
                    let xq = x.quants.as_ptr().add((i * self.blocks + b) * BLOCK).cast::<i32>();
                    let mut sumi = _mm512_setzero_si512();
                    for (k, w) in w.iter().enumerate() {
                        // Each byte plus 128, as an unsigned byte: its sign bit flipped.
                        let shifted = xq.add(k).read_unaligned() ^ i32::from_ne_bytes([0x80; 4]);
                        sumi = _mm512_dpbusd_epi32(sumi, _mm512_set1_epi32(shifted), *w);
                    }
                    let sumi = _mm512_sub_epi32(sumi, excess);
                    let [xd, _] = *x.scales.get_unchecked(i * self.blocks + b);
                    let term = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sumi), d), _mm512_set1_ps(xd));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::matmul::typed;
    use crate::model::kernels::{check_tiles, test_quantized, test_reference, test_values};
    use candle_core::quantized::k_quants::GgmlType;
    use candle_core::quantized::GgmlDType;

    #[test]
    fn scalar_and_simd_tiles_give_the_reference_bits() {
        // 21 columns: two full groups and a padded one.
        let (rows, cols, m) = (21, 256, 3);
        let mut bytes = test_quantized(GgmlDType::Q8_0, rows, cols);
        // The extreme bytes, -128 (which ggml's quantizer never writes, but a file may hold) and
        // 127, in every row.
        for r in 0..rows {
            bytes[r * cols / BLOCK * Q8_0_BYTES + 2 + r] = 0x80;
            bytes[r * cols / BLOCK * Q8_0_BYTES + 3 + r] = 0x7F;
        }
        let w = Q8_0::new(&bytes, rows, cols);
        let x = test_values(m * cols, 2);
        let expected = test_reference::<kq::BlockQ8_0>(&bytes, &x, m, cols);
        let xa = Activations::quantize::<kq::BlockQ8_0>(&x, m, w.blocks);

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

        let (mut theirs, mut ours) = (vec![0f32; cols], vec![0f32; cols]);
        let (blocks, per_row): (Vec<kq::BlockQ8_0>, usize) = (typed(&bytes), cols / BLOCK);
        kq::BlockQ8_0::to_float(&blocks[10 * per_row..11 * per_row], &mut theirs);
        w.row_into(10, &mut ours);
        assert_eq!(ours, theirs);
    }
}
