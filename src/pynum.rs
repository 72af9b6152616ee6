//! Python's number semantics, for tools that must compute exactly what τ-bench computes.
//!
//! τ-bench keeps JSON numbers as Python `int` or `float` and mixes them freely: `0 + 12.5`
//! is a float, `0 + 3` stays an int, `round(3, 2)` is still the int `3`, and comparing an
//! int with a float is exact. The result text is `json.dumps` of those values, so `3` and
//! `3.0` print differently. [`PyNum`] carries the int/float distinction and implements each
//! operation the way CPython does. Ints are `i128` where Python's are unbounded; an int result
//! outside that range is an error (a case no τ-bench data comes near).

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A Python `int` or `float`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PyNum {
    Int(i128),
    Float(f64),
}

/// The error text for an int result beyond `i128`.
const INT_OVERFLOW: &str = "Error: integer result too large";

impl PyNum {
    /// Reads a JSON number: integers stay ints, numbers written with a fraction or exponent
    /// are floats (as Python's `json.loads` reads them). Anything else is not a number.
    pub fn from_value(value: &Value) -> Option<PyNum> {
        let n = match value {
            Value::Number(n) => n,
            _ => return None,
        };
        if let Some(i) = n.as_i64() {
            Some(PyNum::Int(i.into()))
        } else if let Some(u) = n.as_u64() {
            Some(PyNum::Int(u.into()))
        } else {
            n.as_f64().map(PyNum::Float)
        }
    }

