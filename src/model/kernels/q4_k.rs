//! Q4_K weights × Q8_K activations: candle's generic dot product, eight output columns per vector.
//!
//! Q4_K, the bulk of every Q4_K_M model, stores 256-weight superblocks: eight 32-weight
//! sub-blocks of 4-bit weights, each with a 6-bit scale and a 6-bit minimum, under an f16 `d`
//! and `dmin`. The reference product (candle's `vec_dot_unopt`, ggml's reference) keeps eight
//! integer accumulators per superblock, one per position residue `l = p mod 8`:
//! `aux[l] = Σ scale·w_p·a_p`; then `sums[l] += (d·d_a)·aux[l]` in f32, while a ninth sum takes
//! `(dmin·d_a)·Σ_s min_s·(sum of the activations of sub-block s)`; the result is the ninth sum
//! plus the eight others added in order. candle's AVX2 `vec_dot` adds in another order and
//! differs in the last bits, and it runs one column at a time.
//!
//! The weights are repacked at load in groups of eight output columns. Per superblock, 32-byte
//! registers `R_{v,l}` hold in 32-bit lane `c` column `c`'s four weights at the positions of
//! the activations' word `(v, l)` ([`Superblocks`]): all for accumulator `l`, two in each of the
//! 32-weight sub-blocks `2t` and `2t + 1` (`t = v / 2`); `R_{v,l}` and `R_{v,l+4}` share bytes
//! as low and high nibbles. The scales and minimums are unpacked to bytes. Against a broadcast
//! activation word, `maddubs` gives each lane an exact i16 pair sum per sub-block; the results
//! for words `(2t, l)` and `(2t + 1, l)` add as i16 (at most 4·15·128 = 7,680), and `madd` with
//! the lane's scales `(scale_{2t}, scale_{2t+1})` adds the two sub-blocks scaled: lane `c` of
//! accumulator `l` gets exactly the reference's integer terms. The f32 part runs lane-wise with
//! the reference's operations in its order, so every output keeps its bits, whichever path the
//! CPU takes and however many rows share the call. Unpacked weights are reused across the
//! activation rows of a tile.

use half::f16;
use rayon::prelude::*;

use super::activations::{permuted, Superblocks, SUPERBLOCK};
use super::matmul::{matmul_superblocks, SuperblockKernel};

/// Output columns packed side by side: one AVX2 lane each.
pub(super) const GROUP: usize = 8;
/// Bytes of one GGUF Q4_K block: f16 `d`, f16 `dmin`, 12 bytes of 6-bit scales and minimums,
/// 128 bytes of nibbles.
const Q4K_BYTES: usize = 144;
/// Bytes of nibbles per group-superblock: 32 registers.
pub(super) const NIBBLE_BYTES: usize = GROUP * SUPERBLOCK / 2;
/// Bytes of unpacked scales and minimums per group-superblock: two registers each.
const SCALE_BYTES: usize = 4 * 32;

/// A `[rows, cols]` Q4_K matrix, repacked in groups of [`GROUP`] rows (output columns).
pub(crate) struct Q4K {
    rows: usize,
    /// Superblocks per row.
    superblocks: usize,
    /// `[group][superblock][32 registers × 32 bytes]`: see [`nibble_at`]; padding columns are
    /// zero.
    nibbles: Vec<u8>,
    /// `[group][superblock][2 registers of scales, 2 of minimums]`: register `h`'s lane `c`
    /// holds column `c`'s values for sub-blocks `4h..4h+4`, one byte each.
    scales: Vec<u8>,
    /// `[group][superblock][8 d, then 8 dmin]`, f16 bits as the file stores them.
    d: Vec<u16>,
}

