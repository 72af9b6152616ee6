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
//! All arithmetic is f32 on the host; rayon supplies the parallelism.

pub(crate) mod attention;
pub(crate) mod matmul;
pub(crate) mod rowwise;

/// `a · b` in one fixed order for a given length (candle's f32 dot, SIMD when the CPU has it).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    use candle_core::quantized::k_quants::GgmlType;
    debug_assert_eq!(a.len(), b.len());
    <f32 as GgmlType>::vec_dot(a.len(), a, b)
}
