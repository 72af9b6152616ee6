//! `y = x @ W^T` for weights in any GGML storage type, one fixed dot product per output.
//!
//! Each activation row is first converted to the weight type's dot-product partner
//! (`T::VecDotType`, e.g. Q8_1 rows for Q4_1 weights), exactly as candle and ggml do, and each
//! output is then `T::vec_dot` of that row with one weight row. Output columns are grouped in
//! aligned quads (`vec_dot_4`, which loads the activations once for four weight rows) and the
//! last 0..=3 columns use `vec_dot_2`/`vec_dot`, the same grouping as candle's single-row
//! kernel; which call computes column `j` depends only on `j` and the matrix width, never on
//! the number of rows or on the thread split.
//!
//! Q4_1, Q8_0, Q4_K and Q6_K weights take SIMD kernels of our own ([`super::q4_1`],
//! [`super::q8_0`], [`super::q4_k`], [`super::q6_k`]) with the arithmetic of candle's generic
//! (non-SIMD) dot products; float weights (F32, F16, BF16) stay in their type and take
//! [`super::dense`]'s, with f32 activations.
//!
//! Work is split into tiles of up to [`TILE_COLUMNS`] weight rows by [`TILE_ROWS`] activation
//! rows, run in parallel; each tile reads its slice of weights once for all its activation rows,
//! so a decode step of many sequences streams the weights from memory once, not once per
//! sequence.

use std::fmt;

use anyhow::{bail, Result};
use candle_core::quantized::k_quants::{self as kq, GgmlType};
use candle_core::quantized::GgmlDType;
use candle_core::DType;
use half::{bf16, f16};
use rayon::prelude::*;

use super::activations::Superblocks;
use super::dense::Dense;
use super::q4_1::Q4_1;
use super::q4_k::{GROUP, Q4K};
use super::q6_k::Q6K;
use super::q8_0::Q8_0;

/// Most weight rows (output columns) per work item.
const TILE_COLUMNS: usize = 64;
/// Activation rows per work item: bounds the activations a tile keeps hot in cache.
const TILE_ROWS: usize = 64;

/// A `[rows, cols]` weight matrix in its storage type.
pub(crate) struct Weights {
    rows: usize,
    cols: usize,
    blocks: Blocks,
}

/// The weights themselves, row-major, typed by how they are stored.
enum Blocks {
    /// Kept in their stored type; see [`super::dense`].
    F32(Dense<f32>),
    F16(Dense<f16>),
    BF16(Dense<bf16>),
    Q4_0(Vec<kq::BlockQ4_0>),
    /// Repacked for SIMD at load; see [`super::q4_1`].
    Q4_1(Q4_1),
    Q5_0(Vec<kq::BlockQ5_0>),
    Q5_1(Vec<kq::BlockQ5_1>),
    /// Split for SIMD at load; see [`super::q8_0`].
    Q8_0(Q8_0),
    Q8_1(Vec<kq::BlockQ8_1>),
    Q2K(Vec<kq::BlockQ2K>),
    Q3K(Vec<kq::BlockQ3K>),
    /// Repacked for SIMD at load; see [`super::q4_k`].
    Q4K(Q4K),
    Q5K(Vec<kq::BlockQ5K>),
    /// Repacked for SIMD at load; see [`super::q6_k`].
    Q6K(Q6K),
    Q8K(Vec<kq::BlockQ8K>),
}