impl Q4K {
    /// Repacks GGUF bytes of a `[rows, cols]` Q4_K tensor; the caller has checked the length.
    pub(crate) fn new(bytes: &[u8], rows: usize, cols: usize) -> Self {
        let superblocks = cols / SUPERBLOCK;
        debug_assert_eq!(bytes.len(), rows * superblocks * Q4K_BYTES);
        let groups = rows.div_ceil(GROUP);
        let mut nibbles = vec![0u8; groups * superblocks * NIBBLE_BYTES];
        let mut scales = vec![0u8; groups * superblocks * SCALE_BYTES];
        let mut d = vec![0u16; groups * superblocks * 2 * GROUP];
        nibbles
            .par_chunks_mut((superblocks * NIBBLE_BYTES).max(1))
            .zip(scales.par_chunks_mut((superblocks * SCALE_BYTES).max(1)))
            .zip(d.par_chunks_mut((superblocks * 2 * GROUP).max(1)))
            .enumerate()
            .for_each(|(g, ((nibbles, scales), d))| {
                for c in 0..GROUP.min(rows - g * GROUP) {
                    let row = &bytes[(g * GROUP + c) * superblocks * Q4K_BYTES..][..superblocks * Q4K_BYTES];
                    for (b, block) in row.chunks_exact(Q4K_BYTES).enumerate() {
                        // GGUF order: 32-byte run `s / 2` holds sub-block `s` in its low nibbles
                        // when `s` is even, in its high nibbles when odd.
                        let q: [u8; SUPERBLOCK] = std::array::from_fn(|p| {
                            let (s, t) = (p / 32, p % 32);
                            (block[16 + 32 * (s / 2) + t] >> (4 * (s % 2))) & 0x0F
                        });
                        pack_nibbles(&q, c, &mut nibbles[b * NIBBLE_BYTES..][..NIBBLE_BYTES]);
                        let scales = &mut scales[b * SCALE_BYTES..][..SCALE_BYTES];
                        for s in 0..8 {
                            let (scale, min) = scale_min(s, &block[4..16]);
                            scales[(s / 4) * 32 + c * 4 + s % 4] = scale;
                            scales[64 + (s / 4) * 32 + c * 4 + s % 4] = min;
                        }
                        d[b * 2 * GROUP + c] = u16::from_le_bytes([block[0], block[1]]);
                        d[b * 2 * GROUP + GROUP + c] = u16::from_le_bytes([block[2], block[3]]);
                    }
                }
            });
        Self { rows, superblocks, nibbles, scales, d }
    }

