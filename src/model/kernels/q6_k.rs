//! Q6_K weights × Q8_K activations: candle's generic dot product, eight output columns per vector.
//!
//! Q4_K_M models store their output head (often tied to the token embedding, the widest matrix
//! of the model) and some value and down projections as Q6_K: 256-weight superblocks of 6-bit
//! weights `q − 32`, a signed 8-bit scale per 16 weights and an f16 `d`. The reference product
//! (candle's `vec_dot_unopt`) keeps eight accumulators per superblock, one per position residue
//! `l = p mod 8`, `aux[l] = Σ scale·(q_p − 32)·a_p`, then `sums[l] += aux[l]·(d·d_a)`, and
//! returns the eight sums added in order. Its accumulators are f32, but every term is an integer
//! of at most 128·128·32 = 2¹⁹ in magnitude and each accumulator adds 32 of them, so every
//! partial sum is an integer of at most 2²⁴: exact in f32, hence equal to an i32 sum converted
//! once.
//!
//! The layout follows [`super::q4_k`]'s: per superblock, register `R_{v,l}`'s lane `c` holds
//! column `c`'s weights at the positions of the activations' word `(v, l)` ([`Superblocks`]),
//! the first two in 16-weight sub-block `u = 4(v / 2) + v % 2`, the last two in `u + 2`; the low
//! four bits are packed as Q4_K's nibbles, the top two bits of four registers share a byte.
//! `maddubs` multiplies the unsigned `q` with a broadcast activation word; subtracting the
//! word's `32·(a₀ + a₁)`, `32·(a₂ + a₃)` (precomputed with the activations) gives the exact pair
//! sums of `(q − 32)·a`, and `madd` with the lane's scale pair `(scale_u, scale_{u+2})` adds
//! them scaled. The f32 part runs lane-wise in the reference's order, so both paths give the
//! reference bits.

use half::f16;
use rayon::prelude::*;

use super::activations::{permuted, Superblocks, SUPERBLOCK};
use super::matmul::{matmul_superblocks, SuperblockKernel};
use super::q4_k::{nibble_at, pack_nibbles, GROUP, NIBBLE_BYTES};

/// Bytes of one GGUF Q6_K block: 128 bytes of low nibbles, 64 of high bit pairs, 16 scales,
/// f16 `d`.
const Q6K_BYTES: usize = 210;
/// Bytes of top bit pairs per group-superblock: 16 registers.
const HIGH_BYTES: usize = GROUP * SUPERBLOCK / 4;
/// Bytes of scales per group-superblock: four registers.
const SCALE_BYTES: usize = GROUP * 16;

/// A `[rows, cols]` Q6_K matrix, repacked in groups of [`GROUP`] rows (output columns).
pub(crate) struct Q6K {
    rows: usize,
    /// Superblocks per row.
    superblocks: usize,
    /// `[group][superblock][32 registers × 32 bytes]`: the low four bits of `q`, laid out by
    /// [`nibble_at`]; padding columns are zero.
    nibbles: Vec<u8>,
    /// `[group][superblock][16 registers × 32 bytes]`: the top two bits of `q`; see [`high_at`].
    high: Vec<u8>,
    /// `[group][superblock][4 registers × 32 bytes]`: register `h`'s lane `c` holds column `c`'s
    /// scales of 16-weight sub-blocks `4h..4h+4`.
    scales: Vec<i8>,
    /// `[group][superblock][8 columns]`, f16 bits.
    d: Vec<u16>,
}

impl Q6K {
    /// Repacks GGUF bytes of a `[rows, cols]` Q6_K tensor; the caller has checked the length.
    pub(crate) fn new(bytes: &[u8], rows: usize, cols: usize) -> Self {
        let superblocks = cols / SUPERBLOCK;
        debug_assert_eq!(bytes.len(), rows * superblocks * Q6K_BYTES);
        let groups = rows.div_ceil(GROUP);
        let mut nibbles = vec![0u8; groups * superblocks * NIBBLE_BYTES];
        let mut high = vec![0u8; groups * superblocks * HIGH_BYTES];
        let mut scales = vec![0i8; groups * superblocks * SCALE_BYTES];
        let mut d = vec![0u16; groups * superblocks * GROUP];
        nibbles
            .par_chunks_mut((superblocks * NIBBLE_BYTES).max(1))
            .zip(high.par_chunks_mut((superblocks * HIGH_BYTES).max(1)))
            .zip(scales.par_chunks_mut((superblocks * SCALE_BYTES).max(1)))
            .zip(d.par_chunks_mut((superblocks * GROUP).max(1)))
            .enumerate()
            .for_each(|(g, (((nibbles, high), scales), d))| {
                for c in 0..GROUP.min(rows - g * GROUP) {
                    let row = &bytes[(g * GROUP + c) * superblocks * Q6K_BYTES..][..superblocks * Q6K_BYTES];
                    for (b, block) in row.chunks_exact(Q6K_BYTES).enumerate() {
                        // GGUF order, per 128-weight half `h`: quarter `k` of 32 weights takes the
                        // low (k < 2) or high nibbles of `ql[64h + 32(k % 2)..][..32]` and bits
                        // `2k, 2k + 1` of `qh[32h..][..32]`.
                        let q: [u8; SUPERBLOCK] = std::array::from_fn(|p| {
                            let (h, k, t) = (p / 128, p % 128 / 32, p % 32);
                            let low = (block[64 * h + 32 * (k % 2) + t] >> (4 * (k / 2))) & 0x0F;
                            let top = (block[128 + 32 * h + t] >> (2 * k)) & 3;
                            low | top << 4
                        });
                        pack_nibbles(&q, c, &mut nibbles[b * NIBBLE_BYTES..][..NIBBLE_BYTES]);
                        // Positions `p .. p + 4` (residues `4h .. 4h + 4`) share a byte of top bits.
                        for p in (0..SUPERBLOCK).step_by(4) {
                            let (at, _) = high_at(c, p);
                            high[b * HIGH_BYTES + at] = (0..4).map(|i| (q[p + i] >> 4) << (2 * i)).sum();
                        }
                        for (u, &scale) in block[192..208].iter().enumerate() {
                            scales[b * SCALE_BYTES + (u / 4) * 32 + c * 4 + u % 4] = scale as i8;
                        }
                        d[b * GROUP + c] = u16::from_le_bytes([block[208], block[209]]);
                    }
                }
            });
        Self { rows, superblocks, nibbles, high, scales, d }
    }

