//! The forward pass's CPU kernels, each written so that every output element is computed by
//! the same operations in the same order however a step is scheduled.
//!
//! A serving engine batches whichever sequences are active, splits prompts into chunks and
//! reuses cached prefixes; a kernel whose rounding depends on the batch's row count, the chunk
//! boundaries or the thread split would make a sequence's tokens depend on its neighbours. So:
//!
//! - [`matmul`]: each (row, output column) is one fixed dot product of the row's quantized
//!   activations with that column's weights; rows never interact, and work is split over
//!   fixed column tiles, so neither the number of rows nor the number of threads matters.
//! - [`attention`]: each (sequence, head, query) is one work item that reads the sequence's
//!   keys in position order, in fixed blocks aligned to absolute positions, so chunking a
//!   prompt differently cannot change a query's result.
//! - [`rowwise`]: RMSNorm, RoPE, SiLU gating and residual additions touch one row at a time.
//!
//! All arithmetic is f32 on the host; rayon supplies the parallelism, and [`workers`] runs each
//! pass on its pool with the other workers kept awake between kernels.

pub(crate) mod activations;
pub(crate) mod attention;
pub(crate) mod dense;
pub(crate) mod matmul;
pub(crate) mod q4_1;
pub(crate) mod q4_k;
pub(crate) mod q6_k;
pub(crate) mod q8_0;
pub(crate) mod rowwise;
pub(crate) mod simd;
pub(crate) mod workers;

/// `a · b` in one fixed order for a given length (candle's f32 dot, SIMD when the CPU has it).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    use candle_core::quantized::k_quants::GgmlType;
    debug_assert_eq!(a.len(), b.len());
    <f32 as GgmlType>::vec_dot(a.len(), a, b)
}

/// Asks the CPU to fetch the `bytes` (a multiple of 64) that start `ahead` bytes past `p`
/// into cache. Kernels stream weights in short runs (one group of columns, one row), too short
/// for the hardware prefetcher to learn, so they ask for what they will read a few hundred
/// bytes later; decode, which reads every weight once per token, waits on memory otherwise.
/// A prefetch never faults, so the address may lie past the end of the weights. Attention uses
/// it too, for the next cache block. Elsewhere than x86_64 it does nothing.
#[inline(always)]
fn prefetch<T>(p: *const T, ahead: usize, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = p.cast::<i8>().wrapping_add(ahead);
        for line in (0..bytes).step_by(64) {
            // SAFETY: prefetching is a hint that never reads memory architecturally and never
            // faults, whatever the address; SSE is part of x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, ahead, bytes);
}

/// candle's GGML blocks viewed as the bytes a GGUF file stores (their fields are private).
fn block_bytes<T: candle_core::quantized::k_quants::GgmlType>(blocks: &[T]) -> &[u8] {
    // SAFETY: candle's GGML block structs are `#[repr(C)]` f16 and integer fields without
    // padding (candle asserts their sizes), so every byte is initialised; the view lives as long
    // as the borrow of `blocks`.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks)) }
}

/// Deterministic test values in [-1, 1].
#[cfg(test)]
fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed * 97);
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// candle's generic dot product (`vec_dot_unopt`) of every row of `x` (`m` rows of `cols`) with
/// every row of the GGUF-encoded `T` weights in `bytes`: the bits our kernels must give.
#[cfg(test)]
fn test_reference<T: candle_core::quantized::k_quants::GgmlType>(bytes: &[u8], x: &[f32], m: usize, cols: usize) -> Vec<f32> {
    use candle_core::quantized::k_quants::GgmlType;
    let blocks: Vec<T> = matmul::typed(bytes);
    let per_row = cols / T::BLCK_SIZE;
    let mut xq = vec![T::VecDotType::zeros(); m * per_row];
    for (q, x) in xq.chunks_mut(per_row).zip(x.chunks(cols)) {
        T::VecDotType::from_float(x, q);
    }
    let mut y = Vec::new();
    for a in xq.chunks(per_row) {
        y.extend(blocks.chunks(per_row).map(|w| T::vec_dot_unopt(cols, w, a)));
    }
    y
}

/// Checks a matrix kernel's tile function `tile(activation rows, output columns, out)` against
/// `expected` (`[m, rows]`, with `m >= 3` and `rows > 8`): the whole product as one tile, and a
/// tile that starts at the second group of columns and the second row.
#[cfg(test)]
fn check_tiles(name: &str, expected: &[f32], m: usize, rows: usize, tile: impl Fn((usize, usize), (usize, usize), &mut [f32])) {
    let mut all = vec![0f32; m * rows];
    tile((0, m), (0, rows), &mut all);
    assert_eq!(all, expected, "{name}: the whole product");
    let width = rows - 8;
    let mut part = vec![0f32; 2 * width];
    tile((1, 3), (8, rows), &mut part);
    for (r, row) in part.chunks(width).enumerate() {
        assert_eq!(row, &expected[(r + 1) * rows + 8..(r + 2) * rows], "{name}: row {} of a tile from column 8", r + 1);
    }
}

/// GGUF bytes of `[rows, cols]` test values quantized to `dtype` by candle.
#[cfg(test)]
fn test_quantized(dtype: candle_core::quantized::GgmlDType, rows: usize, cols: usize) -> Vec<u8> {
    use candle_core::{quantized::QTensor, Device, Tensor};
    let t = Tensor::from_vec(test_values(rows * cols, 1), (rows, cols), &Device::Cpu).expect("tensor");
    QTensor::quantize(&t, dtype).expect("quantize").data().expect("bytes").to_vec()
}
