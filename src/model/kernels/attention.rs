//! Causal attention over paged caches.
//!
//! A query at position `p` attends to keys `0..=p` of its own sequence. Its result is defined by
//! one fixed sequence of operations that depends only on `p`, the query and the cached keys and
//! values, never on which other queries share the step, how the prompt was chunked, how many
//! threads run, or which vector unit the CPU has (see [`super::simd`]):
//!
//! 1. The query is scaled once by `log2(e) / sqrt(head_dim)`, so scores are in base 2.
//! 2. Keys are taken in segments of [`SEGMENT_TOKENS`] aligned to absolute positions. Within a
//!    segment, each cache block of 16 keys gives 16 scores at once: score `t` is the sum of four
//!    fused multiply-add chains over the key components `c ≡ 0, 1, 2, 3 (mod 4)`, added as
//!    `(a0 + a1) + (a2 + a3)`. The segment's maximum `m` and the sum `l` of the weights
//!    `w = 2^(score - m)` use lane-wise passes over its blocks in order, then the fixed 16-lane
//!    tree; each output component is one fused multiply-add chain `Σ w_t · v_t` in key order.
//! 3. Segments are folded left to right: `M' = max(M, m)`, `L' = l·2^(m-M') + L·2^(M-M')`, and
//!    likewise the outputs; the result is the outputs divided by `L`.
//!
//! Work is split by KV head into chunks of queries, and, when there are too few chunks to keep
//! every thread busy (decoding a few sequences), also by segment: the per-segment results are
//! then kept and folded afterwards, in the same order with the same operations. Inside a task,
//! a segment is computed for one group of queries at a time, the queries whose first block of it
//! is the same (see `Groups`), and within a group the queries that read the same cache block (a
//! prompt chunk's own keys, or a prefix that several sequences share in the cache) are
//! processed together, a few at a time, so the block is loaded once for all of them. A block
//! stored in f16 that more than one such tile reads is widened to f32 once, not in every tile's
//! inner loop (the conversion is exact). Which queries go together never changes what any of
//! them computes.

use std::ops::Range;

use half::f16;
use rayon::prelude::*;

use super::simd::{self, Isa, Lanes};
use crate::model::kv::{KvDtype, KvElem, SeqKv, BLOCK_TOKENS};

/// Keys per segment, the unit of the online softmax (see the module docs).
pub(crate) const SEGMENT_TOKENS: usize = 256;
const SEGMENT_BLOCKS: usize = SEGMENT_TOKENS / BLOCK_TOKENS;
/// Queries of one KV head per task, at most.
const CHUNK: usize = 32;

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

/// Attention of every query row at `layer`; returns `[tokens, heads * head_dim]`. Each cache must
/// already hold the keys and values of every position its queries attend to, and all of them
/// must store the same type.
pub(crate) fn attend(queries: &Queries, caches: &[&SeqKv], layer: usize) -> Vec<f32> {
    attend_with(Isa::detect(), queries, caches, layer)
}

/// [`attend`] on the vector unit `isa`, which the CPU must have.
pub(crate) fn attend_with(isa: Isa, queries: &Queries, caches: &[&SeqKv], layer: usize) -> Vec<f32> {
    assert!(isa.available(), "this CPU has no {} unit", isa.name());
    let d = queries.head_dim;
    let factor = (1.0 / (d as f32).sqrt()) * std::f32::consts::LOG2_E;
    let scaled: Vec<f32> = queries.q.iter().map(|&x| x * factor).collect();
    let dtype = caches.first().map_or(KvDtype::F32, |c| c.dtype());
    assert!(caches.iter().all(|c| c.dtype() == dtype), "caches of one pass store one type");
    let ctx = Ctx { q: &scaled, rows: queries.rows, caches, layer, heads: queries.heads, groups: queries.heads / queries.kv_heads, d };

    // The queries of KV head `g` are numbered `token * groups + h` for its heads `h`.
    let per_head = queries.rows.len() * ctx.groups;
    let chunks: Vec<Chunk> = (0..queries.kv_heads)
        .flat_map(|g| (0..per_head).step_by(CHUNK).map(move |start| (g, start..(start + CHUNK).min(per_head))))
        .map(|(g, members)| {
            let last = members.clone().map(|n| ctx.member(g, n).position).max().unwrap_or(0);
            Chunk { g, members, segments: last / SEGMENT_TOKENS + 1 }
        })
        .collect();
    let threads = rayon::current_num_threads();
    let split = chunks.len() < 4 * threads;
    let mut tasks: Vec<(usize, Range<usize>)> = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let pieces = if split { (8 * threads).div_ceil(chunks.len()) } else { 1 };
        let size = chunk.segments.div_ceil(pieces.min(chunk.segments));
        tasks.extend((0..chunk.segments).step_by(size).map(|s| (i, s..(s + size).min(chunk.segments))));
    }
    let outs: Vec<Vec<f32>> =
        tasks.par_iter().map(|(i, segments)| dispatch(isa, dtype, &ctx, Job::Task(&chunks[*i], segments.clone()))).collect();

    // Each chunk's results: its one task's outputs, or its tasks' partials folded in order.
    let mut first_task = vec![0usize; chunks.len() + 1];
    for (i, _) in &tasks {
        first_task[i + 1] += 1;
    }
    for i in 0..chunks.len() {
        first_task[i + 1] += first_task[i];
    }
    let finals: Vec<Vec<f32>> = chunks
        .par_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let range = first_task[i]..first_task[i + 1];
            if range.len() == 1 {
                return Vec::new();
            }
            let parts: Vec<(Range<usize>, &[f32])> = range.map(|t| (tasks[t].1.clone(), outs[t].as_slice())).collect();
            dispatch(isa, dtype, &ctx, Job::Fold(chunk, &parts))
        })
        .collect();
    let mut out = vec![0f32; queries.q.len()];
    for (i, chunk) in chunks.iter().enumerate() {
        let values = if finals[i].is_empty() { &outs[first_task[i]] } else { &finals[i] };
        for (n, values) in chunk.members.clone().zip(values.chunks(d)) {
            let at = ctx.member(chunk.g, n).at;
            out[at..at + d].copy_from_slice(values);
        }
    }
    out
}

