//! Q8_0 weights × Q8_0 activations: candle's dot product, without its per-block f16 work.
//!
//! Q8_0 usually stores the token embedding, which small models reuse as the output head: the
//! widest matrix of the model, read in full for every sequence's next token. candle's AVX2 dot
//! product is fast in its arithmetic but converts two f16 scales per 32-value block through a
//! feature check each time. Here quants and scales are split at load; a tile converts a
//! column's scales eight at a time (F16C), loads each activation block once for four columns,
//! and then runs candle's exact per-output sequence (`acc = fma(d_w·d_x, Σ pairs, acc)` over the
//! blocks, one final horizontal sum), so results keep candle's bits on either path.

use candle_core::quantized::k_quants::{self as kq, GgmlType};
use half::f16;
use rayon::prelude::*;

use super::matmul::tiled_many;
use super::{block_bytes, f16_at};

/// Values per block.
const BLOCK: usize = 32;
/// Bytes of one GGUF Q8_0 block: f16 scale, 32 signed bytes.
const Q8_0_BYTES: usize = 34;
/// Columns that share each activation load in the AVX2 kernel.
const QUAD: usize = 4;

/// A `[rows, cols]` Q8_0 matrix with quants and scales apart.
pub(crate) struct Q8_0 {
    rows: usize,
    /// Blocks per row.
    blocks: usize,
    /// `[row][block][32]`.
    quants: Vec<i8>,
    /// `[row][block]`, f16 bits.
    scales: Vec<u16>,
}

/// Activation rows quantized to Q8_0: `[row][block][32]` quants and f32 scales `[row][block]`.
struct Activations {
    quants: Vec<i8>,
    scales: Vec<f32>,
}

impl Q8_0 {
    /// Splits GGUF bytes of a `[rows, cols]` Q8_0 tensor; the caller has checked the length.
    pub(crate) fn new(bytes: &[u8], rows: usize, cols: usize) -> Self {
        let blocks = cols / BLOCK;
        debug_assert_eq!(bytes.len(), rows * blocks * Q8_0_BYTES);
        let mut quants = vec![0i8; rows * blocks * BLOCK];
        let mut scales = vec![0u16; rows * blocks];
        quants
            .par_chunks_mut(BLOCK)
            .zip(scales.par_iter_mut())
            .zip(bytes.par_chunks_exact(Q8_0_BYTES))
            .for_each(|((q, s), block)| {
                *s = u16::from_le_bytes([block[0], block[1]]);
                for (q, &b) in q.iter_mut().zip(&block[2..]) {
                    *q = b as i8;
                }
            });
        Self {
            rows,
            blocks,
            quants,
            scales,
        }
    }

    /// Row `row` dequantized as ggml does it (`q·d`); `out` holds `cols` values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let quants = &self.quants[row * self.blocks * BLOCK..][..self.blocks * BLOCK];
        let scales = &self.scales[row * self.blocks..][..self.blocks];
        for ((out, q), &d) in out.chunks_exact_mut(BLOCK).zip(quants.chunks_exact(BLOCK)).zip(scales) {
            let d = f16::from_bits(d).to_f32();
            for (out, &q) in out.iter_mut().zip(q) {
                *out = f32::from(q) * d;
            }
        }
    }

    /// `x @ W^T` for `m` rows of activations; returns `[m, rows]`.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let x = self.quantize(x, m);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            return tiled_many(m, &[self.rows], QUAD, |_, rows, cols, out| {
                // SAFETY: AVX2, FMA and F16C are present (checked above).
                unsafe { self.tile_avx2(&x, rows, cols, out) }
            })
            .remove(0);
        }
        tiled_many(m, &[self.rows], QUAD, |_, rows, cols, out| self.tile_scalar(&x, rows, cols, out)).remove(0)
    }

    /// Each activation row as candle's `BlockQ8_0::from_float` quantizes it.
    fn quantize(&self, x: &[f32], m: usize) -> Activations {
        let cols = self.blocks * BLOCK;
        debug_assert_eq!(x.len(), m * cols);
        let mut blocks = vec![kq::BlockQ8_0::zeros(); m * self.blocks];
        blocks
            .par_chunks_mut(self.blocks.max(1))
            .zip(x.par_chunks(cols.max(1)))
            .for_each(|(q, x)| kq::BlockQ8_0::from_float(x, q));
        let bytes = block_bytes(&blocks);
        Activations {
            quants: bytes.chunks_exact(Q8_0_BYTES).flat_map(|b| b[2..].iter().map(|&q| q as i8)).collect(),
            scales: bytes.chunks_exact(Q8_0_BYTES).map(|b| f16_at(b, 0)).collect(),
        }
    }

    /// A column's scales in f32.
    fn column_scales(&self, j: usize) -> impl Iterator<Item = f32> + '_ {
        self.scales[j * self.blocks..][..self.blocks].iter().map(|&d| f16::from_bits(d).to_f32())
    }

    /// One tile, one output at a time: candle's generic `vec_dot`, used where AVX2 is missing.
    fn tile_scalar(&self, x: &Activations, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        let width = cols.1 - cols.0;
        for (j, c) in (cols.0..cols.1).zip(0..) {
            let w = &self.quants[j * self.blocks * BLOCK..][..self.blocks * BLOCK];
            let wd: Vec<f32> = self.column_scales(j).collect();
            for i in rows.0..rows.1 {
                let a = &x.quants[i * self.blocks * BLOCK..][..self.blocks * BLOCK];
                let ad = &x.scales[i * self.blocks..][..self.blocks];
                let mut sum = 0f32;
                for (b, (w, a)) in w.chunks_exact(BLOCK).zip(a.chunks_exact(BLOCK)).enumerate() {
                    let sumi: i32 = w.iter().zip(a).map(|(&w, &a)| i32::from(w) * i32::from(a)).sum();
                    sum += sumi as f32 * wd[b] * ad[b];
                }
                out[(i - rows.0) * width + c] = sum;
            }
        }
    }

    /// One tile, four columns at a time against each activation block; the same arithmetic per
    /// output as candle's AVX2 `vec_dot_q8_0_q8_0`.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile_avx2(&self, x: &Activations, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        use std::arch::x86_64::*;

        let width = cols.1 - cols.0;
        assert!(cols.1 <= self.rows && rows.1 * self.blocks <= x.scales.len());
        assert_eq!(out.len(), (rows.1 - rows.0) * width);
        let mut wd = vec![0f32; QUAD * self.blocks];
        let mut j = cols.0;
        while j < cols.1 {
            let n = QUAD.min(cols.1 - j);
            for (c, wd) in wd.chunks_mut(self.blocks).take(n).enumerate() {
                for (wd, d) in wd.iter_mut().zip(self.column_scales(j + c)) {
                    *wd = d;
                }
            }
            for i in rows.0..rows.1 {
                let mut acc = [_mm256_setzero_ps(); QUAD];
                for b in 0..self.blocks {
                    // SAFETY: `i < rows.1` and `j + c < cols.1 <= self.rows` (asserted above), so
                    // both blocks are in bounds; unaligned loads need no alignment.
                    let a = _mm256_loadu_si256(x.quants.as_ptr().add((i * self.blocks + b) * BLOCK).cast());
                    let ad = *x.scales.get_unchecked(i * self.blocks + b);
                    for (c, acc) in acc.iter_mut().enumerate().take(n) {
                        let w = _mm256_loadu_si256(self.quants.as_ptr().add(((j + c) * self.blocks + b) * BLOCK).cast());
                        let d = _mm256_set1_ps(wd[c * self.blocks + b] * ad);
                        // candle's mul_sum_i8_pairs_float: |w| × (a with w's sign), pairwise.
                        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
                        let q = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
                        *acc = _mm256_fmadd_ps(d, q, *acc);
                    }
                }
                for (c, acc) in acc.iter().enumerate().take(n) {
                    out[(i - rows.0) * width + j - cols.0 + c] = hsum(*acc);
                }
            }
            j += n;
        }
    }
}