/// Runs `$body` with `$w` bound to the typed block vector, whatever the storage type, or
/// `$q_body` with `$q` bound to weights repacked for one of our own kernels.
macro_rules! with_blocks {
    ($blocks:expr, $w:ident => $body:expr, $q:ident => $q_body:expr) => {
        match $blocks {
            Blocks::F32($q) => $q_body,
            Blocks::F16($q) => $q_body,
            Blocks::BF16($q) => $q_body,
            Blocks::Q4_0($w) => $body,
            Blocks::Q4_1($q) => $q_body,
            Blocks::Q5_0($w) => $body,
            Blocks::Q5_1($w) => $body,
            Blocks::Q8_0($q) => $q_body,
            Blocks::Q8_1($w) => $body,
            Blocks::Q2K($w) => $body,
            Blocks::Q3K($w) => $body,
            Blocks::Q4K($q) => $q_body,
            Blocks::Q5K($w) => $body,
            Blocks::Q6K($q) => $q_body,
            Blocks::Q8K($w) => $body,
        }
    };
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Weights({:?}, [{}, {}])", self.dtype(), self.rows, self.cols)
    }
}

impl Weights {
    /// Dense float weights (`values` row-major), stored as `dtype` (F32, F16 or BF16).
    pub(crate) fn dense(values: Vec<f32>, rows: usize, cols: usize, dtype: DType) -> Result<Self> {
        if values.len() != rows * cols {
            bail!("{} values do not make a [{rows}, {cols}] matrix", values.len());
        }
        let blocks = match dtype {
            DType::F32 => Blocks::F32(Dense::new(values, rows, cols)),
            DType::F16 => Blocks::F16(Dense::new(values.iter().map(|&v| f16::from_f32(v)).collect(), rows, cols)),
            DType::BF16 => Blocks::BF16(Dense::new(values.iter().map(|&v| bf16::from_f32(v)).collect(), rows, cols)),
            other => bail!("dense weights cannot be stored as {other:?}"),
        };
        Ok(Self { rows, cols, blocks })
    }

    /// GGML-encoded weights: `bytes` as a GGUF file stores a `[rows, cols]` tensor of `dtype`.
    pub(crate) fn ggml(dtype: GgmlDType, bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        if !cols.is_multiple_of(dtype.block_size()) {
            bail!("rows of {cols} values do not fill {dtype:?} blocks of {}", dtype.block_size());
        }
        let expected = rows * cols / dtype.block_size() * dtype.type_size();
        if bytes.len() != expected {
            bail!("a [{rows}, {cols}] {dtype:?} matrix needs {expected} bytes, got {}", bytes.len());
        }
        let blocks = match dtype {
            GgmlDType::F32 => Blocks::F32(Dense::new(typed(bytes), rows, cols)),
            GgmlDType::F16 => Blocks::F16(Dense::new(typed(bytes), rows, cols)),
            GgmlDType::BF16 => Blocks::BF16(Dense::new(typed(bytes), rows, cols)),
            GgmlDType::Q4_0 => Blocks::Q4_0(typed(bytes)),
            GgmlDType::Q4_1 => Blocks::Q4_1(Q4_1::new(bytes, rows, cols)),
            GgmlDType::Q5_0 => Blocks::Q5_0(typed(bytes)),
            GgmlDType::Q5_1 => Blocks::Q5_1(typed(bytes)),
            GgmlDType::Q8_0 => Blocks::Q8_0(Q8_0::new(bytes, rows, cols)),
            GgmlDType::Q8_1 => Blocks::Q8_1(typed(bytes)),
            GgmlDType::Q2K => Blocks::Q2K(typed(bytes)),
            GgmlDType::Q3K => Blocks::Q3K(typed(bytes)),
            GgmlDType::Q4K => Blocks::Q4K(Q4K::new(bytes, rows, cols)),
            GgmlDType::Q5K => Blocks::Q5K(typed(bytes)),
            GgmlDType::Q6K => Blocks::Q6K(Q6K::new(bytes, rows, cols)),
            GgmlDType::Q8K => Blocks::Q8K(typed(bytes)),
        };
        Ok(Self { rows, cols, blocks })
    }