/// What a pass shares with every task.
struct Ctx<'a> {
    /// The scaled queries, laid out as [`Queries::q`].
    q: &'a [f32],
    rows: &'a [(usize, usize)],
    caches: &'a [&'a SeqKv],
    layer: usize,
    heads: usize,
    /// Query heads per KV head.
    groups: usize,
    d: usize,
}

/// One query of a KV head.
#[derive(Clone, Copy)]
struct Member {
    seq: usize,
    position: usize,
    /// Where its vector starts in the queries (and its result in the output).
    at: usize,
}

impl Ctx<'_> {
    fn member(&self, g: usize, n: usize) -> Member {
        let (token, head) = (n / self.groups, g * self.groups + n % self.groups);
        let (seq, position) = self.rows[token];
        Member { seq, position, at: (token * self.heads + head) * self.d }
    }
}

/// Consecutive queries of KV head `g`, and how many segments the longest of them reads.
struct Chunk {
    g: usize,
    members: Range<usize>,
    segments: usize,
}

enum Job<'a> {
    /// A chunk's segments: its outputs if they are all of them, else one partial per segment
    /// (see [`task`]).
    Task(&'a Chunk, Range<usize>),
    /// A chunk's partials from its tasks, in segment order, folded into its outputs.
    Fold(&'a Chunk, &'a [(Range<usize>, &'a [f32])]),
}

/// Runs `job` with the vector unit `isa` (which the caller checked) on caches of `dtype`.
fn dispatch(isa: Isa, dtype: KvDtype, ctx: &Ctx, job: Job) -> Vec<f32> {
    // SAFETY: `attend_with` checked that the CPU has `isa`.
    unsafe {
        match (isa, dtype) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, KvDtype::F32) => job_avx512::<f32>(ctx, job),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, KvDtype::F16) => job_avx512::<f16>(ctx, job),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, KvDtype::F32) => job_avx2::<f32>(ctx, job),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, KvDtype::F16) => job_avx2::<f16>(ctx, job),
            (_, KvDtype::F32) => run_job::<f32, f32>(ctx, job),
            (_, KvDtype::F16) => run_job::<f32, f16>(ctx, job),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn job_avx512<E: Load>(ctx: &Ctx, job: Job) -> Vec<f32> {
    run_job::<simd::Avx512, E>(ctx, job)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn job_avx2<E: Load>(ctx: &Ctx, job: Job) -> Vec<f32> {
    run_job::<simd::Avx2, E>(ctx, job)
}

#[inline(always)]
unsafe fn run_job<V: Lanes, E: Load>(ctx: &Ctx, job: Job) -> Vec<f32> {
    match job {
        Job::Task(chunk, segments) => task::<V, E>(ctx, chunk, segments),
        Job::Fold(chunk, parts) => fold_parts::<V>(ctx, chunk, parts),
    }
}

/// How cached values are read into lanes.
trait Load: KvElem {
    /// Whether reading converts: a block of such a type that more than one tile reads is widened
    /// to f32 once (see [`widen`]).
    const WIDENS: bool;
    unsafe fn load<V: Lanes>(p: *const Self) -> V;
    fn to_f32(self) -> f32;
}

impl Load for f32 {
    const WIDENS: bool = false;
    #[inline(always)]
    unsafe fn load<V: Lanes>(p: *const f32) -> V {
        V::load(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Load for f16 {
    const WIDENS: bool = true;
    #[inline(always)]
    unsafe fn load<V: Lanes>(p: *const f16) -> V {
        V::load_f16(p.cast())
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// Queries processed together against one block: as many as keep their accumulators in
/// registers.
const fn tile<V: Lanes>() -> usize {
    if V::W == 8 {
        2
    } else {
        4
    }
}

/// Registers per 16 scores.
const fn regs<V: Lanes>() -> usize {
    BLOCK_TOKENS / V::W
}

/// Floats of one partial: the segment's maximum and sum, then `d` outputs.
fn partial_len(d: usize) -> usize {
    d + 2
}

/// Computes `segments` of `chunk`. If they are all of its segments, returns its outputs
/// (`members × d`); else `segments × members` partials, each `[max, sum, outputs...]` (slots of
/// members that do not reach a segment are unused).
#[inline(always)]
unsafe fn task<V: Lanes, E: Load>(ctx: &Ctx, chunk: &Chunk, segments: Range<usize>) -> Vec<f32> {
    let d = ctx.d;
    let members: Vec<Member> = chunk.members.clone().map(|n| ctx.member(chunk.g, n)).collect();
    let count = members.len();
    let complete = segments.start == 0 && segments.end == chunk.segments;
    let mut scores = vec![0f32; count * SEGMENT_TOKENS];
    let mut acc = vec![0f32; count * d];
    let mut stats = vec![(0f32, 0f32); count];
    let len = partial_len(d);
    let mut out = vec![0f32; if complete { count * d } else { segments.len() * count * len }];
    let mut running = vec![(0f32, 0f32); if complete { count } else { 0 }];
    let mut groups = Groups::new(count);
    let mut readers = Readers::<E>::new(count);
    let mut wide = vec![0f32; d * BLOCK_TOKENS];
    for (k, s) in segments.enumerate() {
        for group in groups.split::<E>(ctx, chunk.g, &members, s) {
            segment::<V, E>(ctx, chunk.g, &members, group, s, &mut readers, &mut wide, &mut scores, &mut acc, &mut stats);
        }
        for (j, member) in members.iter().enumerate() {
            if member.position < s * SEGMENT_TOKENS {
                continue;
            }
            let (m, l) = stats[j];
            let o = &acc[j * d..(j + 1) * d];
            if complete {
                let target = &mut out[j * d..(j + 1) * d];
                if s == 0 {
                    running[j] = (m, l);
                    target.copy_from_slice(o);
                } else {
                    fold::<V>(&mut running[j], target, (m, l), o);
                }
            } else {
                let at = (k * count + j) * len;
                out[at] = m;
                out[at + 1] = l;
                out[at + 2..at + len].copy_from_slice(o);
            }
        }
    }
    if complete {
        for (j, &(_, l)) in running.iter().enumerate() {
            divide::<V>(&mut out[j * d..(j + 1) * d], l);
        }
    }
    out
}

/// Folds `parts` (each task's segments and partials, in order) into the chunk's outputs.
#[inline(always)]
unsafe fn fold_parts<V: Lanes>(ctx: &Ctx, chunk: &Chunk, parts: &[(Range<usize>, &[f32])]) -> Vec<f32> {
    let d = ctx.d;
    let len = partial_len(d);
    let count = chunk.members.len();
    let mut out = vec![0f32; count * d];
    for (j, n) in chunk.members.clone().enumerate() {
        let position = ctx.member(chunk.g, n).position;
        let target = &mut out[j * d..(j + 1) * d];
        let mut running = (0f32, 0f32);
        for (segments, partials) in parts {
            for (k, s) in segments.clone().enumerate() {
                if position < s * SEGMENT_TOKENS {
                    continue;
                }
                let p = &partials[(k * count + j) * len..][..len];
                if s == 0 {
                    running = (p[0], p[1]);
                    target.copy_from_slice(&p[2..]);
                } else {
                    fold::<V>(&mut running, target, (p[0], p[1]), &p[2..]);
                }
            }
        }
        divide::<V>(target, running.1);
    }
    out
}

/// Adds segment results `(m, l, o)` to the running `(M, L, O)`.
#[inline(always)]
unsafe fn fold<V: Lanes>(running: &mut (f32, f32), target: &mut [f32], (m, l): (f32, f32), o: &[f32]) {
    let (big_m, big_l) = *running;
    let new_m = simd::max(big_m, m);
    let (a, b) = (simd::exp2(big_m - new_m), simd::exp2(m - new_m));
    *running = (new_m, l.mul_add(b, big_l * a));
    let (va, vb) = (V::splat(a), V::splat(b));
    let mut c = 0;
    while c + V::W <= target.len() {
        let t = target.as_mut_ptr().add(c);
        V::load(o.as_ptr().add(c)).mul_add(vb, V::load(t).mul(va)).store(t);
        c += V::W;
    }
    for c in c..target.len() {
        target[c] = o[c].mul_add(b, target[c] * a);
    }
}

/// `target /= l`.
#[inline(always)]
unsafe fn divide<V: Lanes>(target: &mut [f32], l: f32) {
    let vl = V::splat(l);
    let mut c = 0;
    while c + V::W <= target.len() {
        let t = target.as_mut_ptr().add(c);
        V::load(t).div(vl).store(t);
        c += V::W;
    }
    for x in &mut target[c..] {
        *x /= l;
    }
}

/// The half of a block a pass reads.
#[derive(Clone, Copy)]
enum Half {
    Keys,
    Values,
}

/// The members that read one block, with the block's keys and values, grouped by block.
struct Readers<E> {
    list: Vec<Reader<E>>,
}

/// (member, keys, values, block identity).
type Reader<E> = (usize, *const E, *const E, usize);

impl<E: Load> Readers<E> {
    fn new(capacity: usize) -> Self {
        Self { list: Vec::with_capacity(capacity) }
    }

    /// The members of `group` reaching block `b`, reading each sequence's block once per run of
    /// members of that sequence; and, when `ahead` names the half the pass reads next, a
    /// prefetch of that half of block `b + 1` for the members that reach it.
    ///
    /// The prefetch is why this is not a plain lookup: a sequence's blocks are separate
    /// allocations holding every layer and head, so one head's 16 keys are a lone 4 KiB run
    /// (2 KiB in f16) that the hardware prefetcher, which stays within a page, cannot see coming;
    /// without it, each block's first loads wait on memory. A prefetch changes no result.
    fn fill(&mut self, ctx: &Ctx, g: usize, members: &[Member], group: &[usize], b: usize, ahead: Option<Half>) -> &Self {
        let start = b * BLOCK_TOKENS;
        self.list.clear();
        let mut last: Option<Reader<E>> = None;
        let mut prefetched = None;
        for &j in group {
            let m = &members[j];
            if m.position < start {
                continue;
            }
            let (keys, values, id) = match last {
                Some((seq, k, v, id)) if seq == m.seq => (k, v, id),
                _ => {
                    let cache = ctx.caches[m.seq];
                    let block = cache.head_block::<E>(b, ctx.layer, g).expect("caches hold the blocks their queries read, of one type");
                    let entry = (m.seq, block.keys.as_ptr(), block.values.as_ptr(), block.id);
                    last = Some(entry);
                    let next = ahead
                        .filter(|_| m.position >= start + BLOCK_TOKENS)
                        .and_then(|half| Some((half, cache.head_block::<E>(b + 1, ctx.layer, g)?)));
                    if let Some((half, next)) = next {
                        if prefetched != Some(next.id) {
                            prefetched = Some(next.id);
                            let run = match half {
                                Half::Keys => next.keys,
                                Half::Values => next.values,
                            };
                            super::prefetch(run.as_ptr(), 0, std::mem::size_of_val(run));
                        }
                    }
                    (entry.1, entry.2, entry.3)
                }
            };
            self.list.push((j, keys, values, id));
        }
        self
    }

    /// Runs of the members that read the same block.
    fn runs(&self) -> impl Iterator<Item = &[Reader<E>]> {
        self.list.chunk_by(|a, b| a.3 == b.3)
    }
}

/// The members that reach a segment, grouped by the cache block they read first.
///
/// Caches share blocks only through a common prefix, so members whose first blocks differ share
/// none of the segment's blocks, and members whose first blocks are equal share at least that
/// one. Each group's segment is computed on its own: a prefix several sequences share is loaded
/// once per tile of their queries, and the blocks only one sequence reads stream through the
/// cache one sequence at a time, as they would if it ran alone. Taken block by block across every
/// sequence of a decode step instead, the current and the prefetched blocks of eight sequences
/// overflow the first-level cache. Which group a member is in never changes what it computes.
struct Groups {
    /// Member indices, group after group, each group in member order.
    order: Vec<usize>,
    /// (first block's identity, end of the group in `order`), in order of first appearance.
    ends: Vec<(usize, usize)>,
}

impl Groups {
    fn new(capacity: usize) -> Self {
        Self { order: Vec::with_capacity(capacity), ends: Vec::with_capacity(capacity) }
    }

    /// The groups of the members reaching segment `s`.
    fn split<E: KvElem>(&mut self, ctx: &Ctx, g: usize, members: &[Member], s: usize) -> impl Iterator<Item = &[usize]> {
        let first = s * SEGMENT_BLOCKS;
        self.order.clear();
        self.ends.clear();
        let mut last: Option<(usize, usize)> = None; // (sequence, its first block's identity)
        for (j, m) in members.iter().enumerate() {
            if m.position < first * BLOCK_TOKENS {
                continue;
            }
            let id = match last {
                Some((seq, id)) if seq == m.seq => id,
                _ => {
                    let block = ctx.caches[m.seq].head_block::<E>(first, ctx.layer, g);
                    let id = block.expect("caches hold the blocks their queries read, of one type").id;
                    last = Some((m.seq, id));
                    id
                }
            };
            match self.ends.iter().position(|&(group, _)| group == id) {
                // Appended at the end of its group: later groups move up by one.
                Some(k) => {
                    let at = self.ends[k].1;
                    self.order.insert(at, j);
                    for end in &mut self.ends[k..] {
                        end.1 += 1;
                    }
                }
                None => {
                    self.order.push(j);
                    self.ends.push((id, self.order.len()));
                }
            }
        }
        let order = &self.order;
        let mut start = 0;
        self.ends.iter().map(move |&(_, end)| {
            let group = &order[start..end];
            start = end;
            group
        })
    }
}

/// Segment `s` for the members in `group`, which read the same first block of it (see
/// [`Groups`]): `stats[j] = (max, sum)` and `acc[j] = Σ w·v` over the segment's keys, using
/// `scores` for the weights.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn segment<V: Lanes, E: Load>(
    ctx: &Ctx,
    g: usize,
    members: &[Member],
    group: &[usize],
    s: usize,
    readers: &mut Readers<E>,
    wide: &mut [f32],
    scores: &mut [f32],
    acc: &mut [f32],
    stats: &mut [(f32, f32)],
) {
    let d = ctx.d;
    let first = s * SEGMENT_BLOCKS;
    let last_position = group.iter().map(|&j| members[j].position).max().unwrap_or(0);
    let blocks = first..(first + SEGMENT_BLOCKS).min(last_position / BLOCK_TOKENS + 1);
    // The valid keys of member `j` in block `b` of the segment.
    let valid = |j: usize, b: usize| (members[j].position + 1 - b * BLOCK_TOKENS).min(BLOCK_TOKENS);

    // Scores.
    let tile = tile::<V>();
    for b in blocks.clone() {
        let ahead = (b + 1 < blocks.end).then_some(Half::Keys);
        let readers = readers.fill(ctx, g, members, group, b, ahead);
        let offset = (b - first) * BLOCK_TOKENS;
        for run in readers.runs() {
            if E::WIDENS && run.len() > tile {
                widen::<V, E>(run[0].1, wide);
                for members_tile in run.chunks(tile) {
                    score_tile::<V, E, f32>(ctx, members, members_tile, wide.as_ptr(), scores.as_mut_ptr(), offset);
                }
            } else {
                for members_tile in run.chunks(tile) {
                    score_tile::<V, E, E>(ctx, members, members_tile, run[0].1, scores.as_mut_ptr(), offset);
                }
            }
        }
    }

    // Maximum, weights and their sum, per member.
    let regs = regs::<V>();
    for &j in group {
        let member = &members[j];
        let reached = first..(member.position / BLOCK_TOKENS + 1).min(blocks.end);
        let row = scores.as_mut_ptr().add(j * SEGMENT_TOKENS);
        let mut lanes = [V::splat(f32::NEG_INFINITY); BLOCK_TOKENS];
        for b in reached.clone() {
            let n = valid(j, b);
            for (r, lane) in lanes.iter_mut().enumerate().take(regs) {
                let v = V::load(row.add((b - first) * BLOCK_TOKENS + r * V::W));
                *lane = lane.max(mask::<V>(v, n, r, f32::NEG_INFINITY));
            }
        }
        let m = tree(&mut lanes, |a, b| a.max(b)).reduce_max();
        let mut sums = [V::splat(0.0); BLOCK_TOKENS];
        let vm = V::splat(m);
        for b in reached.clone() {
            let n = valid(j, b);
            for (r, sum) in sums.iter_mut().enumerate().take(regs) {
                let p = row.add((b - first) * BLOCK_TOKENS + r * V::W);
                let w = mask::<V>(V::load(p).sub(vm).exp2(), n, r, 0.0);
                w.store(p);
                *sum = sum.add(w);
            }
        }
        let l = tree(&mut sums, |a, b| a.add(b)).reduce_add();
        stats[j] = (m, l);
        acc[j * d..(j + 1) * d].fill(0.0);
    }

    // Weighted values.
    for b in blocks.clone() {
        let ahead = (b + 1 < blocks.end).then_some(Half::Values);
        let readers = readers.fill(ctx, g, members, group, b, ahead);
        let weights = scores[(b - first) * BLOCK_TOKENS..].as_ptr();
        let valid = |j: usize| valid(j, b);
        for run in readers.runs() {
            if E::WIDENS && run.len() > tile {
                widen::<V, E>(run[0].2, wide);
                for members_tile in run.chunks(tile) {
                    value_tile::<V, E, f32>(d, members_tile, wide.as_ptr(), weights, valid, acc.as_mut_ptr());
                }
            } else {
                for members_tile in run.chunks(tile) {
                    value_tile::<V, E, E>(d, members_tile, run[0].2, weights, valid, acc.as_mut_ptr());
                }
            }
        }
    }
}

/// Widens the `wide.len()` values at `src` to f32 in `wide`: once for a block that several tiles
/// read, rather than once per tile in their inner loops. The conversion is exact, so a tile
/// computes the same bits from either. A block half is `d` rows of 16 values, a whole number of
/// registers on every unit (as [`regs`] assumes).
#[inline(always)]
unsafe fn widen<V: Lanes, E: Load>(src: *const E, wide: &mut [f32]) {
    debug_assert_eq!(wide.len() % V::W, 0);
    for i in (0..wide.len()).step_by(V::W) {
        E::load::<V>(src.add(i)).store(wide.as_mut_ptr().add(i));
    }
}

/// Scores of the members of `tile` (at most four) against `keys`, into their rows of `scores`
/// from `offset` on.
#[inline(always)]
unsafe fn score_tile<V: Lanes, E: Load, K: Load>(
    ctx: &Ctx,
    members: &[Member],
    tile: &[Reader<E>],
    keys: *const K,
    scores: *mut f32,
    offset: usize,
) {
    let d = ctx.d;
    let q = |r: &Reader<E>| ctx.q.as_ptr().add(members[r.0].at);
    let out = |r: &Reader<E>| scores.add(offset + r.0 * SEGMENT_TOKENS);
    match tile {
        [r0] => scores_tile::<V, K, 1>([q(r0)], keys, d, [out(r0)]),
        [r0, r1] => scores_tile::<V, K, 2>([q(r0), q(r1)], keys, d, [out(r0), out(r1)]),
        [r0, r1, r2] => scores_tile::<V, K, 3>([q(r0), q(r1), q(r2)], keys, d, [out(r0), out(r1), out(r2)]),
        [r0, r1, r2, r3] => scores_tile::<V, K, 4>([q(r0), q(r1), q(r2), q(r3)], keys, d, [out(r0), out(r1), out(r2), out(r3)]),
        _ => unreachable!("tiles hold at most four members"),
    }
}

/// Adds the weighted `values` to the outputs in `acc` of the members of `tile` (at most four),
/// whose weights are their rows of the scores from `weights` on and whose valid keys `valid` gives.
#[inline(always)]
unsafe fn value_tile<V: Lanes, E: Load, K: Load>(
    d: usize,
    tile: &[Reader<E>],
    values: *const K,
    weights: *const f32,
    valid: impl Fn(usize) -> usize,
    acc: *mut f32,
) {
    let w = |r: &Reader<E>| weights.add(r.0 * SEGMENT_TOKENS);
    let o = |r: &Reader<E>| acc.add(r.0 * d);
    let n = |r: &Reader<E>| valid(r.0);
    match tile {
        [r0] => values_tile::<V, K, 1>([w(r0)], [n(r0)], values, d, [o(r0)]),
        [r0, r1] => values_tile::<V, K, 2>([w(r0), w(r1)], [n(r0), n(r1)], values, d, [o(r0), o(r1)]),
        [r0, r1, r2] => values_tile::<V, K, 3>([w(r0), w(r1), w(r2)], [n(r0), n(r1), n(r2)], values, d, [o(r0), o(r1), o(r2)]),
        [r0, r1, r2, r3] => {
            values_tile::<V, K, 4>([w(r0), w(r1), w(r2), w(r3)], [n(r0), n(r1), n(r2), n(r3)], values, d, [o(r0), o(r1), o(r2), o(r3)])
        }
        _ => unreachable!("tiles hold at most four members"),
    }
}

/// Lanes of register `r` (of a 16-value row) at or past `valid` replaced by `fill`.
#[inline(always)]
unsafe fn mask<V: Lanes>(v: V, valid: usize, r: usize, fill: f32) -> V {
    if valid == BLOCK_TOKENS {
        v
    } else {
        v.first(valid.saturating_sub(r * V::W).min(V::W), V::splat(fill))
    }
}

/// Combines the registers of a 16-value row pairwise (register `i` with `i + half`) down to one:
/// the first levels of the 16-lane tree, whose last levels the register's own reduction does.
#[inline(always)]
unsafe fn tree<V: Lanes>(lanes: &mut [V; BLOCK_TOKENS], op: impl Fn(V, V) -> V) -> V {
    let mut n = regs::<V>();
    while n > 1 {
        n /= 2;
        for i in 0..n {
            lanes[i] = op(lanes[i], lanes[i + n]);
        }
    }
    lanes[0]
}

/// Scores of `N` queries against one block's 16 keys (`[d][16]`), into `out[j][0..16]`.
#[inline(always)]
unsafe fn scores_tile<V: Lanes, E: Load, const N: usize>(q: [*const f32; N], keys: *const E, d: usize, out: [*mut f32; N]) {
    for r in 0..regs::<V>() {
        let keys = keys.add(r * V::W);
        let mut acc = [[V::splat(0.0); 4]; N];
        let mut c = 0;
        while c + 4 <= d {
            for i in 0..4 {
                let k = E::load::<V>(keys.add((c + i) * BLOCK_TOKENS));
                for j in 0..N {
                    acc[j][i] = V::splat(*q[j].add(c + i)).mul_add(k, acc[j][i]);
                }
            }
            c += 4;
        }
        while c < d {
            let k = E::load::<V>(keys.add(c * BLOCK_TOKENS));
            for j in 0..N {
                acc[j][c % 4] = V::splat(*q[j].add(c)).mul_add(k, acc[j][c % 4]);
            }
            c += 1;
        }
        for j in 0..N {
            let [a0, a1, a2, a3] = acc[j];
            a0.add(a1).add(a2.add(a3)).store(out[j].add(r * V::W));
        }
    }
}

/// `out[j] += Σ_t w[j][t] · values[t]` for `t < valid[j]`, one fused chain per component in
/// key order, for `N` queries against one block's values (`[16][d]`).
#[inline(always)]
unsafe fn values_tile<V: Lanes, E: Load, const N: usize>(
    w: [*const f32; N],
    valid: [usize; N],
    values: *const E,
    d: usize,
    out: [*mut f32; N],
) {
    let full = valid.iter().all(|&n| n == BLOCK_TOKENS);
    let tokens = valid.iter().copied().max().unwrap_or(0);
    let mut c = 0;
    // Four registers of components at a time, then one, then single components.
    while c + 4 * V::W <= d {
        let mut acc = [[V::splat(0.0); 4]; N];
        for j in 0..N {
            for i in 0..4 {
                acc[j][i] = V::load(out[j].add(c + i * V::W));
            }
        }
        for t in 0..tokens {
            let row = values.add(t * d + c);
            let v = [0, 1, 2, 3].map(|i| E::load::<V>(row.add(i * V::W)));
            for j in 0..N {
                if full || t < valid[j] {
                    let wj = V::splat(*w[j].add(t));
                    for i in 0..4 {
                        acc[j][i] = wj.mul_add(v[i], acc[j][i]);
                    }
                }
            }
        }
        for j in 0..N {
            for i in 0..4 {
                acc[j][i].store(out[j].add(c + i * V::W));
            }
        }
        c += 4 * V::W;
    }
    while c + V::W <= d {
        for j in 0..N {
            let mut acc = V::load(out[j].add(c));
            for t in 0..valid[j] {
                acc = V::splat(*w[j].add(t)).mul_add(E::load::<V>(values.add(t * d + c)), acc);
            }
            acc.store(out[j].add(c));
        }
        c += V::W;
    }
    for c in c..d {
        for j in 0..N {
            let mut acc = *out[j].add(c);
            for t in 0..valid[j] {
                acc = (*w[j].add(t)).mul_add((*values.add(t * d + c)).to_f32(), acc);
            }
            *out[j].add(c) = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kv::KvShape;

    fn value(i: usize, seed: usize) -> f32 {
        ((i * 7919 + seed * 104_729) % 1999) as f32 / 999.5 - 1.0
    }

    /// Plain softmax attention for one query over keys `0..=position`, in f64.
    fn naive(query: &[f32], keys: &[Vec<f32>], values: &[Vec<f32>], position: usize) -> Vec<f32> {
        let scale = 1.0 / (query.len() as f64).sqrt();
        let scores: Vec<f64> =
            (0..=position).map(|j| query.iter().zip(&keys[j]).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() * scale).collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        (0..query.len()).map(|c| ((0..=position).map(|j| weights[j] * values[j][c] as f64).sum::<f64>() / total) as f32).collect()
    }

    /// Runs `f` with `isa` where this CPU has it; prints a notice where it has not.
    fn each_isa(mut f: impl FnMut(Isa)) {
        for isa in Isa::ALL {
            if isa.available() {
                f(isa);
            } else {
                eprintln!("skipped: this CPU has no {} unit", isa.name());
            }
        }
    }

    struct Case {
        kv: Vec<SeqKv>,
        q: Vec<f32>,
        rows: Vec<(usize, usize)>,
        heads: usize,
        kv_heads: usize,
        d: usize,
    }

    impl Case {
        fn queries(&self) -> Queries<'_> {
            Queries { q: &self.q, rows: &self.rows, heads: self.heads, kv_heads: self.kv_heads, head_dim: self.d }
        }

        fn row(&self, p: usize, seed: usize) -> Vec<f32> {
            (0..self.kv_heads * self.d).map(|i| 3.0 * value(p * 64 + i, seed)).collect()
        }

        /// Sequences of `lens` tokens, the second sharing the first's blocks up to `shared`,
        /// queried at `positions` (sequence, position).
        fn new(dtype: KvDtype, heads: usize, kv_heads: usize, d: usize, lens: &[usize], rows: Vec<(usize, usize)>) -> Case {
            let shape = KvShape { layers: 2, kv_heads, head_dim: d };
            let mut case = Case { kv: Vec::new(), q: Vec::new(), rows, heads, kv_heads, d };
            for (i, &len) in lens.iter().enumerate() {
                let mut kv = SeqKv::new(shape, dtype);
                for p in 0..len {
                    for layer in 0..2 {
                        kv.write(layer, p, &case.row(p, 1 + layer + 7 * (i % 2)), &case.row(p, 2 + layer)).unwrap();
                    }
                }
                kv.commit(len);
                case.kv.push(kv);
            }
            case.q = (0..case.rows.len() * heads * d).map(|i| value(i, 3)).collect();
            case
        }

        /// Adds the cache `kv`, written on with keys and values of seeds `(key, value)` up to
        /// `len` tokens, and one query at its last position.
        fn add(&mut self, mut kv: SeqKv, len: usize, (key, values): (usize, usize)) {
            let from = kv.len();
            for p in from..len {
                for layer in 0..2 {
                    kv.write(layer, p, &self.row(p, key), &self.row(p, values)).unwrap();
                }
            }
            kv.commit(len - from);
            self.rows.push((self.kv.len(), len - 1));
            self.kv.push(kv);
            self.q.extend((0..self.heads * self.d).map(|i| value(i, 5)));
        }

        fn attend(&self, isa: Isa, layer: usize) -> Vec<f32> {
            let caches: Vec<&SeqKv> = self.kv.iter().collect();
            attend_with(isa, &self.queries(), &caches, layer)
        }
    }

    #[test]
    fn matches_plain_softmax_attention_with_grouped_heads() {
        // Three segments and a partial block; head_dim 40 exercises every tail of the kernels.
        for d in [16, 40, 64] {
            let len = 2 * SEGMENT_TOKENS + 37;
            let positions = [0, BLOCK_TOKENS - 1, BLOCK_TOKENS, SEGMENT_TOKENS - 1, SEGMENT_TOKENS, len - 1];
            let rows: Vec<(usize, usize)> = positions.iter().map(|&p| (0, p)).collect();
            let case = Case::new(KvDtype::F32, 4, 2, d, &[len], rows);
            each_isa(|isa| {
                let out = case.attend(isa, 1);
                for (t, &p) in positions.iter().enumerate() {
                    for h in 0..case.heads {
                        let g = h / (case.heads / case.kv_heads);
                        let slice = |r: Vec<f32>| r[g * d..(g + 1) * d].to_vec();
                        let keys: Vec<Vec<f32>> = (0..len).map(|j| slice(case.row(j, 2))).collect();
                        let values: Vec<Vec<f32>> = (0..len).map(|j| slice(case.row(j, 3))).collect();
                        let at = (t * case.heads + h) * d;
                        let expected = naive(&case.q[at..at + d], &keys, &values, p);
                        for (a, b) in out[at..at + d].iter().zip(&expected) {
                            assert!((a - b).abs() < 2e-5, "{} d={d} position {p} head {h}: {a} vs {b}", isa.name());
                        }
                    }
                }
            });
        }
    }

    #[test]
    fn every_unit_thread_count_and_batch_gives_the_same_bits() {
        for dtype in [KvDtype::F32, KvDtype::F16] {
            for d in [16, 40, 64] {
                // Two sequences sharing their first 300 tokens' blocks, then their own; queries
                // from a prompt chunk of the first and the last token of the second.
                let len = SEGMENT_TOKENS + 100;
                let mut case = Case::new(dtype, 6, 2, d, &[len + 80], (len..len + 80).map(|p| (0, p)).collect());
                let mut other = case.kv[0].clone();
                other.truncate(300);
                let shape = KvShape { layers: 2, kv_heads: 2, head_dim: d };
                assert!(other.fits(shape, dtype));
                case.add(other, len + 20, (9, 4));
                // A third sequence sharing nothing, then a fourth sharing the first's first 200
                // tokens: the fourth's query is grouped with the first two sequences' across the
                // third's.
                case.add(SeqKv::new(shape, dtype), SEGMENT_TOKENS + 40, (11, 12));
                let mut fourth = case.kv[0].clone();
                fourth.truncate(200);
                case.add(fourth, SEGMENT_TOKENS + 60, (13, 14));

                let reference = case.attend(Isa::Scalar, 1);
                each_isa(|isa| {
                    for threads in [1, 2, 3] {
                        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                        let out = pool.install(|| case.attend(isa, 1));
                        assert!(out == reference, "{} {dtype:?} d={d}, {threads} threads", isa.name());
                    }
                    // Each query alone gives the bits it gives among the others.
                    for t in [0, 41, 80, 81, 82] {
                        let alone = Queries { q: &case.q[t * 6 * d..(t + 1) * 6 * d], rows: &case.rows[t..t + 1], ..case.queries() };
                        let caches: Vec<&SeqKv> = case.kv.iter().collect();
                        let out = attend_with(isa, &alone, &caches, 1);
                        assert!(out == reference[t * 6 * d..(t + 1) * 6 * d], "{} {dtype:?} d={d} query {t}", isa.name());
                    }
                });
            }
        }
    }
}