    /// Row `row` dequantized as candle does it (`(d·scale)·q − dmin·min`); `out` holds `cols`
    /// values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let (g, c) = (row / GROUP, row % GROUP);
        for (b, out) in out.chunks_exact_mut(SUPERBLOCK).enumerate() {
            let at = g * self.superblocks + b;
            let (d, dmin) = self.d(at, c);
            for (s, out) in out.chunks_exact_mut(32).enumerate() {
                let (scale, min) = self.scale_min(at, c, s);
                let (d, m) = (d * f32::from(scale), dmin * f32::from(min));
                for (t, out) in out.iter_mut().enumerate() {
                    *out = d * f32::from(self.weight(at, c, 32 * s + t)) - m;
                }
            }
        }
    }

    /// Weight `p` (0..256) of column `c` in the group-superblock `at`.
    fn weight(&self, at: usize, c: usize, p: usize) -> u8 {
        let (offset, shift) = nibble_at(c, p);
        (self.nibbles[at * NIBBLE_BYTES + offset] >> shift) & 0x0F
    }

    /// Column `c`'s scale and minimum for sub-block `s` in the group-superblock `at`.
    fn scale_min(&self, at: usize, c: usize, s: usize) -> (u8, u8) {
        let scales = &self.scales[at * SCALE_BYTES..];
        let offset = (s / 4) * 32 + c * 4 + s % 4;
        (scales[offset], scales[64 + offset])
    }

    /// Column `c`'s `d` and `dmin` in the group-superblock `at`.
    fn d(&self, at: usize, c: usize) -> (f32, f32) {
        let d = &self.d[at * 2 * GROUP..];
        (f16::from_bits(d[c]).to_f32(), f16::from_bits(d[GROUP + c]).to_f32())
    }

    /// `x @ W^T` for `m` rows of activations; returns `[m, rows]`.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        matmul_superblocks(&[self], x, m).remove(0)
    }

    /// One tile, one output at a time, in the reference's order.
    fn tile_scalar(&self, x: &Superblocks, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        let width = cols.1 - cols.0;
        for (i, out) in (rows.0..rows.1).zip(out.chunks_mut(width)) {
            for (j, out) in (cols.0..cols.1).zip(out.iter_mut()) {
                let (g, c) = (j / GROUP, j % GROUP);
                let mut sums = [0f32; 8];
                let mut sumf = 0f32;
                for b in 0..self.superblocks {
                    let (at, xb) = (g * self.superblocks + b, i * self.superblocks + b);
                    let mut aux = [0i32; 8];
                    let mut sumi = 0i32;
                    for s in 0..8 {
                        let (scale, min) = self.scale_min(at, c, s);
                        for p in 32 * s..32 * s + 32 {
                            let product = i32::from(self.weight(at, c, p)) * i32::from(x.quant(xb, p));
                            aux[p % 8] += i32::from(scale) * product;
                        }
                        sumi += i32::from(min) * i32::from(x.sub_sum(xb, s));
                    }
                    let (d, dmin) = self.d(at, c);
                    let d = d * x.d[xb];
                    for (sum, &aux) in sums.iter_mut().zip(&aux) {
                        *sum += d * aux as f32;
                    }
                    sumf -= dmin * x.d[xb] * sumi as f32;
                }
                *out = sumf + sums.iter().sum::<f32>();
            }
        }
    }

    /// One tile, eight columns per vector; the same arithmetic as [`Self::tile_scalar`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn tile_avx2(&self, x: &Superblocks, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        use std::arch::x86_64::*;

        let width = cols.1 - cols.0;
        let n = rows.1 - rows.0;
        assert!(cols.0.is_multiple_of(GROUP) && cols.1 <= self.rows && rows.1 * self.superblocks <= x.d.len());
        assert_eq!(out.len(), n * width);
        let low = _mm256_set1_epi8(0x0F);
        let even_bytes = _mm256_set1_epi16(0x00FF);
        // `_mm256_shuffle_epi8` controls that widen bytes `2k` and `2k + 1` of every lane to its
        // two i16 halves.
        let spread: [__m256i; 2] = std::array::from_fn(|k| {
            let control: [i8; 32] = std::array::from_fn(|i| if i % 2 == 1 { -128 } else { ((i / 4) % 4 * 4 + 2 * k + i % 4 / 2) as i8 });
            // SAFETY: a 32-byte load from a 32-byte array.
            unsafe { _mm256_loadu_si256(control.as_ptr().cast()) }
        });
        // Per activation row: the eight sums, then the minimums' sum.
        let mut acc = vec![[_mm256_setzero_ps(); 9]; n];
        for g in cols.0 / GROUP..cols.1.div_ceil(GROUP) {
            acc.fill([_mm256_setzero_ps(); 9]);
            for b in 0..self.superblocks {
                let at = g * self.superblocks + b;
                // SAFETY (all loads): `at < groups·superblocks`, so the group-superblock's
                // nibbles, scales and `d`s are in bounds; activation superblocks `(i, b)` exist
                // for `i < rows.1` (asserted above). Unaligned loads need no alignment.
                let wp = self.nibbles.as_ptr().add(at * NIBBLE_BYTES);
                let mut w = [_mm256_setzero_si256(); 64];
                for v in 0..8 {
                    for l in 0..4 {
                        let packed = _mm256_loadu_si256(wp.add((v * 4 + l) * 32).cast());
                        w[v * 8 + l] = _mm256_and_si256(packed, low);
                        w[v * 8 + l + 4] = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low);
                    }
                }
                let sp = self.scales.as_ptr().add(at * SCALE_BYTES);
                let packed_scales = [_mm256_loadu_si256(sp.cast()), _mm256_loadu_si256(sp.add(32).cast())];
                // The scales of sub-blocks `2t` and `2t + 1`, as i16 in each lane.
                let scales: [__m256i; 4] = std::array::from_fn(|t| _mm256_shuffle_epi8(packed_scales[t / 2], spread[t % 2]));
                let (mins0, mins1) = (_mm256_loadu_si256(sp.add(64).cast()), _mm256_loadu_si256(sp.add(96).cast()));
                // i16 pairs of minimums in the order of `Superblocks::sub_sums`.
                let mins = [
                    _mm256_and_si256(mins0, even_bytes),
                    _mm256_srli_epi16::<8>(mins0),
                    _mm256_and_si256(mins1, even_bytes),
                    _mm256_srli_epi16::<8>(mins1),
                ];
                let dp = self.d.as_ptr().add(at * 2 * GROUP);
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(dp.cast()));
                let dminw = _mm256_cvtph_ps(_mm_loadu_si128(dp.add(GROUP).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xb = (rows.0 + r) * self.superblocks + b;
                    let xq = x.quants.as_ptr().add(xb * SUPERBLOCK).cast::<i32>();
                    let mut aux = [_mm256_setzero_si256(); 8];
                    for (t, scales) in scales.iter().enumerate() {
                        for (l, aux) in aux.iter_mut().enumerate() {
                            let (first, second) = (2 * t * 8 + l, (2 * t + 1) * 8 + l);
                            let a = _mm256_set1_epi32(xq.add(first).read_unaligned());
                            let b = _mm256_set1_epi32(xq.add(second).read_unaligned());
                            let pairs = _mm256_add_epi16(_mm256_maddubs_epi16(w[first], a), _mm256_maddubs_epi16(w[second], b));
                            *aux = _mm256_add_epi32(*aux, _mm256_madd_epi16(pairs, *scales));
                        }
                    }
                    let sums = x.sub_sums.as_ptr().add(xb).cast::<i32>();
                    let mut sumi = _mm256_setzero_si256();
                    for (k, mins) in mins.iter().enumerate() {
                        let a = _mm256_set1_epi32(sums.add(k).read_unaligned());
                        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(*mins, a));
                    }
                    let xd = _mm256_set1_ps(*x.d.get_unchecked(xb));
                    let d = _mm256_mul_ps(dw, xd);
                    for (acc, aux) in acc.iter_mut().zip(aux) {
                        *acc = _mm256_add_ps(*acc, _mm256_mul_ps(d, _mm256_cvtepi32_ps(aux)));
                    }
                    let dmin = _mm256_mul_ps(dminw, xd);
                    acc[8] = _mm256_sub_ps(acc[8], _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(sumi)));
                }
            }
            let first = g * GROUP;
            let take = GROUP.min(cols.1 - first);
            let mut lanes = [0f32; GROUP];
            for (r, acc) in acc.iter().enumerate() {
                // `Iterator::sum` starts from -0.0, which adds as an identity: `s0 + s1 + … + s7`.
                let total = acc[1..8].iter().fold(acc[0], |total, &sum| _mm256_add_ps(total, sum));
                _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc[8], total));
                out[r * width + first - cols.0..][..take].copy_from_slice(&lanes[..take]);
            }
        }
    }
}