    /// The storage type.
    pub(crate) fn dtype(&self) -> GgmlDType {
        match &self.blocks {
            Blocks::F32(_) => GgmlDType::F32,
            Blocks::F16(_) => GgmlDType::F16,
            Blocks::BF16(_) => GgmlDType::BF16,
            Blocks::Q4_0(_) => GgmlDType::Q4_0,
            Blocks::Q4_1(_) => GgmlDType::Q4_1,
            Blocks::Q5_0(_) => GgmlDType::Q5_0,
            Blocks::Q5_1(_) => GgmlDType::Q5_1,
            Blocks::Q8_0(_) => GgmlDType::Q8_0,
            Blocks::Q8_1(_) => GgmlDType::Q8_1,
            Blocks::Q2K(_) => GgmlDType::Q2K,
            Blocks::Q3K(_) => GgmlDType::Q3K,
            Blocks::Q4K(_) => GgmlDType::Q4K,
            Blocks::Q5K(_) => GgmlDType::Q5K,
            Blocks::Q6K(_) => GgmlDType::Q6K,
            Blocks::Q8K(_) => GgmlDType::Q8K,
        }
    }

    /// Weight row `row` as f32 (an embedding lookup); `out` holds `cols` values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        with_blocks!(&self.blocks, w => {
            let per_row = w.len() / self.rows;
            GgmlType::to_float(&w[row * per_row..(row + 1) * per_row], out)
        }, q => q.row_into(row, out))
    }

    /// `x @ W^T` for each of `matrices` with the same `m` activation rows; returns `[m, rows]`
    /// each. Q4_1 matrices of one width, or Q4_K and Q6_K matrices of one width in any mix,
    /// share one quantization of `x` and one parallel pass (a layer's q, k and v, or its gate
    /// and up projections); the results are the same as separate [`Self::matmul`] calls.
    pub(crate) fn matmul_many(matrices: &[&Weights], x: &[f32], m: usize) -> Vec<Vec<f32>> {
        if matrices.iter().any(|w| w.cols != matrices[0].cols) {
            return matrices.iter().map(|w| w.matmul(x, m)).collect();
        }
        let q4_1: Option<Vec<&Q4_1>> = matrices
            .iter()
            .map(|w| match &w.blocks {
                Blocks::Q4_1(q) => Some(q),
                _ => None,
            })
            .collect();
        let k_quants: Option<Vec<&dyn SuperblockKernel>> = matrices
            .iter()
            .map(|w| match &w.blocks {
                Blocks::Q4K(q) => Some(q as &dyn SuperblockKernel),
                Blocks::Q6K(q) => Some(q as &dyn SuperblockKernel),
                _ => None,
            })
            .collect();
        match (q4_1, k_quants) {
            (Some(q), _) => Q4_1::matmul_many(&q, x, m),
            (None, Some(k)) => matmul_superblocks(&k, x, m),
            (None, None) => matrices.iter().map(|w| w.matmul(x, m)).collect(),
        }
    }

    /// `x @ W^T` for `x` of `m` rows of `cols` values; returns `[m, rows]`.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        debug_assert_eq!(x.len(), m * self.cols);
        with_blocks!(&self.blocks, w => matmul_typed(w, self.rows, self.cols, x, m), q => q.matmul(x, m))
    }
}

/// A matrix whose kernel reads activations as Q8_K superblocks ([`Superblocks`]): Q4_K and
/// Q6_K, which can therefore share one quantization of the activations.
pub(super) trait SuperblockKernel: Sync {
    /// Output columns.
    fn rows(&self) -> usize;
    /// 256-value superblocks per row.
    fn superblocks(&self) -> usize;
    /// Outputs `rows.0..rows.1 × cols.0..cols.1`, row-major, into `out`; `cols.0` is a multiple
    /// of [`GROUP`].
    fn tile(&self, x: &Superblocks, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]);
}