    /// Row `row` dequantized as candle does it (`(d·scale)·(q − 32)`); `out` holds `cols` values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let (g, c) = (row / GROUP, row % GROUP);
        for (b, out) in out.chunks_exact_mut(SUPERBLOCK).enumerate() {
            let at = g * self.superblocks + b;
            let d = self.d(at, c);
            for (p, out) in out.iter_mut().enumerate() {
                *out = d * f32::from(self.scale(at, c, p / 16)) * f32::from(self.weight(at, c, p));
            }
        }
    }

    /// Weight `p` (0..256) of column `c` in the group-superblock `at`, `q − 32`.
    fn weight(&self, at: usize, c: usize, p: usize) -> i8 {
        let (offset, shift) = nibble_at(c, p);
        let low = (self.nibbles[at * NIBBLE_BYTES + offset] >> shift) & 0x0F;
        let (offset, shift) = high_at(c, p);
        let top = (self.high[at * HIGH_BYTES + offset] >> shift) & 3;
        (low | top << 4) as i8 - 32
    }

    /// Column `c`'s scale of 16-weight sub-block `u` in the group-superblock `at`.
    fn scale(&self, at: usize, c: usize, u: usize) -> i8 {
        self.scales[at * SCALE_BYTES + (u / 4) * 32 + c * 4 + u % 4]
    }

    /// Column `c`'s `d` in the group-superblock `at`.
    fn d(&self, at: usize, c: usize) -> f32 {
        f16::from_bits(self.d[at * GROUP + c]).to_f32()
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
                for b in 0..self.superblocks {
                    let (at, xb) = (g * self.superblocks + b, i * self.superblocks + b);
                    let mut aux = [0i32; 8];
                    for p in 0..SUPERBLOCK {
                        let product = i32::from(self.weight(at, c, p)) * i32::from(x.quant(xb, p));
                        aux[p % 8] += i32::from(self.scale(at, c, p / 16)) * product;
                    }
                    let d = self.d(at, c) * x.d[xb];
                    for (sum, &aux) in sums.iter_mut().zip(&aux) {
                        *sum += aux as f32 * d;
                    }
                }
                *out = sums.iter().sum();
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
        let top = _mm256_set1_epi8(0x30);
        // `_mm256_shuffle_epi8` controls that move bytes `k` and `k + 2` of every lane to the
        // high bytes of its i16 halves (an arithmetic shift then sign-extends them).
        let spread: [__m256i; 2] = std::array::from_fn(|k| {
            let control: [i8; 32] = std::array::from_fn(|i| if i % 2 == 0 { -128 } else { ((i / 4) % 4 * 4 + k + 2 * (i % 4 / 2)) as i8 });
            // SAFETY: a 32-byte load from a 32-byte array.
            unsafe { _mm256_loadu_si256(control.as_ptr().cast()) }
        });
        let mut acc = vec![[_mm256_setzero_ps(); 8]; n];
        for g in cols.0 / GROUP..cols.1.div_ceil(GROUP) {
            acc.fill([_mm256_setzero_ps(); 8]);
            for b in 0..self.superblocks {
                let at = g * self.superblocks + b;
                // SAFETY (all loads): `at < groups·superblocks`, so the group-superblock's bits,
                // scales and `d`s are in bounds; activation superblocks `(i, b)` exist for
                // `i < rows.1` (asserted above). Unaligned loads need no alignment.
                let wp = self.nibbles.as_ptr().add(at * NIBBLE_BYTES);
                let hp = self.high.as_ptr().add(at * HIGH_BYTES);
                let mut w = [_mm256_setzero_si256(); 64];
                for v in 0..8 {
                    for l in 0..4 {
                        let packed = _mm256_loadu_si256(wp.add((v * 4 + l) * 32).cast());
                        w[v * 8 + l] = _mm256_and_si256(packed, low);
                        w[v * 8 + l + 4] = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low);
                    }
                    for h in 0..2 {
                        // Bits `2k, 2k + 1` of each byte belong to register `R_{v,4h+k}`;
                        // move them to bits 4 and 5.
                        let bits = _mm256_loadu_si256(hp.add((v * 2 + h) * 32).cast());
                        let shifted = [_mm256_slli_epi16::<4>(bits), _mm256_slli_epi16::<2>(bits), bits, _mm256_srli_epi16::<2>(bits)];
                        for (k, shifted) in shifted.into_iter().enumerate() {
                            let w = &mut w[v * 8 + 4 * h + k];
                            *w = _mm256_or_si256(*w, _mm256_and_si256(shifted, top));
                        }
                    }
                }
                let sp = self.scales.as_ptr().add(at * SCALE_BYTES);
                // For word `(v, l)`, the scales of 16-weight sub-blocks `u = 4(v / 2) + v % 2` and
                // `u + 2`, as i16 in each lane.
                let scales: [__m256i; 8] = std::array::from_fn(|v| {
                    let packed = _mm256_loadu_si256(sp.add((v / 2) * 32).cast());
                    _mm256_srai_epi16::<8>(_mm256_shuffle_epi8(packed, spread[v % 2]))
                });
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(self.d.as_ptr().add(at * GROUP).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let xb = (rows.0 + r) * self.superblocks + b;
                    let xq = x.quants.as_ptr().add(xb * SUPERBLOCK).cast::<i32>();
                    let xo = x.offsets.as_ptr().add(xb * SUPERBLOCK / 2).cast::<i32>();
                    let mut aux = [_mm256_setzero_si256(); 8];
                    for v in 0..8 {
                        for (l, aux) in aux.iter_mut().enumerate() {
                            let a = _mm256_set1_epi32(xq.add(v * 8 + l).read_unaligned());
                            let offset = _mm256_set1_epi32(xo.add(v * 8 + l).read_unaligned());
                            let pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(w[v * 8 + l], a), offset);
                            *aux = _mm256_add_epi32(*aux, _mm256_madd_epi16(pairs, scales[v]));
                        }
                    }
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(*x.d.get_unchecked(xb)));
                    for (acc, aux) in acc.iter_mut().zip(aux) {
                        *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_cvtepi32_ps(aux), d));
                    }
                }
            }
            let first = g * GROUP;
            let take = GROUP.min(cols.1 - first);
            let mut lanes = [0f32; GROUP];
            for (r, acc) in acc.iter().enumerate() {
                // `Iterator::sum` starts from -0.0, which adds as an identity: `s0 + s1 + … + s7`.
                let total = acc[1..].iter().fold(acc[0], |total, &sum| _mm256_add_ps(total, sum));
                _mm256_storeu_ps(lanes.as_mut_ptr(), total);
                out[r * width + first - cols.0..][..take].copy_from_slice(&lanes[..take]);
            }
        }
    }
}