    /// The JSON value, as `json.loads(json.dumps(x))` would give it back.
    pub fn to_value(self) -> Result<Value, String> {
        match self {
            PyNum::Int(i) => {
                if let Ok(i) = i64::try_from(i) {
                    Ok(Value::from(i))
                } else if let Ok(u) = u64::try_from(i) {
                    Ok(Value::from(u))
                } else {
                    Err(INT_OVERFLOW.to_string())
                }
            }
            PyNum::Float(f) => {
                Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("Error: the result {} is not a finite number", float_str(f)))
            }
        }
    }

    /// `float(x)`: ints convert with round-half-even, as CPython's `int.__float__` does.
    pub fn to_f64(self) -> f64 {
        match self {
            PyNum::Int(i) => i as f64,
            PyNum::Float(f) => f,
        }
    }

    pub fn checked_add(self, other: PyNum) -> Result<PyNum, String> {
        match (self, other) {
            (PyNum::Int(a), PyNum::Int(b)) => a.checked_add(b).map(PyNum::Int).ok_or_else(overflow),
            (a, b) => Ok(PyNum::Float(a.to_f64() + b.to_f64())),
        }
    }

    pub fn checked_sub(self, other: PyNum) -> Result<PyNum, String> {
        match (self, other) {
            (PyNum::Int(a), PyNum::Int(b)) => a.checked_sub(b).map(PyNum::Int).ok_or_else(overflow),
            (a, b) => Ok(PyNum::Float(a.to_f64() - b.to_f64())),
        }
    }

    pub fn checked_mul(self, other: PyNum) -> Result<PyNum, String> {
        match (self, other) {
            (PyNum::Int(a), PyNum::Int(b)) => a.checked_mul(b).map(PyNum::Int).ok_or_else(overflow),
            (a, b) => Ok(PyNum::Float(a.to_f64() * b.to_f64())),
        }
    }

    pub fn checked_neg(self) -> Result<PyNum, String> {
        match self {
            PyNum::Int(a) => a.checked_neg().map(PyNum::Int).ok_or_else(overflow),
            PyNum::Float(f) => Ok(PyNum::Float(-f)),
        }
    }

    pub fn checked_abs(self) -> Result<PyNum, String> {
        match self {
            PyNum::Int(a) => a.checked_abs().map(PyNum::Int).ok_or_else(overflow),
            PyNum::Float(f) => Ok(PyNum::Float(f.abs())),
        }
    }

    /// `a / b`: always a float. Int by int is correctly rounded from the exact quotient, as
    /// CPython's `long_true_divide` does (converting both to float first could round twice).
    pub fn true_div(self, other: PyNum) -> Result<PyNum, String> {
        match (self, other) {
            (PyNum::Int(_), PyNum::Int(0)) => Err("Error: division by zero".into()),
            (PyNum::Int(a), PyNum::Int(b)) => Ok(PyNum::Float(int_true_div(a, b))),
            (a, b) => {
                let divisor = b.to_f64();
                if divisor == 0.0 {
                    return Err("Error: float division by zero".into());
                }
                Ok(PyNum::Float(a.to_f64() / divisor))
            }
        }
    }

    /// `a // b`: floor division, an int for two ints, else CPython's float `divmod` rounding.
    pub fn floor_div(self, other: PyNum) -> Result<PyNum, String> {
        match (self, other) {
            (PyNum::Int(_), PyNum::Int(0)) => Err("Error: integer division or modulo by zero".into()),
            (PyNum::Int(a), PyNum::Int(b)) => {
                let q = a.checked_div(b).ok_or_else(overflow)?;
                let inexact = a % b != 0;
                Ok(PyNum::Int(if inexact && ((a < 0) != (b < 0)) { q - 1 } else { q }))
            }
            (a, b) => float_floor_div(a.to_f64(), b.to_f64()).map(PyNum::Float),
        }
    }

    /// `a ** b`. An int to a non-negative int power is an exact int; anything else goes
    /// through CPython's `float_pow`, including its special cases and errors.
    pub fn pow(self, other: PyNum) -> Result<PyNum, String> {
        match (self, other) {
            (PyNum::Int(a), PyNum::Int(b)) if b >= 0 => int_pow(a, b).map(PyNum::Int),
            (a, b) => float_pow(a.to_f64(), b.to_f64()).map(PyNum::Float),
        }
    }

    /// Python's comparison of two numbers; `None` when a NaN is involved (every comparison
    /// with NaN is false in Python).
    pub fn partial_cmp(self, other: PyNum) -> Option<Ordering> {
        match (self, other) {
            (PyNum::Int(a), PyNum::Int(b)) => Some(a.cmp(&b)),
            (PyNum::Float(a), PyNum::Float(b)) => a.partial_cmp(&b),
            (PyNum::Int(a), PyNum::Float(b)) => cmp_int_float(a, b),
            (PyNum::Float(a), PyNum::Int(b)) => cmp_int_float(b, a).map(Ordering::reverse),
        }
    }

    /// `a < b` in Python.
    pub fn lt(self, other: PyNum) -> bool {
        self.partial_cmp(other) == Some(Ordering::Less)
    }

    /// `a > b` in Python.
    pub fn gt(self, other: PyNum) -> bool {
        self.partial_cmp(other) == Some(Ordering::Greater)
    }

    /// `round(x, 2)`: ints are returned unchanged; floats are rounded half-to-even on their
    /// exact binary value, so `round(2.675, 2)` is `2.67` (2.675 is stored as 2.67499…).
    pub fn round2(self) -> PyNum {
        match self {
            PyNum::Int(i) => PyNum::Int(i),
            PyNum::Float(f) => PyNum::Float(round_float(f, 2)),
        }
    }
}

fn overflow() -> String {
    INT_OVERFLOW.to_string()
}

/// Python's `round(x, ndigits)` for a float. Rust's fixed-precision formatting prints the
/// exactly rounded decimal (ties to even, like CPython's `_Py_dg_dtoa` mode 3), and parsing
/// it back is correctly rounded, which is CPython's `double_round`.
fn round_float(x: f64, ndigits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.ndigits$}").parse().unwrap_or(x)
}

/// Python's `str(float)`: its `repr`, with `inf`, `-inf` and `nan` for the non-finite values.
pub fn float_str(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        crate::pyjson::float_repr(f)
    }
}

/// Exact comparison of an int with a float, as CPython's `float_richcompare` does.
fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // 2^127 as a float; every i128 lies in [-2^127, 2^127).
    const LIMIT: f64 = 170141183460469231731687303715884105728.0;
    if f >= LIMIT {
        return Some(Ordering::Less);
    }
    if f < -LIMIT {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range and integral, so the cast is exact.
    let t = whole as i128;
    Some(i.cmp(&t).then_with(|| 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal)))
}

