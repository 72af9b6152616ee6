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
//! Work is split into tiles of [`TILE_COLUMNS`] weight rows by [`TILE_ROWS`] activation rows,
//! run in parallel; each tile reads its slice of weights once for all its activation rows, so a
//! decode step of many sequences streams the weights from memory once, not once per sequence.

use std::fmt;

use anyhow::{bail, Result};
use candle_core::quantized::k_quants::{self as kq, GgmlType};
use candle_core::quantized::GgmlDType;
use candle_core::DType;
use half::{bf16, f16};
use rayon::prelude::*;

/// Weight rows (output columns) per work item; a multiple of 4 so quads never straddle tiles.
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
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    Q4_0(Vec<kq::BlockQ4_0>),
    Q4_1(Q4_1),
    Q5_0(Vec<kq::BlockQ5_0>),
    Q5_1(Vec<kq::BlockQ5_1>),
    Q8_0(Vec<kq::BlockQ8_0>),
    Q8_1(Vec<kq::BlockQ8_1>),
    Q2K(Vec<kq::BlockQ2K>),
    Q3K(Vec<kq::BlockQ3K>),
    Q4K(Vec<kq::BlockQ4K>),
    Q5K(Vec<kq::BlockQ5K>),
    Q6K(Vec<kq::BlockQ6K>),
    Q8K(Vec<kq::BlockQ8K>),
}

/// Runs `$body` with `$w` bound to the typed block vector, whatever the storage type.
macro_rules! with_blocks {
    ($blocks:expr, $w:ident => $body:expr) => {
        match $blocks {
            Blocks::F32($w) => $body,
            Blocks::F16($w) => $body,
            Blocks::BF16($w) => $body,
            Blocks::Q4_0($w) => $body,
            Blocks::Q4_1(q) => {
                let $w = &q.blocks;
                $body
            }
            Blocks::Q5_0($w) => $body,
            Blocks::Q5_1($w) => $body,
            Blocks::Q8_0($w) => $body,
            Blocks::Q8_1($w) => $body,
            Blocks::Q2K($w) => $body,
            Blocks::Q3K($w) => $body,
            Blocks::Q4K($w) => $body,
            Blocks::Q5K($w) => $body,
            Blocks::Q6K($w) => $body,
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
            bail!(
                "{} values do not make a [{rows}, {cols}] matrix",
                values.len()
            );
        }
        let blocks = match dtype {
            DType::F32 => Blocks::F32(values),
            DType::F16 => Blocks::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
            DType::BF16 => Blocks::BF16(values.iter().map(|&v| bf16::from_f32(v)).collect()),
            other => bail!("dense weights cannot be stored as {other:?}"),
        };
        Ok(Self { rows, cols, blocks })
    }

    /// GGML-encoded weights: `bytes` as a GGUF file stores a `[rows, cols]` tensor of `dtype`.
    pub(crate) fn ggml(dtype: GgmlDType, bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        if cols % dtype.block_size() != 0 {
            bail!(
                "rows of {cols} values do not fill {dtype:?} blocks of {}",
                dtype.block_size()
            );
        }
        let expected = rows * cols / dtype.block_size() * dtype.type_size();
        if bytes.len() != expected {
            bail!(
                "a [{rows}, {cols}] {dtype:?} matrix needs {expected} bytes, got {}",
                bytes.len()
            );
        }
        let blocks = match dtype {
            GgmlDType::F32 => Blocks::F32(typed(bytes)),
            GgmlDType::F16 => Blocks::F16(typed(bytes)),
            GgmlDType::BF16 => Blocks::BF16(typed(bytes)),
            GgmlDType::Q4_0 => Blocks::Q4_0(typed(bytes)),
            GgmlDType::Q4_1 => Blocks::Q4_1(Q4_1::new(typed(bytes))),
            GgmlDType::Q5_0 => Blocks::Q5_0(typed(bytes)),
            GgmlDType::Q5_1 => Blocks::Q5_1(typed(bytes)),
            GgmlDType::Q8_0 => Blocks::Q8_0(typed(bytes)),
            GgmlDType::Q8_1 => Blocks::Q8_1(typed(bytes)),
            GgmlDType::Q2K => Blocks::Q2K(typed(bytes)),
            GgmlDType::Q3K => Blocks::Q3K(typed(bytes)),
            GgmlDType::Q4K => Blocks::Q4K(typed(bytes)),
            GgmlDType::Q5K => Blocks::Q5K(typed(bytes)),
            GgmlDType::Q6K => Blocks::Q6K(typed(bytes)),
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
        })
    }

    /// `x @ W^T` for `x` of `m` rows of `cols` values; returns `[m, rows]`.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        debug_assert_eq!(x.len(), m * self.cols);
        if let Blocks::Q4_1(q) = &self.blocks {
            return q.matmul(self.rows, self.cols, x, m);
        }
        with_blocks!(&self.blocks, w => matmul_typed(w, self.rows, self.cols, x, m))
    }
}