/// `x @ W^T` for each of `matrices` (all of one width) and the same `m` rows of activations, in
/// one parallel pass that quantizes the activations once; returns `[m, rows]` each.
pub(super) fn matmul_superblocks(matrices: &[&dyn SuperblockKernel], x: &[f32], m: usize) -> Vec<Vec<f32>> {
    let Some(first) = matrices.first() else { return Vec::new() };
    debug_assert!(matrices.iter().all(|w| w.superblocks() == first.superblocks()));
    let x = Superblocks::quantize(x, m, first.superblocks());
    let widths: Vec<usize> = matrices.iter().map(|w| w.rows()).collect();
    tiled_many(m, &widths, GROUP, |k, rows, cols, out| matrices[k].tile(&x, rows, cols, out))
}

/// Copies GGML-encoded bytes into a vector of their block type.
pub(super) fn typed<T: GgmlType>(bytes: &[u8]) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    debug_assert_eq!(bytes.len() % size, 0);
    let mut out = vec![T::zeros(); bytes.len() / size];
    // SAFETY: `T` is f32, f16, bf16 or one of candle's `#[repr(C)]` GGML block structs, which
    // consist only of f16 scales and integer arrays: every bit pattern is a valid value, exactly
    // how candle itself views GGUF bytes. `out` spans exactly `bytes.len()` bytes, and the two
    // buffers are distinct allocations.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes.len());
    }
    out
}

fn matmul_typed<T: GgmlType>(w: &[T], rows: usize, cols: usize, x: &[f32], m: usize) -> Vec<f32> {
    let per_row = cols / T::BLCK_SIZE;
    let mut xq = vec![T::VecDotType::zeros(); m * per_row];
    xq.par_chunks_mut(per_row.max(1)).zip(x.par_chunks(cols.max(1))).for_each(|(q, x)| T::VecDotType::from_float(x, q));

    let weight = |j: usize| &w[j * per_row..(j + 1) * per_row];
    let quads_end = rows & !3;
    tiled(m, rows, 4, |(i0, i1), (j0, j1), out| {
        let width = j1 - j0;
        for (i, out) in (i0..i1).zip(out.chunks_mut(width)) {
            let a = &xq[i * per_row..(i + 1) * per_row];
            let mut j = j0;
            while j < j1.min(quads_end) {
                let (d0, d1, d2, d3) = T::vec_dot_4(cols, weight(j), weight(j + 1), weight(j + 2), weight(j + 3), a);
                out[j - j0..j - j0 + 4].copy_from_slice(&[d0, d1, d2, d3]);
                j += 4;
            }
            // The 0..=3 columns after the last quad, only ever in the last tile.
            if j < j1 && j1 - j >= 2 {
                let (d0, d1) = T::vec_dot_2(cols, weight(j), weight(j + 1), a);
                out[j - j0] = d0;
                out[j - j0 + 1] = d1;
                j += 2;
            }
            if j < j1 {
                out[j - j0] = T::vec_dot(cols, weight(j), a);
            }
        }
    })
}

/// Runs `fill((i0, i1), (j0, j1), out)` over tiles of a `[m, rows]` output in parallel and
/// assembles the result; `out` receives outputs `i0..i1 × j0..j1`, row-major.
fn tiled(m: usize, rows: usize, align: usize, fill: impl Fn((usize, usize), (usize, usize), &mut [f32]) + Sync) -> Vec<f32> {
    tiled_many(m, &[rows], align, |_, rows, cols, out| fill(rows, cols, out)).remove(0)
}

/// Writes one output row's two groups of eight columns, `g` from the low half of `lanes` and `h`
/// from the high half (`h == g` for a lone last group, whose high half is dropped), into `row`,
/// which holds the tile's columns `cols`; columns past `cols.1` (a padded group's) are dropped.
#[cfg(target_arch = "x86_64")]
pub(super) fn store_group_pair(lanes: &[f32; 16], (g, h): (usize, usize), cols: (usize, usize), row: &mut [f32]) {
    let halves = if h == g { 1 } else { 2 };
    for (group, lanes) in [(g, &lanes[..8]), (h, &lanes[8..])].into_iter().take(halves) {
        let first = group * 8;
        let take = 8.min(cols.1 - first);
        row[first - cols.0..][..take].copy_from_slice(&lanes[..take]);
    }
}