impl SuperblockKernel for Q4K {
    fn rows(&self) -> usize {
        self.rows
    }

    fn superblocks(&self) -> usize {
        self.superblocks
    }

    fn tile(&self, x: &Superblocks, rows: (usize, usize), cols: (usize, usize), out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
            // SAFETY: AVX2 and F16C are present (checked above); `tile_avx2` checks its ranges.
            return unsafe { self.tile_avx2(x, rows, cols, out) };
        }
        self.tile_scalar(x, rows, cols, out)
    }
}

/// Sub-block `s`'s 6-bit scale and minimum from a Q4_K block's 12 packed bytes: bytes 0..4 hold
/// the scales of sub-blocks 0..4 and 4..8 their minimums, in their low six bits; the upper
/// sub-blocks keep their low four bits in the nibbles of bytes 8..12 and their top two bits in
/// the spare top bits of bytes 0..8.
fn scale_min(s: usize, packed: &[u8]) -> (u8, u8) {
    if s < 4 {
        (packed[s] & 63, packed[s + 4] & 63)
    } else {
        ((packed[s + 4] & 0x0F) | ((packed[s - 4] >> 6) << 4), (packed[s + 4] >> 4) | ((packed[s] >> 6) << 4))
    }
}

/// Where weight `p` (0..256) of column `c` lives in a group-superblock's packed nibbles: where
/// the activations keep position `p` (byte `k` of word `(v, l)`), register `R_{v,l}` holds it in
/// lane `c`'s byte `k`; `R_{v,l}` and `R_{v,l+4}` share 32 bytes as low and high nibbles.
/// Returns (byte offset, shift). Q6_K keeps the low four of its six bits the same way.
pub(super) fn nibble_at(c: usize, p: usize) -> (usize, u32) {
    let (word, k) = (permuted(p) / 4, permuted(p) % 4);
    let (v, l) = (word / 8, word % 8);
    ((v * 4 + l % 4) * 32 + c * 4 + k, 4 * (l / 4) as u32)
}

