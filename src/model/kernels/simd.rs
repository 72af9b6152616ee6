//! The vector unit each kernel runs on, chosen once at run time, and the lane operations the
//! attention kernels are written in.
//!
//! A dataset must not depend on the machine that made it, so every unit computes every value
//! with the same IEEE operations in the same order: a lane of an AVX-512 register, a lane of an
//! AVX2 register and a plain `f32` each do one `mul_add` (a single rounding: hardware FMA, or
//! the correctly rounded software `fmaf` where the CPU has none), one add, one max. Only the
//! number of values handled per instruction differs. Horizontal reductions, the one place where
//! the width could leak into the result, use one fixed tree over 16 values (lane `i` with lane
//! `i + 8`, then `i + 4`, `i + 2`, `i + 1`) however the 16 values are spread over registers;
//! `exp2` is a polynomial of our own, not the C library's, so no libm version can change it.
//!
//! Instructions whose rounding differs from this (AVX-512 FP16/BF16 arithmetic, approximate
//! reciprocals) are not used.

use std::sync::OnceLock;

/// A vector unit the kernels can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// Plain `f32` arithmetic: every CPU.
    Scalar,
    /// 256-bit AVX2 with FMA and F16C.
    Avx2,
    /// 512-bit AVX-512 (F, with BW and VL).
    Avx512,
}

impl Isa {
    /// Every unit, narrowest first.
    pub(crate) const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run it.
    pub(crate) fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest unit this CPU has, or a narrower one named by `APIGEN_MT_ISA` (scalar, avx2,
    /// avx512) to measure it: every unit gives the same bits, so the choice only changes speed.
    pub(crate) fn detect() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let widest = Isa::ALL.into_iter().rev().find(|isa| isa.available()).unwrap_or(Isa::Scalar);
            match std::env::var("APIGEN_MT_ISA") {
                Ok(name) => match Isa::ALL.into_iter().find(|isa| isa.name() == name.trim()) {
                    Some(isa) if isa.available() => isa,
                    _ => {
                        tracing::warn!("APIGEN_MT_ISA={name} is not a vector unit of this CPU; using {}", widest.name());
                        widest
                    }
                },
                Err(_) => widest,
            }
        })
    }
}

/// The coefficients of `2^f` on `[-0.5, 0.5]` (Cephes' `exp2f`), highest degree first; the
/// constant term 1 follows them.
const EXP2_POLY: [f32; 6] = [1.535_336_2e-4, 1.339_887_4e-3, 9.618_437e-3, 5.550_332_5e-2, 2.402_264_8e-1, 6.931_472e-1];

/// Inputs are clamped to `[-EXP2_LIMIT, EXP2_LIMIT]`, where the result is a normal float.
const EXP2_LIMIT: f32 = 125.0;

/// `2^x` to about 2 units in the last place, by the operations every [`Lanes`] type performs
/// lane by lane. Inputs below -125 (and NaN) give 2^-125, not 0.
#[inline(always)]
pub(crate) fn exp2(x: f32) -> f32 {
    let x = max(min(x, EXP2_LIMIT), -EXP2_LIMIT);
    let n = x.round_ties_even();
    let f = x - n;
    let mut p = EXP2_POLY[0];
    for &c in &EXP2_POLY[1..] {
        p = p.mul_add(f, c);
    }
    p = p.mul_add(f, 1.0);
    f32::from_bits(p.to_bits().wrapping_add(((n as i32) << 23) as u32))
}