/// Copies GGML-encoded bytes into a vector of their block type.
fn typed<T: GgmlType>(bytes: &[u8]) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    debug_assert_eq!(bytes.len() % size, 0);
    let mut out = vec![T::zeros(); bytes.len() / size];
    // SAFETY: `T` is f32, f16, bf16 or one of candle's `#[repr(C)]` GGML block structs, which
    // consist only of f16 scales and integer arrays: every bit pattern is a valid value, exactly
    // how candle itself views GGUF bytes. `out` spans exactly `bytes.len()` bytes, and the two
    // buffers are distinct allocations.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            out.as_mut_ptr().cast::<u8>(),
            bytes.len(),
        );
    }
    out
}

fn matmul_typed<T: GgmlType>(w: &[T], rows: usize, cols: usize, x: &[f32], m: usize) -> Vec<f32> {
    let per_row = cols / T::BLCK_SIZE;
    let mut xq = vec![T::VecDotType::zeros(); m * per_row];
    xq.par_chunks_mut(per_row.max(1))
        .zip(x.par_chunks(cols.max(1)))
        .for_each(|(q, x)| T::VecDotType::from_float(x, q));

    let weight = |j: usize| &w[j * per_row..(j + 1) * per_row];
    let quads_end = rows & !3;
    tiled(m, rows, |i, j0, j1, out| {
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
    })
}

/// Runs `fill(i, j0, j1, out)` for every activation row `i` and column range `j0..j1` of a
/// `[m, rows]` output, in parallel over fixed tiles, and assembles the result. `out` receives
/// the outputs `(i, j0..j1)`. Tiles depend only on the shape, so which call computes an output
/// never depends on the thread count.
fn tiled(m: usize, rows: usize, fill: impl Fn(usize, usize, usize, &mut [f32]) + Sync) -> Vec<f32> {
    let col_tiles = rows.div_ceil(TILE_COLUMNS);
    let row_tiles = m.div_ceil(TILE_ROWS);
    let tiles: Vec<Vec<f32>> = (0..row_tiles * col_tiles)
        .into_par_iter()
        .map(|item| {
            let (rt, ct) = (item / col_tiles, item % col_tiles);
            let (i0, i1) = (rt * TILE_ROWS, (rt * TILE_ROWS + TILE_ROWS).min(m));
            let (j0, j1) = (ct * TILE_COLUMNS, (ct * TILE_COLUMNS + TILE_COLUMNS).min(rows));
            let width = j1 - j0;
            let mut out = vec![0f32; (i1 - i0) * width];
            for (i, out) in (i0..i1).zip(out.chunks_mut(width)) {
                fill(i, j0, j1, out);
            }
            out
        })
        .collect();

    let mut y = vec![0f32; m * rows];
    for (item, tile) in tiles.iter().enumerate() {
        let (rt, ct) = (item / col_tiles, item % col_tiles);
        let j0 = ct * TILE_COLUMNS;
        let width = (rows - j0).min(TILE_COLUMNS);
        for (k, src) in tile.chunks(width).enumerate() {
            let i = rt * TILE_ROWS + k;
            y[i * rows + j0..i * rows + j0 + width].copy_from_slice(src);
        }
    }
    y
}

/// Q4_1 weights with each block's scale and minimum already in f32.
///
/// candle's Q4_1 dot product converts four f16 values per 32-weight block on every call; that
/// conversion, not the arithmetic, dominated decode time. Converting the weights' two once at
/// load and the activations' two once per row gives the same f32 values, so every output keeps
/// exactly the bits of candle's `vec_dot` (the tests compare), at a fraction of the cost.
pub(crate) struct Q4_1 {
    blocks: Vec<kq::BlockQ4_1>,
    /// Per block: (scale, minimum).
    scales: Vec<[f32; 2]>,
}

/// Bytes of one Q4_1 block: f16 scale, f16 minimum, 16 bytes of nibbles (`#[repr(C)]`).
const Q4_1_BYTES: usize = 20;
/// Bytes of one Q8_1 block: f16 scale, f16 scaled sum, 32 signed bytes (`#[repr(C)]`).
const Q8_1_BYTES: usize = 36;