/// Packs column `c`'s 4-bit values `q` (superblock order) into a group-superblock's nibbles.
pub(super) fn pack_nibbles(q: &[u8; SUPERBLOCK], c: usize, nibbles: &mut [u8]) {
    // Positions `p` and `p + 4` (residues `l < 4` and `l + 4`) share a byte.
    for p in (0..SUPERBLOCK).filter(|p| p % 8 < 4) {
        let (at, _) = nibble_at(c, p);
        nibbles[at] = (q[p] & 0x0F) | (q[p + 4] & 0x0F) << 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::matmul::typed;
    use crate::model::kernels::{check_tiles, test_quantized, test_reference, test_values};
    use candle_core::quantized::k_quants::{self as kq, GgmlType};
    use candle_core::quantized::GgmlDType;

    #[test]
    fn scalar_and_simd_tiles_give_candles_bits() {
        // 21 columns: two full groups and a padded one; three superblocks per row.
        let (rows, cols, m) = (21, 768, 3);
        let bytes = test_quantized(GgmlDType::Q4K, rows, cols);
        let w = Q4K::new(&bytes, rows, cols);
        let x = test_values(m * cols, 2);
        let expected = test_reference::<kq::BlockQ4K>(&bytes, &x, m, cols);
        let xa = Superblocks::quantize(&x, m, w.superblocks);

        check_tiles("scalar", &expected, m, rows, |r, c, out| w.tile_scalar(&xa, r, c, out));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
            // SAFETY: the features were checked just above.
            check_tiles("AVX2", &expected, m, rows, |r, c, out| unsafe { w.tile_avx2(&xa, r, c, out) });
        } else {
            eprintln!("skipped: this CPU has no AVX2");
        }
    }

    #[test]
    fn many_matrices_equal_one_at_a_time_and_rows_dequantize_like_candle() {
        let (cols, m) = (512, 5);
        let x = test_values(m * cols, 3);
        let (a, b) = (test_quantized(GgmlDType::Q4K, 24, cols), test_quantized(GgmlDType::Q4K, 9, cols));
        let (a, b) = (Q4K::new(&a, 24, cols), Q4K::new(&b, 9, cols));
        assert_eq!(matmul_superblocks(&[&a, &b], &x, m), vec![a.matmul(&x, m), b.matmul(&x, m)]);

        let bytes = test_quantized(GgmlDType::Q4K, 9, cols);
        let blocks: Vec<kq::BlockQ4K> = typed(&bytes);
        let per_row = cols / SUPERBLOCK;
        for row in [0, 4, 8] {
            let mut theirs = vec![0f32; cols];
            kq::BlockQ4K::to_float(&blocks[row * per_row..(row + 1) * per_row], &mut theirs);
            let mut ours = vec![0f32; cols];
            b.row_into(row, &mut ours);
            assert_eq!(ours, theirs, "row {row}");
        }
    }
}