/// The float nearest to `a / b` (ties to even), computed from the exact quotient.
fn int_true_div(a: i128, b: i128) -> f64 {
    let negative = (a < 0) != (b < 0);
    let (a, b) = (a.unsigned_abs(), b.unsigned_abs());
    let magnitude = if a == 0 {
        0.0
    } else {
        // Long division until the quotient has at least 55 significant bits: 53 to keep, one
        // to decide the rounding, and the remainder as the sticky bit.
        let (mut q, mut r, mut exp) = (a / b, a % b, 0i32);
        while q < (1u128 << 55) {
            // r < b <= 2^127, so doubling it cannot overflow.
            r <<= 1;
            q <<= 1;
            if r >= b {
                r -= b;
                q |= 1;
            }
            exp -= 1;
        }
        let shift = 128 - q.leading_zeros() - 53;
        let mut kept = q >> shift;
        let dropped = q & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        if dropped > half || (dropped == half && (r != 0 || kept & 1 == 1)) {
            kept += 1;
        }
        // kept <= 2^53 is exact as a float, and the scale is a power of two in normal range.
        kept as f64 * 2f64.powi(exp + shift as i32)
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

fn int_pow(base: i128, exp: i128) -> Result<i128, String> {
    match u32::try_from(exp) {
        Ok(e) => base.checked_pow(e).ok_or_else(overflow),
        // Only 0, 1 and -1 survive an exponent this large.
        Err(_) => match base {
            0 | 1 => Ok(base),
            -1 => Ok(if exp % 2 == 0 { 1 } else { -1 }),
            _ => Err(overflow()),
        },
    }
}

fn is_odd_integer(x: f64) -> bool {
    x.is_finite() && x.fract() == 0.0 && (x % 2.0).abs() == 1.0
}

/// CPython's `float_pow`, special cases first, then the C library's `pow`.
fn float_pow(iv: f64, iw: f64) -> Result<f64, String> {
    if iw == 0.0 {
        return Ok(1.0);
    }
    if iv.is_nan() {
        return Ok(iv);
    }
    if iw.is_nan() {
        return Ok(if iv == 1.0 { 1.0 } else { iw });
    }
    if iw.is_infinite() {
        let av = iv.abs();
        return Ok(if av == 1.0 {
            1.0
        } else if (iw > 0.0) == (av > 1.0) {
            iw.abs()
        } else {
            0.0
        });
    }
    if iv.is_infinite() {
        let odd = is_odd_integer(iw);
        return Ok(if iw > 0.0 {
            if odd {
                iv
            } else {
                iv.abs()
            }
        } else if odd {
            0.0f64.copysign(iv)
        } else {
            0.0
        });
    }
    if iv == 0.0 {
        if iw < 0.0 {
            return Err("Error: 0.0 cannot be raised to a negative power".into());
        }
        return Ok(if is_odd_integer(iw) { iv } else { 0.0 });
    }
    let mut base = iv;
    let mut negate = false;
    if iv < 0.0 {
        if iw != iw.floor() {
            // Python returns a complex number here, which `float()` then refuses.
            return Err("Error: float() argument must be a string or a real number, not 'complex'".into());
        }
        base = -iv;
        negate = is_odd_integer(iw);
    }
    if base == 1.0 {
        return Ok(if negate { -1.0 } else { 1.0 });
    }
    let r = base.powf(iw);
    if r.is_infinite() {
        return Err("Error: (34, 'Numerical result out of range')".into());
    }
    Ok(if negate { -r } else { r })
}

/// CPython's float floor division (`float_floor_div` via `_float_div_mod`).
fn float_floor_div(vx: f64, wx: f64) -> Result<f64, String> {
    if wx == 0.0 {
        return Err("Error: float floor division by zero".into());
    }
    let m = vx % wx;
    let mut div = (vx - m) / wx;
    if m != 0.0 && (wx < 0.0) != (m < 0.0) {
        div -= 1.0;
    }
    Ok(if div != 0.0 {
        let mut floordiv = div.floor();
        if div - floordiv > 0.5 {
            floordiv += 1.0;
        }
        floordiv
    } else {
        0.0f64.copysign(vx / wx)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use PyNum::{Float, Int};

    #[test]
    fn round_is_half_even_on_the_exact_binary_value() {
        // Expected values are CPython 3.11's `round(x, 2)`.
        let cases =
            [(0.125, 0.12), (0.375, 0.38), (2.675, 2.67), (1.005, 1.0), (-0.001, -0.0), (1234.5678, 1234.57), (0.615, 0.61), (1e20, 1e20)];
        for (x, want) in cases {
            let got = Float(x).round2().to_f64();
            assert_eq!(got.to_bits(), f64::to_bits(want), "round({x}, 2)");
        }
        assert_eq!(Int(7).round2(), Int(7));
    }

    #[test]
    fn ints_stay_ints_until_a_float_joins() {
        assert_eq!(Int(0).checked_add(Int(3)).unwrap(), Int(3));
        assert_eq!(Int(0).checked_add(Float(3.0)).unwrap(), Float(3.0));
        assert_eq!(Float(0.1).checked_add(Float(0.2)).unwrap(), Float(0.30000000000000004));
        assert!(Int(i128::MAX).checked_add(Int(1)).is_err());
    }

    #[test]
    fn int_float_comparison_is_exact() {
        // 2^53 + 1 is not representable: as a float it would compare equal.
        let big = (1i128 << 53) + 1;
        assert!(Int(big).gt(Float(9007199254740992.0)));
        assert!(Int(3).lt(Float(3.5)));
        assert!(!Int(3).lt(Float(f64::NAN)));
        assert!(Float(-0.5).lt(Int(0)));
        assert!(Int(-1).gt(Float(-1.5)));
    }

    #[test]
    fn division_matches_python() {
        assert_eq!(Int(1).true_div(Int(3)).unwrap(), Float(1.0 / 3.0));
        assert_eq!(Int(0).true_div(Int(-5)).unwrap().to_f64().to_bits(), (-0.0f64).to_bits());
        // (10**30 + 1) / 3 in CPython: 3.333333333333333e+29.
        let a = 10i128.pow(30) + 1;
        assert_eq!(Int(a).true_div(Int(3)).unwrap(), Float(3.333333333333333e29));
        assert_eq!(Int(1).true_div(Int(0)).unwrap_err(), "Error: division by zero");
        assert_eq!(Float(1.0).true_div(Int(0)).unwrap_err(), "Error: float division by zero");
        assert_eq!(Int(-7).floor_div(Int(2)).unwrap(), Int(-4));
        assert_eq!(Float(-7.0).floor_div(Int(2)).unwrap(), Float(-4.0));
        assert_eq!(Float(7.5).floor_div(Float(-2.0)).unwrap(), Float(-4.0));
        assert_eq!(Int(1).floor_div(Int(0)).unwrap_err(), "Error: integer division or modulo by zero");
        assert_eq!(Float(1.0).floor_div(Int(0)).unwrap_err(), "Error: float floor division by zero");
    }

    #[test]
    fn powers_match_python() {
        assert_eq!(Int(2).pow(Int(10)).unwrap(), Int(1024));
        assert_eq!(Int(2).pow(Int(-1)).unwrap(), Float(0.5));
        assert_eq!(Int(10).pow(Int(-400)).unwrap(), Float(0.0));
        assert_eq!(Int(0).pow(Int(-1)).unwrap_err(), "Error: 0.0 cannot be raised to a negative power");
        assert_eq!(Float(10.0).pow(Int(400)).unwrap_err(), "Error: (34, 'Numerical result out of range')");
        assert!(Int(-8).pow(Float(0.5)).unwrap_err().contains("complex"));
        assert_eq!(Int(-2).pow(Float(3.0)).unwrap(), Float(-8.0));
        assert_eq!(Int(-1).pow(Int(1 << 40)).unwrap(), Int(1));
        assert!(Int(3).pow(Int(1 << 40)).is_err());
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(PyNum::from_value(&serde_json::json!(5)), Some(Int(5)));
        assert_eq!(PyNum::from_value(&serde_json::json!(5.0)), Some(Float(5.0)));
        assert_eq!(PyNum::from_value(&serde_json::json!("5")), None);
        assert_eq!(Int(5).to_value().unwrap(), serde_json::json!(5));
        assert!(Int(i128::MAX).to_value().is_err());
        assert!(Float(f64::INFINITY).to_value().is_err());
        assert_eq!(float_str(f64::NEG_INFINITY), "-inf");
    }
}