/// `a` if `a > b`, else `b` (so NaN in `a` gives `b`): the x86 `maxps` rule.
#[inline(always)]
pub(crate) fn max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `a` if `a < b`, else `b`: the x86 `minps` rule.
#[inline(always)]
pub(crate) fn min(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// `W` f32 lanes, each computed as a plain `f32` would be.
///
/// # Safety
/// Every method may use instructions of its unit: call them only inside a function compiled for
/// that unit (`#[target_feature]`) on a CPU that has it. Pointers must be valid for `W` values.
pub(crate) trait Lanes: Copy {
    /// Lanes per value.
    const W: usize;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    /// `W` f16 values, widened exactly.
    unsafe fn load_f16(p: *const u16) -> Self;
    unsafe fn store(self, p: *mut f32);
    unsafe fn add(self, b: Self) -> Self;
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    unsafe fn div(self, b: Self) -> Self;
    /// `self * b + c` with one rounding.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise [`max`].
    unsafe fn max(self, b: Self) -> Self;
    /// Lane-wise [`exp2`].
    unsafe fn exp2(self) -> Self;
    /// Lanes `0..count` of `self`, the rest `fill` (`count <= W`).
    unsafe fn first(self, count: usize, fill: Self) -> Self;
    /// The fixed tree (lane `i` with `i + W/2`, then `i + W/4`, ...) of `add` over the lanes.
    unsafe fn reduce_add(self) -> f32;
    /// The same tree of [`max`].
    unsafe fn reduce_max(self) -> f32;
}

impl Lanes for f32 {
    const W: usize = 1;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        p.read_unaligned()
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        half::f16::from_bits(p.read_unaligned()).to_f32()
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        p.write_unaligned(self)
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        self + b
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        self - b
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        self * b
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        self / b
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        f32::mul_add(self, b, c)
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        max(self, b)
    }
    #[inline(always)]
    unsafe fn exp2(self) -> Self {
        exp2(self)
    }
    #[inline(always)]
    unsafe fn first(self, count: usize, fill: Self) -> Self {
        if count > 0 {
            self
        } else {
            fill
        }
    }
    #[inline(always)]
    unsafe fn reduce_add(self) -> f32 {
        self
    }
    #[inline(always)]
    unsafe fn reduce_max(self) -> f32 {
        self
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Lanes, EXP2_LIMIT, EXP2_POLY};

    /// Eight lanes of AVX2 (with FMA and F16C).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2(__m256);

    /// Sixteen lanes of AVX-512F.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(__m512);

    const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    /// The [`super::reduce_add`]-style tree over four lanes: (0+2, 1+3), then their sum.
    #[inline(always)]
    unsafe fn tree4(x: __m128, op: impl Fn(__m128, __m128) -> __m128) -> f32 {
        let x = op(x, _mm_movehl_ps(x, x));
        _mm_cvtss_f32(op(x, _mm_movehdup_ps(x)))
    }

    impl Lanes for Avx2 {
        const W: usize = 8;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx2(_mm256_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx2(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn load_f16(p: *const u16) -> Self {
            Avx2(_mm256_cvtph_ps(_mm_loadu_si128(p.cast())))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Avx2(_mm256_add_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Avx2(_mm256_sub_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Avx2(_mm256_mul_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            Avx2(_mm256_div_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Avx2(_mm256_fmadd_ps(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            Avx2(_mm256_max_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn exp2(self) -> Self {
            let x = _mm256_max_ps(_mm256_min_ps(self.0, _mm256_set1_ps(EXP2_LIMIT)), _mm256_set1_ps(-EXP2_LIMIT));
            let n = _mm256_round_ps::<ROUND>(x);
            let f = _mm256_sub_ps(x, n);
            let mut p = _mm256_set1_ps(EXP2_POLY[0]);
            for &c in &EXP2_POLY[1..] {
                p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(c));
            }
            p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0));
            let e = _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n));
            Avx2(_mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e)))
        }
        #[inline(always)]
        unsafe fn first(self, count: usize, fill: Self) -> Self {
            let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), index);
            Avx2(_mm256_blendv_ps(fill.0, self.0, _mm256_castsi256_ps(keep)))
        }
        #[inline(always)]
        unsafe fn reduce_add(self) -> f32 {
            let x = _mm_add_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
            tree4(x, |a, b| _mm_add_ps(a, b))
        }
        #[inline(always)]
        unsafe fn reduce_max(self) -> f32 {
            let x = _mm_max_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
            tree4(x, |a, b| _mm_max_ps(a, b))
        }
    }

    impl Lanes for Avx512 {
        const W: usize = 16;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx512(_mm512_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn load_f16(p: *const u16) -> Self {
            Avx512(_mm512_cvtph_ps(_mm256_loadu_si256(p.cast())))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Avx512(_mm512_add_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Avx512(_mm512_sub_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Avx512(_mm512_mul_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn div(self, b: Self) -> Self {
            Avx512(_mm512_div_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Avx512(_mm512_fmadd_ps(self.0, b.0, c.0))
        }
        #[inline(always)]
        unsafe fn max(self, b: Self) -> Self {
            Avx512(_mm512_max_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn exp2(self) -> Self {
            let x = _mm512_max_ps(_mm512_min_ps(self.0, _mm512_set1_ps(EXP2_LIMIT)), _mm512_set1_ps(-EXP2_LIMIT));
            let n = _mm512_roundscale_ps::<ROUND>(x);
            let f = _mm512_sub_ps(x, n);
            let mut p = _mm512_set1_ps(EXP2_POLY[0]);
            for &c in &EXP2_POLY[1..] {
                p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
            }
            p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0));
            let e = _mm512_slli_epi32::<23>(_mm512_cvtps_epi32(n));
            Avx512(_mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), e)))
        }
        #[inline(always)]
        unsafe fn first(self, count: usize, fill: Self) -> Self {
            let keep = ((1u32 << count.min(16)) - 1) as __mmask16;
            Avx512(_mm512_mask_blend_ps(keep, fill.0, self.0))
        }
        #[inline(always)]
        unsafe fn reduce_add(self) -> f32 {
            let low = _mm512_castps512_ps256(self.0);
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            Avx2(_mm256_add_ps(low, high)).reduce_add()
        }
        #[inline(always)]
        unsafe fn reduce_max(self) -> f32 {
            let low = _mm512_castps512_ps256(self.0);
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            Avx2(_mm256_max_ps(low, high)).reduce_max()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values that exercise exp2: both signs, tiny, huge, halfway cases, infinities, NaN.
    fn inputs() -> Vec<f32> {
        let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.0625).collect();
        xs.extend((0..4000).map(|i| -(i as f32) * 0.031_3 - 1e-3));
        xs.extend([0.0, -0.0, 0.5, -0.5, 1.5, -2.5, 1e-30, -1e-30, -125.0, -125.7, -200.0, 130.0]);
        xs.extend([f32::NEG_INFINITY, f32::INFINITY, f32::NAN, f32::MIN_POSITIVE, -f32::MAX]);
        xs
    }

    #[test]
    fn exp2_is_close_to_the_true_value() {
        for i in -2000..=0 {
            let x = i as f32 * 0.0625;
            let ours = exp2(x) as f64;
            let exact = (x as f64).exp2();
            assert!(((ours - exact) / exact).abs() < 4e-7, "2^{x}: {ours} vs {exact}");
        }
        assert_eq!(exp2(0.0), 1.0);
        assert_eq!(exp2(f32::NEG_INFINITY), exp2(-125.0));
    }

    /// Runs `f` on `isa` if this CPU has it, else prints why it is skipped.
    fn on(isa: Isa, f: impl FnOnce()) {
        if isa.available() {
            f()
        } else {
            eprintln!("skipped: this CPU has no {} unit", isa.name());
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn lanes_avx2(xs: &[f32], ys: &[f32]) -> Vec<f32> {
        each::<Avx2>(xs, ys)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn lanes_avx512(xs: &[f32], ys: &[f32]) -> Vec<f32> {
        each::<Avx512>(xs, ys)
    }

    /// Every lane operation over `xs` in chunks of 16, flattened in an order that does not
    /// depend on the width: exp2, arithmetic against `ys`, the masks, both reductions.
    #[inline(always)]
    unsafe fn each<V: Lanes>(xs: &[f32], ys: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        let regs = 16 / V::W;
        for (chunk, other) in xs.chunks_exact(16).zip(ys.chunks_exact(16)) {
            let v = |r: usize| V::load(chunk.as_ptr().add(r * V::W));
            let w = |r: usize| V::load(other.as_ptr().add(r * V::W));
            // One 16-value result per operation, filled register by register.
            let mut emit = |op: &dyn Fn(usize) -> V| {
                let mut buf = [0f32; 16];
                for r in 0..regs {
                    op(r).store(buf.as_mut_ptr().add(r * V::W));
                }
                out.extend_from_slice(&buf);
            };
            emit(&|r| v(r).exp2());
            emit(&|r| v(r).add(w(r)));
            emit(&|r| v(r).sub(w(r)));
            emit(&|r| v(r).mul(w(r)));
            emit(&|r| v(r).div(w(r)));
            emit(&|r| v(r).mul_add(w(r), v(r)));
            emit(&|r| v(r).max(w(r)));
            // The first `count` of the 16 values, whichever register holds them.
            for count in 0..=16usize {
                emit(&|r| v(r).first(count.saturating_sub(r * V::W).min(V::W), V::splat(-1.0)));
            }
            // The 16-value tree: registers pairwise first, then inside the last register.
            let mut sums: Vec<V> = (0..regs).map(v).collect();
            let mut maxes = sums.clone();
            while sums.len() > 1 {
                let half = sums.len() / 2;
                for i in 0..half {
                    sums[i] = sums[i].add(sums[i + half]);
                    maxes[i] = maxes[i].max(maxes[i + half]);
                }
                sums.truncate(half);
                maxes.truncate(half);
            }
            out.push(sums[0].reduce_add());
            out.push(maxes[0].reduce_max());
        }
        out
    }

    /// Equal bits, or both NaN: a NaN's payload depends on operand order inside an instruction,
    /// which no result of a working model depends on.
    fn same(a: &[f32], b: &[f32]) -> Result<(), String> {
        if a.len() != b.len() {
            return Err(format!("{} values vs {}", a.len(), b.len()));
        }
        match a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan())) {
            Some(i) => Err(format!("value {i}: {} vs {}", a[i], b[i])),
            None => Ok(()),
        }
    }

    #[test]
    fn every_unit_gives_the_scalar_bits() {
        let mut xs = inputs();
        xs.truncate(xs.len() / 16 * 16);
        let mut ys = xs.clone();
        ys.rotate_left(7);
        // SAFETY: the scalar unit needs nothing.
        let scalar = unsafe { each::<f32>(&xs, &ys) };
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: each runs only where `available` says the CPU has the unit.
            on(Isa::Avx2, || {
                let avx2 = unsafe { lanes_avx2(&xs, &ys) };
                same(&avx2, &scalar).unwrap_or_else(|e| panic!("AVX2 differs from scalar: {e}"));
            });
            on(Isa::Avx512, || {
                let avx512 = unsafe { lanes_avx512(&xs, &ys) };
                same(&avx512, &scalar).unwrap_or_else(|e| panic!("AVX-512 differs from scalar: {e}"));
            });
        }
    }
}
