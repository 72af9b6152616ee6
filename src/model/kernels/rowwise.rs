//! The row-at-a-time operations between the matrix products: each output depends only on its
//! own row (and, for RoPE, its own position), so batching cannot change it.

use rayon::prelude::*;

use super::dot;

/// Rows per parallel work item: small steps run on one thread instead of paying for a split.
const MIN_ROWS_PER_TASK: usize = 8;

/// RMSNorm of each `weight.len()`-wide row of `x`: `x / sqrt(mean(x²) + eps) * weight`.
pub(crate) fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let width = weight.len();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(width)
        .with_min_len(MIN_ROWS_PER_TASK)
        .zip(x.par_chunks(width))
        .for_each(|(out, row)| rms_norm_row(row, weight, eps, out));
    out
}

/// In place, for per-head norms (Qwen3's q/k norms) over `weight.len()`-wide slices.
pub(crate) fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let width = weight.len();
    let mut scratch = vec![0f32; width];
    for row in x.chunks_mut(width) {
        rms_norm_row(row, weight, eps, &mut scratch);
        row.copy_from_slice(&scratch);
    }
}

fn rms_norm_row(row: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean_square = dot(row, row) / row.len() as f32;
    let scale = 1.0 / (mean_square + eps).sqrt();
    for ((o, &x), &w) in out.iter_mut().zip(row).zip(weight) {
        *o = x * scale * w;
    }
}

/// `silu(gate) * up`, elementwise, into `gate`.
pub(crate) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    gate.par_chunks_mut(4096).zip(up.par_chunks(4096)).for_each(|(g, u)| {
        for (g, &u) in g.iter_mut().zip(u) {
            *g = *g / (1.0 + (-*g).exp()) * u;
        }
    });
}

/// `x += y`, elementwise.
pub(crate) fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// Adds `bias` to each `bias.len()`-wide row of `x`.
pub(crate) fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_mut(bias.len()) {
        add_in_place(row, bias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_its_definition() {
        let x = [1.0f32, -2.0, 3.0, 0.5, 4.0, 0.0, -1.0, 2.0];
        let w = [0.5f32, 1.0, 2.0, -1.0];
        let y = rms_norm(&x, &w, 1e-5);
        for (row, out) in x.chunks(4).zip(y.chunks(4)) {
            let ms: f32 = row.iter().map(|v| v * v).sum::<f32>() / 4.0;
            for i in 0..4 {
                let expected = row[i] / (ms + 1e-5).sqrt() * w[i];
                assert!((out[i] - expected).abs() < 1e-5, "{} vs {expected}", out[i]);
            }
        }
        let mut z = x;
        rms_norm_in_place(&mut z, &w, 1e-5);
        assert_eq!(z.to_vec(), y);
    }

    #[test]
    fn silu_gating_matches_its_definition() {
        let mut g = [-3.0f32, 0.0, 0.5, 6.0];
        let u = [2.0f32, 5.0, -1.0, 0.25];
        let expected: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| g * (1.0 / (1.0 + (-g).exp())) * u).collect();
        silu_mul(&mut g, &u);
        for (a, b) in g.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert_eq!(g[1], 0.0);
    }
}