/// [`tiled`] for several matrices sharing the same `m` activation rows (`widths[k]` output
/// columns each), in one parallel pass: `fill(k, rows, cols, out)` computes a tile of matrix `k`.
///
/// Column tiles start at multiples of `align`, so kernels that handle columns in aligned groups
/// never see a group split. The tile size only decides which thread computes which outputs,
/// never how an output is computed, so it may follow the shape and the thread count: a decode
/// step of one row still gets enough tiles to keep every core busy.
pub(super) fn tiled_many(
    m: usize,
    widths: &[usize],
    align: usize,
    fill: impl Fn(usize, (usize, usize), (usize, usize), &mut [f32]) + Sync,
) -> Vec<Vec<f32>> {
    let row_tiles = m.div_ceil(TILE_ROWS);
    // At least four tiles per thread, of at most `TILE_COLUMNS` columns.
    let wanted = (4 * rayon::current_num_threads()).div_ceil(row_tiles.max(1));
    let total: usize = widths.iter().sum();
    let width = total.div_ceil(wanted).next_multiple_of(align).clamp(align, TILE_COLUMNS.next_multiple_of(align));
    // (matrix, row tile, column tile) for every tile of every matrix.
    let items: Vec<(usize, usize, usize)> = widths
        .iter()
        .enumerate()
        .flat_map(|(k, &rows)| (0..row_tiles).flat_map(move |rt| (0..rows.div_ceil(width)).map(move |ct| (k, rt, ct))))
        .collect();
    let tiles: Vec<Vec<f32>> = items
        .par_iter()
        .map(|&(k, rt, ct)| {
            let (i0, i1) = (rt * TILE_ROWS, (rt * TILE_ROWS + TILE_ROWS).min(m));
            let (j0, j1) = (ct * width, (ct * width + width).min(widths[k]));
            let mut out = vec![0f32; (i1 - i0) * (j1 - j0)];
            fill(k, (i0, i1), (j0, j1), &mut out);
            out
        })
        .collect();

    let mut ys: Vec<Vec<f32>> = widths.iter().map(|&rows| vec![0f32; m * rows]).collect();
    for (&(k, rt, ct), tile) in items.iter().zip(&tiles) {
        let rows = widths[k];
        let j0 = ct * width;
        let w = (rows - j0).min(width);
        for (r, src) in tile.chunks(w).enumerate() {
            let i = rt * TILE_ROWS + r;
            ys[k][i * rows + j0..i * rows + j0 + w].copy_from_slice(src);
        }
    }
    ys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::{test_quantized, test_values as values};
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> Weights {
        Weights::ggml(dtype, &test_quantized(dtype, rows, cols), rows, cols).unwrap()
    }

    /// f32 reference: the dequantized weights times the unquantized activations.
    fn naive(w: &Weights, x: &[f32], m: usize) -> Vec<f32> {
        let mut row = vec![0f32; w.cols];
        let mut y = vec![0f32; m * w.rows];
        for j in 0..w.rows {
            w.row_into(j, &mut row);
            for i in 0..m {
                let xi = &x[i * w.cols..(i + 1) * w.cols];
                y[i * w.rows + j] = xi.iter().zip(&row).map(|(a, b)| a * b).sum();
            }
        }
        y
    }

    #[test]
    fn every_type_matches_the_dequantized_product() {
        // 70 output columns: two tiles, the second ending in a pair and a single column.
        let (rows, cols, m) = (71, 512, 3);
        let x = values(m * cols, 2);
        for (dtype, tolerance) in [
            (GgmlDType::F32, 1e-4),
            (GgmlDType::F16, 0.05),
            (GgmlDType::BF16, 0.3),
            (GgmlDType::Q4_0, 1.0),
            (GgmlDType::Q4_1, 1.0),
            (GgmlDType::Q5_0, 0.6),
            (GgmlDType::Q5_1, 0.6),
            (GgmlDType::Q8_0, 0.2),
            (GgmlDType::Q2K, 3.0),
            (GgmlDType::Q3K, 2.0),
            (GgmlDType::Q4K, 1.0),
            (GgmlDType::Q5K, 0.6),
            (GgmlDType::Q6K, 0.3),
            (GgmlDType::Q8K, 0.2),
        ] {
            let w = quantized(dtype, rows, cols);
            let (y, r) = (w.matmul(&x, m), naive(&w, &x, m));
            let diff = y.iter().zip(&r).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff <= tolerance, "{dtype:?}: max diff {diff} > {tolerance}");
            assert!(r.iter().any(|v| v.abs() > 1.0), "{dtype:?}: degenerate reference");
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_in_a_batch_and_on_any_thread_count() {
        let (rows, cols) = (130, 256);
        let m = TILE_ROWS + 5;
        let x = values(m * cols, 3);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::Q6K, GgmlDType::F32] {
            let w = quantized(dtype, rows, cols);
            let batched = w.matmul(&x, m);
            for i in [0, 7, m - 1] {
                let alone = w.matmul(&x[i * cols..(i + 1) * cols], 1);
                assert_eq!(alone, batched[i * rows..(i + 1) * rows], "{dtype:?} row {i}");
            }
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                assert_eq!(pool.install(|| w.matmul(&x, m)), batched, "{dtype:?}, {threads} threads");
            }
        }
    }

    /// Q4_1 (no SIMD path in candle on x86) matches candle's matmul bit for bit; Q8_0, Q4_K
    /// and Q6_K follow candle's generic dot products instead of its AVX2 ones (their modules'
    /// tests compare with those).
    #[test]
    fn a_single_row_equals_candles_quantized_matmul() -> candle_core::Result<()> {
        let (rows, cols) = (70, 256);
        let x = values(cols, 4);
        let t = Tensor::from_vec(values(rows * cols, 1), (rows, cols), &Device::Cpu)?;
        let q = candle_core::quantized::QMatMul::from_qtensor(QTensor::quantize(&t, GgmlDType::Q4_1)?)?;
        let xt = Tensor::from_slice(&x, (1, cols), &Device::Cpu)?;
        let theirs = candle_core::Module::forward(&q, &xt)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(quantized(GgmlDType::Q4_1, rows, cols).matmul(&x, 1), theirs);
        Ok(())
    }

    #[test]
    fn many_matrices_equal_one_at_a_time_in_any_mix_of_types() {
        let (cols, m) = (512, 3);
        let x = values(m * cols, 5);
        let (q4k, q6k, q4_1, q8_0) = (
            quantized(GgmlDType::Q4K, 40, cols),
            quantized(GgmlDType::Q6K, 17, cols),
            quantized(GgmlDType::Q4_1, 24, cols),
            quantized(GgmlDType::Q8_0, 9, cols),
        );
        // Shared Q8_K activations for Q4_K and Q6_K, shared Q8_1 activations for Q4_1, and a mix
        // that falls back to separate products.
        for set in [vec![&q4k, &q6k, &q4k], vec![&q4_1, &q4_1], vec![&q4k, &q8_0, &q4_1]] {
            let each: Vec<Vec<f32>> = set.iter().map(|w| w.matmul(&x, m)).collect();
            assert_eq!(Weights::matmul_many(&set, &x, m), each, "{set:?}");
        }
    }

    #[test]
    fn malformed_bytes_are_rejected() {
        let err = Weights::ggml(GgmlDType::Q8_0, &[0u8; 33], 1, 32).unwrap_err();
        assert!(err.to_string().contains("34 bytes"), "{err}");
        let err = Weights::ggml(GgmlDType::Q4K, &[0u8; 144], 1, 128).unwrap_err();
        assert!(err.to_string().contains("blocks of 256"), "{err}");
    }
}