/// The f16 at `at` in little-endian `bytes`, as f32.
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// A slice of `#[repr(C)]` blocks viewed as their bytes.
fn block_bytes<T>(blocks: &[T]) -> &[u8] {
    // SAFETY: candle's GGML block structs are `#[repr(C)]` f16 and integer fields without
    // padding (candle asserts their sizes), so every byte is initialised; the view lives as long
    // as the borrow of `blocks`.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks)) }
}

impl Q4_1 {
    fn new(blocks: Vec<kq::BlockQ4_1>) -> Self {
        debug_assert_eq!(std::mem::size_of::<kq::BlockQ4_1>(), Q4_1_BYTES);
        let scales = block_bytes(&blocks)
            .chunks_exact(Q4_1_BYTES)
            .map(|b| [f16_at(b, 0), f16_at(b, 2)])
            .collect();
        Self { blocks, scales }
    }

    fn matmul(&self, rows: usize, cols: usize, x: &[f32], m: usize) -> Vec<f32> {
        debug_assert_eq!(std::mem::size_of::<kq::BlockQ8_1>(), Q8_1_BYTES);
        let per_row = cols / kq::BlockQ4_1::BLCK_SIZE;
        let mut xq = vec![kq::BlockQ8_1::zeros(); m * per_row];
        xq.par_chunks_mut(per_row.max(1))
            .zip(x.par_chunks(cols.max(1)))
            .for_each(|(q, x)| kq::BlockQ8_1::from_float(x, q));
        let xbytes = block_bytes(&xq);
        let xscales: Vec<[f32; 2]> = xbytes.chunks_exact(Q8_1_BYTES).map(|b| [f16_at(b, 0), f16_at(b, 2)]).collect();
        let wbytes = block_bytes(&self.blocks);
        tiled(m, rows, |i, j0, j1, out| {
            let a = i * per_row;
            for (j, out) in (j0..j1).zip(out.iter_mut()) {
                let w = j * per_row;
                *out = q4_1_dot(
                    &wbytes[w * Q4_1_BYTES..(w + per_row) * Q4_1_BYTES],
                    &self.scales[w..w + per_row],
                    &xbytes[a * Q8_1_BYTES..(a + per_row) * Q8_1_BYTES],
                    &xscales[a..a + per_row],
                );
            }
        })
    }
}

/// One output: ggml's Q4_1 × Q8_1 dot product, in its order of operations.
fn q4_1_dot(w: &[u8], wscales: &[[f32; 2]], x: &[u8], xscales: &[[f32; 2]]) -> f32 {
    let mut sumf = 0f32;
    for (((wb, ws), xb), xs) in w.chunks_exact(Q4_1_BYTES).zip(wscales).zip(x.chunks_exact(Q8_1_BYTES)).zip(xscales) {
        let (nibbles, quants) = (&wb[4..20], &xb[4..36]);
        let mut sumi = 0i32;
        for k in 0..16 {
            let (lo, hi) = (i32::from(nibbles[k] & 0x0F), i32::from(nibbles[k] >> 4));
            sumi += lo * i32::from(quants[k] as i8) + hi * i32::from(quants[k + 16] as i8);
        }
        sumf += sumi as f32 * ws[0] * xs[0] + ws[1] * xs[1];
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed * 97);
                (h % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> Weights {
        let t = Tensor::from_vec(values(rows * cols, 1), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, dtype).unwrap();
        Weights::ggml(dtype, &q.data().unwrap(), rows, cols).unwrap()
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

    #[test]
    fn a_single_row_equals_candles_quantized_matmul() -> candle_core::Result<()> {
        let (rows, cols) = (70, 256);
        let x = values(cols, 4);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0, GgmlDType::Q6K] {
            let t = Tensor::from_vec(values(rows * cols, 1), (rows, cols), &Device::Cpu)?;
            let q = candle_core::quantized::QMatMul::from_qtensor(QTensor::quantize(&t, dtype)?)?;
            let xt = Tensor::from_slice(&x, (1, cols), &Device::Cpu)?;
            let theirs = candle_core::Module::forward(&q, &xt)?.flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(quantized(dtype, rows, cols).matmul(&x, 1), theirs, "{dtype:?}");
        }
        Ok(())
    }

    #[test]
    fn malformed_bytes_are_rejected() {
        let err = Weights::ggml(GgmlDType::Q8_0, &[0u8; 33], 1, 32).unwrap_err();
        assert!(err.to_string().contains("34 bytes"), "{err}");
        let err = Weights::ggml(GgmlDType::Q4K, &[0u8; 144], 1, 128).unwrap_err();
        assert!(err.to_string().contains("blocks of 256"), "{err}");
    }
}