/// candle's `hsum_float_8`: high half plus low half, then pairwise within the half.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn hsum(x: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::matmul::typed;
    use crate::model::kernels::{test_quantized, test_values};
    use candle_core::quantized::GgmlDType;

    /// `dot(weights, activations)` for every output with candle's function `dot`.
    fn reference(
        bytes: &[u8],
        x: &[f32],
        (m, rows, cols): (usize, usize, usize),
        dot: fn(usize, &[kq::BlockQ8_0], &[kq::BlockQ8_0]) -> f32,
    ) -> Vec<f32> {
        let blocks: Vec<kq::BlockQ8_0> = typed(bytes);
        let per_row = cols / BLOCK;
        let mut xq = vec![kq::BlockQ8_0::zeros(); m * per_row];
        for (q, x) in xq.chunks_mut(per_row).zip(x.chunks(cols)) {
            kq::BlockQ8_0::from_float(x, q);
        }
        let mut y = Vec::with_capacity(m * rows);
        for a in xq.chunks(per_row) {
            y.extend(blocks.chunks(per_row).map(|w| dot(cols, w, a)));
        }
        y
    }

    #[test]
    fn scalar_and_simd_tiles_give_the_bits_of_candles_matching_path() {
        let (rows, cols, m) = (7, 256, 3);
        let bytes = test_quantized(GgmlDType::Q8_0, rows, cols);
        let w = Q8_0::new(&bytes, rows, cols);
        let x = test_values(m * cols, 2);
        let xa = w.quantize(&x, m);

        let mut scalar = vec![0f32; m * rows];
        w.tile_scalar(&xa, (0, m), (0, rows), &mut scalar);
        assert_eq!(scalar, reference(&bytes, &x, (m, rows, cols), kq::BlockQ8_0::vec_dot_unopt));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            let mut simd = vec![0f32; m * rows];
            // SAFETY: the features were checked just above.
            unsafe { w.tile_avx2(&xa, (0, m), (0, rows), &mut simd) };
            // candle's `vec_dot` takes its AVX2 path on such a CPU.
            assert_eq!(simd, reference(&bytes, &x, (m, rows, cols), kq::BlockQ8_0::vec_dot));
            assert_ne!(simd, scalar, "the two paths sum in different orders; the test would prove little");
        }

        let blocks: Vec<kq::BlockQ8_0> = typed(&bytes);
        let (mut theirs, mut ours) = (vec![0f32; cols], vec![0f32; cols]);
        kq::BlockQ8_0::to_float(&blocks[2 * cols / BLOCK..3 * cols / BLOCK], &mut theirs);
        w.row_into(2, &mut ours);
        assert_eq!(ours, theirs);
    }
}
