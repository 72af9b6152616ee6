//! Causal attention over paged caches.
//!
//! A query at position `p` attends to keys `0..=p` of its own sequence. It reads them block by
//! block in position order (blocks of [`BLOCK_TOKENS`], aligned to absolute positions, as the
//! cache stores them) with an online softmax: the running maximum, the running sum of
//! exponentials and the weighted sum of values are rescaled once per block. The operations for
//! query `p` therefore depend only on `p`, its query vector and the cached keys and values, never
//! on which other queries share the step or how the prompt was chunked.
//!
//! Work is split by KV head and, within a head, into runs of queries. A run walks the blocks in
//! position order and, at each block, advances every query of the run that reaches it, so a
//! block many queries read (a prompt chunk's own keys, or a prefix that several sequences share
//! in the cache) comes from memory once per run instead of once per query. Runs only decide
//! which thread advances which queries, never the operations of any one query.

use rayon::prelude::*;

use super::dot;
use crate::model::kv::{Scratch, SeqKv, BLOCK_TOKENS};

/// The query rows of one step, and for each row the sequence and position it belongs to.
pub(crate) struct Queries<'a> {
    /// `[tokens, heads * head_dim]`, already rotated.
    pub q: &'a [f32],
    /// For each token: (index into the caches, absolute position).
    pub rows: &'a [(usize, usize)],
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// One query's online-softmax state.
struct Running {
    max: f32,
    sum: f32,
}

/// Attention of every query row at `layer`; returns `[tokens, heads * head_dim]`. Each cache must
/// already hold the keys and values of every position its queries attend to.
pub(crate) fn attend(queries: &Queries, caches: &[&SeqKv], layer: usize) -> Vec<f32> {
    let Queries {
        q,
        rows,
        heads,
        kv_heads,
        head_dim: d,
    } = *queries;
    let groups = heads / kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    // The queries of KV head `g` are numbered `token * groups + h` for its heads `h`; a run is a
    // range of those numbers. At least four runs per thread.
    let per_head = rows.len() * groups;
    let runs_per_head = (4 * rayon::current_num_threads()).div_ceil(kv_heads).min(per_head.max(1));
    let run_len = per_head.div_ceil(runs_per_head).max(1);
    let runs: Vec<(usize, usize, usize)> = (0..kv_heads)
        .flat_map(|g| (0..per_head).step_by(run_len).map(move |start| (g, start, (start + run_len).min(per_head))))
        .collect();
    let query = |g: usize, n: usize| {
        let (token, head) = (n / groups, g * groups + n % groups);
        (token, (token * heads + head) * d)
    };
    let results: Vec<Vec<f32>> = runs
        .par_iter()
        .map(|&(g, start, end)| {
            let members: Vec<(usize, usize, usize)> = (start..end)
                .map(|n| {
                    let (token, at) = query(g, n);
                    let (seq, position) = rows[token];
                    (seq, position, at)
                })
                .collect();
            attend_run(&members, q, caches, layer, g, scale, d)
        })
        .collect();

    let mut out = vec![0f32; q.len()];
    for (&(g, start, end), result) in runs.iter().zip(&results) {
        for (n, values) in (start..end).zip(result.chunks(d)) {
            let (_, at) = query(g, n);
            out[at..at + d].copy_from_slice(values);
        }
    }
    out
}