impl SuperblockKernel for Q6K {
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

/// Where the top two bits of weight `p` (0..256) of column `c` live in a group-superblock's
/// 512 bytes: where the activations keep position `p` (byte `k` of word `(v, l)`), registers
/// `R_{v,4h..4h+4}` (`h = l / 4`) share one, `R_{v,4h+i}` in bits `2i, 2i + 1` of lane `c`'s
/// byte `k`. Returns (byte offset, shift).
fn high_at(c: usize, p: usize) -> (usize, u32) {
    let (word, k) = (permuted(p) / 4, permuted(p) % 4);
    let (v, l) = (word / 8, word % 8);
    ((v * 2 + l / 4) * 32 + c * 4 + k, 2 * (l % 4) as u32)
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
        let bytes = test_quantized(GgmlDType::Q6K, rows, cols);
        let w = Q6K::new(&bytes, rows, cols);
        let x = test_values(m * cols, 2);
        let expected = test_reference::<kq::BlockQ6K>(&bytes, &x, m, cols);
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
        let (a, b) = (test_quantized(GgmlDType::Q6K, 24, cols), test_quantized(GgmlDType::Q4K, 9, cols));
        // A Q4_K matrix shares the Q8_K activations with a Q6_K one.
        let (a, b) = (Q6K::new(&a, 24, cols), super::super::q4_k::Q4K::new(&b, 9, cols));
        assert_eq!(matmul_superblocks(&[&a, &b], &x, m), vec![a.matmul(&x, m), b.matmul(&x, m)]);

        let bytes = test_quantized(GgmlDType::Q6K, 9, cols);
        let w = Q6K::new(&bytes, 9, cols);
        let blocks: Vec<kq::BlockQ6K> = typed(&bytes);
        let per_row = cols / SUPERBLOCK;
        for row in [0, 4, 8] {
            let mut theirs = vec![0f32; cols];
            kq::BlockQ6K::to_float(&blocks[row * per_row..(row + 1) * per_row], &mut theirs);
            let mut ours = vec![0f32; cols];
            w.row_into(row, &mut ours);
            assert_eq!(ours, theirs, "row {row}");
        }
    }
}
