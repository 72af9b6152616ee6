//! Float weights (F32, F16 or BF16) × f32 activations, the weights kept in their own type.
//!
//! A safetensors checkpoint stores BF16; widening it to f32 at load would double both the
//! memory (an 8B model would need 32 GB) and the bytes every decode step streams. So the
//! weights stay as stored and the kernel widens eight at a time in registers (BF16 by a shift,
//! F16 with F16C) while the activations stay f32: no precision is lost on either side.
//!
//! Every output is one fixed chain of operations, whatever the tile or the number of rows: eight
//! lane sums, lane `t` taking the products of positions `k ≡ t (mod 8)` in increasing `k` by
//! fused multiply-add, folded as `((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7))`, then the last
//! `cols % 8` products by fused multiply-add in order. The AVX2 kernel computes four columns for
//! two rows at a time; the portable path performs the same operations with `f32::mul_add`, so
//! both give the same bits.

use half::{bf16, f16};

use super::matmul::tiled_many;
#[cfg(target_arch = "x86_64")]
use super::prefetch;

/// Lanes of one AVX2 vector of f32.
const LANES: usize = 8;
/// Weight rows (output columns) the AVX2 kernel computes together.
const COLUMNS: usize = 4;
/// Activation rows the AVX2 kernel computes together.
const ROWS: usize = 2;
/// How far ahead of its loads (in bytes) the AVX2 kernel asks for each weight row.
const PREFETCH: usize = 512;

/// A weight value type: f32, f16 or bf16.
pub(crate) trait Float: Copy + Send + Sync + 'static {
    fn widen(self) -> f32;

    /// Eight consecutive values at `p`, widened.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C; `p..p+8` must be readable.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl Float for f32 {
    fn widen(self) -> f32 {
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
}

impl Float for f16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }
}

impl Float for bf16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // A bf16 is the top half of an f32.
        let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
    }
}

/// A `[rows, cols]` float matrix, row-major, in its stored type.
pub(crate) struct Dense<T> {
    rows: usize,
    cols: usize,
    values: Vec<T>,
}

impl<T: Float> Dense<T> {
    pub(crate) fn new(values: Vec<T>, rows: usize, cols: usize) -> Self {
        debug_assert_eq!(values.len(), rows * cols);
        Self { rows, cols, values }
    }