/// Online softmax for each `(sequence, position, offset of its query in q)` of `members` over
/// keys `0..=position` of `kv_head`; returns their outputs, `d` values each, in order.
fn attend_run(
    members: &[(usize, usize, usize)],
    q: &[f32],
    caches: &[&SeqKv],
    layer: usize,
    kv_head: usize,
    scale: f32,
    d: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; members.len() * d];
    let mut running: Vec<Running> = members
        .iter()
        .map(|_| Running {
            max: f32::NEG_INFINITY,
            sum: 0.0,
        })
        .collect();
    let last_block = members.iter().map(|&(_, position, _)| position / BLOCK_TOKENS).max().unwrap_or(0);
    let mut scores = [0f32; BLOCK_TOKENS];
    let (mut key_scratch, mut value_scratch) = (Scratch::default(), Scratch::default());
    for block in 0..=last_block {
        for ((&(seq, position, at), state), out) in members.iter().zip(&mut running).zip(out.chunks_mut(d)) {
            if block > position / BLOCK_TOKENS {
                continue;
            }
            let query = &q[at..at + d];
            let count = (position + 1 - block * BLOCK_TOKENS).min(BLOCK_TOKENS);
            let keys = caches[seq].run(block, layer, false, kv_head, &mut key_scratch);
            let values = caches[seq].run(block, layer, true, kv_head, &mut value_scratch);
            let mut block_max = f32::NEG_INFINITY;
            for (t, score) in scores[..count].iter_mut().enumerate() {
                *score = dot(query, &keys[t * d..(t + 1) * d]) * scale;
                block_max = block_max.max(*score);
            }
            let new_max = state.max.max(block_max);
            // exp(-inf) is 0: the first block starts the sums from nothing.
            let rescale = (state.max - new_max).exp();
            state.sum *= rescale;
            for o in out.iter_mut() {
                *o *= rescale;
            }
            for (t, &score) in scores[..count].iter().enumerate() {
                let weight = (score - new_max).exp();
                state.sum += weight;
                for (o, &v) in out.iter_mut().zip(&values[t * d..(t + 1) * d]) {
                    *o += weight * v;
                }
            }
            state.max = new_max;
        }
    }
    for (out, state) in out.chunks_mut(d).zip(&running) {
        for o in out.iter_mut() {
            *o /= state.sum;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kv::{KvDtype, KvShape};

    fn value(i: usize, seed: usize) -> f32 {
        ((i * 7919 + seed * 104_729) % 1999) as f32 / 999.5 - 1.0
    }

    /// Plain softmax attention for one query over keys `0..=position`.
    fn naive(query: &[f32], keys: &[Vec<f32>], values: &[Vec<f32>], position: usize) -> Vec<f32> {
        let scale = 1.0 / (query.len() as f32).sqrt();
        let scores: Vec<f32> = (0..=position)
            .map(|j| query.iter().zip(&keys[j]).map(|(a, b)| a * b).sum::<f32>() * scale)
            .collect();
        let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f32 = weights.iter().sum();
        (0..query.len())
            .map(|c| (0..=position).map(|j| weights[j] * values[j][c]).sum::<f32>() / total)
            .collect()
    }

    #[test]
    fn matches_plain_softmax_attention_with_grouped_heads() {
        let (heads, kv_heads, d, len) = (4, 2, 8, 2 * BLOCK_TOKENS + 5);
        let shape = KvShape {
            layers: 1,
            kv_heads,
            head_dim: d,
        };
        let mut kv = SeqKv::new(shape, KvDtype::F32);
        let row = |p: usize, seed: usize| -> Vec<f32> {
            (0..kv_heads * d).map(|i| 3.0 * value(p * 64 + i, seed)).collect()
        };
        for p in 0..len {
            kv.write(0, p, &row(p, 1), &row(p, 2)).unwrap();
        }
        kv.commit(len);
        let positions = [0, BLOCK_TOKENS - 1, BLOCK_TOKENS, len - 1];
        let q: Vec<f32> = (0..positions.len() * heads * d).map(|i| value(i, 3)).collect();
        let rows: Vec<(usize, usize)> = positions.iter().map(|&p| (0, p)).collect();
        let queries = Queries {
            q: &q,
            rows: &rows,
            heads,
            kv_heads,
            head_dim: d,
        };
        let out = attend(&queries, &[&kv], 0);
        for (t, &p) in positions.iter().enumerate() {
            for h in 0..heads {
                let g = h / (heads / kv_heads);
                let slice = |r: Vec<f32>| r[g * d..(g + 1) * d].to_vec();
                let keys: Vec<Vec<f32>> = (0..len).map(|j| slice(row(j, 1))).collect();
                let values: Vec<Vec<f32>> = (0..len).map(|j| slice(row(j, 2))).collect();
                let at = (t * heads + h) * d;
                let expected = naive(&q[at..at + d], &keys, &values, p);
                for (a, b) in out[at..at + d].iter().zip(&expected) {
                    assert!((a - b).abs() < 1e-5, "position {p} head {h}: {a} vs {b}");
                }
            }
        }
        // A query alone gives the bits it gives among others.
        let last = &q[3 * heads * d..];
        let alone = Queries {
            q: last,
            rows: &rows[3..],
            ..queries
        };
        assert_eq!(attend(&alone, &[&kv], 0), out[3 * heads * d..]);
        // Runs follow the thread count; the results must not.
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            assert_eq!(pool.install(|| attend(&queries, &[&kv], 0)), out, "{threads} threads");
        }
    }
}
