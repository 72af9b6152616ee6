//! The few Python behaviours τ-bench's airline tools show in their results that the shared
//! helpers ([`crate::pynum`], [`crate::env::lookup`]) do not cover: `str()` of a number,
//! `sum()`, the text of a `KeyError`, and access to list and number arguments.

use serde_json::Value;

use crate::env::{type_name, Args};
use crate::pynum::{float_str, PyNum};

/// Python's `str(x)` for a number: `150`, `150.0`, `12.25`.
pub fn num_str(x: PyNum) -> String {
    match x {
        PyNum::Int(i) => i.to_string(),
        PyNum::Float(f) => float_str(f),
    }
}

/// Python's `a == b` for numbers (exact across int and float; never true with NaN).
pub fn num_eq(a: PyNum, b: PyNum) -> bool {
    a.partial_cmp(b) == Some(std::cmp::Ordering::Equal)
}

/// Python's `sum(values)`: starts from the int `0` and adds left to right, as CPython up to
/// 3.11 does (3.12 added compensated summation for floats).
pub fn sum(values: impl IntoIterator<Item = PyNum>) -> Result<PyNum, String> {
    values.into_iter().try_fold(PyNum::Int(0), PyNum::checked_add)
}

/// Python's `repr()` of a `str`: single quotes unless only double quotes avoid escaping.
/// Non-ASCII characters are kept unless they are control or space characters, which
/// approximates Python's `str.isprintable()`.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if c.is_control() || c.is_whitespace() => {
                let code = c as u32;
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// τ-bench's observation for a `KeyError` on `key`: `Error: 'key'`. Used where τ-bench raises
/// one on well-formed data, so the observation is the one τ-bench gives.
pub fn key_error(key: &str) -> String {
    format!("Error: {}", repr_str(key))
}

/// A keyword argument of any type. `Tool::call` checks arguments first; this keeps a direct
/// `(tool.run)(db, args)` panic-free.
pub fn arg<'a>(args: &'a Args, name: &str) -> Result<&'a Value, String> {
    args.get(name).ok_or_else(|| format!("Error: missing argument '{name}'"))
}

/// A list argument.
pub fn arg_list<'a>(args: &'a Args, name: &str) -> Result<&'a Vec<Value>, String> {
    let value = arg(args, name)?;
    value.as_array().ok_or_else(|| format!("Error: argument '{name}' must be an array, got {}", type_name(value)))
}

/// A numeric argument, with Python's int/float distinction.
pub fn arg_num(args: &Args, name: &str) -> Result<PyNum, String> {
    let value = arg(args, name)?;
    PyNum::from_value(value).ok_or_else(|| format!("Error: argument '{name}' must be a number, got {}", type_name(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use PyNum::{Float, Int};

    #[test]
    fn repr_matches_python() {
        // Expected values are Python 3.11's repr() of the same strings.
        assert_eq!(repr_str("2024-05-16"), "'2024-05-16'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr_str("tab\there\\"), "'tab\\there\\\\'");
        assert_eq!(repr_str("\u{7f}\u{1}é"), "'\\x7f\\x01é'");
        assert_eq!(repr_str("\u{a0}"), "'\\xa0'");
        assert_eq!(key_error("certificate_1"), "Error: 'certificate_1'");
    }

    #[test]
    fn numbers_print_and_sum_like_python() {
        assert_eq!(num_str(Int(150)), "150");
        assert_eq!(num_str(Float(150.0)), "150.0");
        assert_eq!(num_str(sum([]).unwrap()), "0");
        assert_eq!(num_str(sum([Int(1), Float(2.5), Int(3)]).unwrap()), "6.5");
        assert_eq!(num_str(sum([Float(0.1), Float(0.2), Float(0.3)]).unwrap()), "0.6000000000000001");
        assert!(num_eq(Int(121), Float(121.0)));
        assert!(!num_eq(Int((1 << 53) + 1), Float(9007199254740992.0)));
        assert!(!num_eq(Float(f64::NAN), Float(f64::NAN)));
    }

    #[test]
    fn argument_access_never_panics() {
        let args: Args = json!({"n": "x", "l": 3}).as_object().unwrap().clone();
        assert_eq!(arg(&args, "zz").unwrap_err(), "Error: missing argument 'zz'");
        assert_eq!(arg_list(&args, "l").unwrap_err(), "Error: argument 'l' must be an array, got an integer");
        assert_eq!(arg_num(&args, "n").unwrap_err(), "Error: argument 'n' must be a number, got a string");
    }
}