    /// Row `row` widened to f32; `out` holds `cols` values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        for (out, v) in out.iter_mut().zip(&self.values[row * self.cols..(row + 1) * self.cols]) {
            *out = v.widen();
        }
    }

    /// `x @ W^T` for `m` rows of activations; returns `[m, rows]`.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        debug_assert_eq!(x.len(), m * self.cols);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
            return tiled_many(m, &[self.rows], COLUMNS, |_, rows, cols, out| {
                // SAFETY: AVX2, FMA and F16C are present (checked above); `tile_avx2` checks
                // its ranges.
                unsafe { self.tile_avx2(x, rows, cols, out) }
            })
            .remove(0);
        }
        tiled_many(m, &[self.rows], COLUMNS, |_, rows, cols, out| self.tile_scalar(x, rows, cols, out)).remove(0)
    }

    /// One tile, one output at a time.
    fn tile_scalar(&self, x: &[f32], rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        let width = cols.1 - cols.0;
        for (i, out) in (rows.0..rows.1).zip(out.chunks_mut(width)) {
            let x = &x[i * self.cols..(i + 1) * self.cols];
            for (j, out) in (cols.0..cols.1).zip(out.iter_mut()) {
                let w = &self.values[j * self.cols..(j + 1) * self.cols];
                let body = self.cols - self.cols % LANES;
                let mut s = [0f32; LANES];
                for (x, w) in x[..body].chunks_exact(LANES).zip(w[..body].chunks_exact(LANES)) {
                    for t in 0..LANES {
                        s[t] = x[t].mul_add(w[t].widen(), s[t]);
                    }
                }
                let mut sum = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
                for k in body..self.cols {
                    sum = x[k].mul_add(w[k].widen(), sum);
                }
                *out = sum;
            }
        }
    }

    /// One tile, up to [`COLUMNS`] × [`ROWS`] outputs per pass over `k`; the same arithmetic as
    /// [`Self::tile_scalar`].
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile_avx2(&self, x: &[f32], rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        assert!(cols.1 <= self.rows && rows.1 * self.cols <= x.len());
        assert_eq!(out.len(), (rows.1 - rows.0) * (cols.1 - cols.0));
        let mut j = cols.0;
        while j < cols.1 {
            let mut i = rows.0;
            while i < rows.1 {
                // Fixed block shapes, so the inner loop is unrolled without branches.
                match (COLUMNS.min(cols.1 - j), ROWS.min(rows.1 - i)) {
                    (4, 2) => self.block_avx2::<4, 2>(x, i, j, rows.0, cols, out),
                    (4, _) => self.block_avx2::<4, 1>(x, i, j, rows.0, cols, out),
                    (3, 2) => self.block_avx2::<3, 2>(x, i, j, rows.0, cols, out),
                    (3, _) => self.block_avx2::<3, 1>(x, i, j, rows.0, cols, out),
                    (2, 2) => self.block_avx2::<2, 2>(x, i, j, rows.0, cols, out),
                    (2, _) => self.block_avx2::<2, 1>(x, i, j, rows.0, cols, out),
                    (_, 2) => self.block_avx2::<1, 2>(x, i, j, rows.0, cols, out),
                    _ => self.block_avx2::<1, 1>(x, i, j, rows.0, cols, out),
                }
                i += ROWS.min(rows.1 - i);
            }
            j += COLUMNS.min(cols.1 - j);
        }
    }

    /// Outputs `i..i+NR` × `j..j+NC` of a tile whose first row is `row0` and whose columns are
    /// `cols`, into `out`.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; the rows and columns exist (checked by the
    /// caller's assertions and loop bounds).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block_avx2<const NC: usize, const NR: usize>(
        &self,
        x: &[f32],
        i: usize,
        j: usize,
        row0: usize,
        cols: (usize, usize),
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;

        let k_all = self.cols;
        let body = k_all - k_all % LANES;
        let width = cols.1 - cols.0;
        let xp: [*const f32; NR] = std::array::from_fn(|r| x.as_ptr().add((i + r) * k_all));
        let wp: [*const T; NC] = std::array::from_fn(|c| self.values.as_ptr().add((j + c) * k_all));
        let mut acc = [[_mm256_setzero_ps(); NR]; NC];
        let mut k = 0;
        while k < body {
            let xs: [__m256; NR] = std::array::from_fn(|r| _mm256_loadu_ps(xp[r].add(k)));
            for c in 0..NC {
                prefetch(wp[c].wrapping_add(k), PREFETCH, 64);
                let w = T::load8(wp[c].add(k));
                for r in 0..NR {
                    acc[c][r] = _mm256_fmadd_ps(xs[r], w, acc[c][r]);
                }
            }
            k += LANES;
        }
        for c in 0..NC {
            let w = &self.values[(j + c) * k_all..(j + c + 1) * k_all];
            for r in 0..NR {
                let xr = &x[(i + r) * k_all..(i + r + 1) * k_all];
                // ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7))
                let v = acc[c][r];
                let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
                let mut sum = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps::<1>(pair, pair)));
                for k in body..k_all {
                    sum = xr[k].mul_add(w[k].widen(), sum);
                }
                out[(i + r - row0) * width + j + c - cols.0] = sum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_values;

    fn check<T: Float>(convert: fn(f32) -> T) {
        // 37 columns of 29 values: a remainder column after four quads, and a 5-value tail.
        let (rows, cols, m) = (37, 29, 3);
        let w = Dense::new(test_values(rows * cols, 1).into_iter().map(convert).collect(), rows, cols);
        let x = test_values(m * cols, 2);
        let mut scalar = vec![0f32; m * rows];
        w.tile_scalar(&x, (0, m), (0, rows), &mut scalar);
        // The reference: f64 products of the widened values.
        for i in 0..m {
            for j in 0..rows {
                let exact: f64 = (0..cols).map(|k| x[i * cols + k] as f64 * w.values[j * cols + k].widen() as f64).sum();
                assert!((scalar[i * rows + j] as f64 - exact).abs() < 1e-4, "({i}, {j})");
            }
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
            // A tile starting at row 1 and column 4.
            let mut simd = vec![0f32; 2 * 33];
            // SAFETY: the features were checked just above.
            unsafe { w.tile_avx2(&x, (1, 3), (4, 37), &mut simd) };
            for (r, row) in simd.chunks(33).enumerate() {
                assert_eq!(row, &scalar[(r + 1) * rows + 4..(r + 2) * rows], "row {}", r + 1);
            }
        }
        // One row alone, in a batch, on any thread count: the same bits.
        let all = w.matmul(&x, m);
        assert_eq!(all, scalar);
        assert_eq!(w.matmul(&x[cols..2 * cols], 1), scalar[rows..2 * rows]);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        assert_eq!(pool.install(|| w.matmul(&x, m)), scalar);
    }

    #[test]
    fn every_path_gives_the_same_bits_for_every_float_type() {
        check::<f32>(|v| v);
        check::<f16>(f16::from_f32);
        check::<bf16>(bf16::from_f32);
    }

    #[test]
    fn rows_widen_exactly() {
        let w = Dense::new(vec![bf16::from_f32(1.5), bf16::from_f32(-0.25), bf16::from_f32(3.0), bf16::from_f32(8.0)], 2, 2);
        let mut out = [0f32; 2];
        w.row_into(1, &mut out);
        assert_eq!(out, [3.0, 8.0]);
    }
}
