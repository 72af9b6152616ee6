//! JSON text exactly as Python's `json.dumps` writes it.
//!
//! τ-bench's tools return `json.dumps(...)` strings, and chat templates call `tojson`, which
//! transformers maps to `json.dumps(ensure_ascii=False)`. Matching byte for byte needs Python's
//! separators, its float `repr`, and its escaping, none of which serde_json's writer shares.

use serde_json::Value;

/// The knobs of `json.dumps` that matter here.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Escape every non-ASCII character as `\uXXXX` (Python's default).
    pub ensure_ascii: bool,
    /// Pretty-print with this many spaces per level.
    pub indent: Option<usize>,
    pub sort_keys: bool,
    /// `(item_separator, key_separator)`; `None` means Python's default for the indent setting.
    pub separators: Option<(String, String)>,
}

impl Default for DumpOptions {
    fn default() -> Self {
        Self { ensure_ascii: true, indent: None, sort_keys: false, separators: None }
    }
}

/// `json.dumps(value)` with Python's defaults.
pub fn dumps(value: &Value) -> String {
    dumps_with(value, &DumpOptions::default())
}

/// `json.dumps(value, ...)` with the given options.
pub fn dumps_with(value: &Value, options: &DumpOptions) -> String {
    let (item_sep, key_sep) = match &options.separators {
        Some((i, k)) => (i.clone(), k.clone()),
        // Python drops the space after ',' when indenting, to avoid trailing blanks.
        None if options.indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let mut out = String::new();
    write_value(&mut out, value, options, &item_sep, &key_sep, 0);
    out
}

fn write_value(out: &mut String, value: &Value, o: &DumpOptions, item_sep: &str, key_sep: &str, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                out.push_str(&float_repr(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_string(out, s, o.ensure_ascii),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline_indent(out, o.indent, level + 1);
                write_value(out, item, o, item_sep, key_sep, level + 1);
            }
            newline_indent(out, o.indent, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if o.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline_indent(out, o.indent, level + 1);
                write_string(out, k, o.ensure_ascii);
                out.push_str(key_sep);
                write_value(out, v, o, item_sep, key_sep, level + 1);
            }
            newline_indent(out, o.indent, level);
            out.push('}');
        }
    }
}

fn newline_indent(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(width) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', width * level));
    }
}

fn write_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && !(' '..='~').contains(&c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in [-4, 16), otherwise in scientific notation such as `1e+16`.
/// `json.dumps` writes the non-finite values as `NaN`, `Infinity` and `-Infinity`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sign = if f < 0.0 { "-" } else { "" };
    let (digits, exp) = shortest_digits(f.abs());
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        let body = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if exp + 1 >= n {
            format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
        } else {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let mant = if n == 1 { digits.clone() } else { format!("{}.{}", &digits[..1], &digits[1..]) };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// The shortest decimal digits that read back as `x` (positive, finite), and the decimal
/// exponent of the first digit, chosen as CPython's `repr` (David Gay's `dtoa` mode 0) chooses
/// them. Rust's `{:e}` gives the same shortest length and the nearest such digits, but when the
/// value lies exactly halfway between two of them (675823202824074.25 between …074.2 and
/// …074.3) it rounds up, where Gay's code rounds to the even digit.
fn shortest_digits(x: f64) -> (String, i32) {
    let (digits, exp) = split_scientific(&format!("{x:e}"));
    tie_to_even(x, digits.len()).unwrap_or((digits, exp))
}

/// `"1.2345e-5"` → `("12345", -5)`.
fn split_scientific(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    (mantissa.chars().filter(char::is_ascii_digit).collect(), exp.parse().unwrap_or(0))
}

/// When `x` is exactly the midpoint of two `n`-digit decimals, the one whose last digit is
/// even, provided it still reads back as `x`.
fn tie_to_even(x: f64, n: usize) -> Option<(String, i32)> {
    // With n+1 significant digits a midpoint is written exactly and ends in 5.
    let (wide, exp) = split_scientific(&format!("{:.*e}", n, x));
    if wide.len() != n + 1 || !wide.ends_with('5') || !is_exact_decimal(x, n as i32 - exp) {
        return None;
    }
    let lower = &wide[..n];
    let odd = lower.bytes().last().is_some_and(|d| (d - b'0') % 2 == 1);
    let (mut digits, exp) = if odd { increment(lower, exp) } else { (lower.to_string(), exp) };
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let text = format!("{}.{}e{exp}", &digits[..1], &digits[1..]);
    (text.parse::<f64>().ok()? == x).then_some((digits, exp))
}

/// Adds one unit in the last place to a digit string (`"199"` → `"200"`, `"99"` → `"10"` with
/// the exponent raised).
fn increment(digits: &str, exp: i32) -> (String, i32) {
    let mut bytes = digits.as_bytes().to_vec();
    for b in bytes.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return (String::from_utf8_lossy(&bytes).into_owned(), exp);
        }
    }
    bytes.insert(0, b'1');
    bytes.pop();
    (String::from_utf8_lossy(&bytes).into_owned(), exp + 1)
}

/// Whether `x` (positive, finite) has a finite decimal expansion with at most `places` digits
/// after the point (`places` may be negative: a multiple of 10^-places). Writing
/// `x = m * 2^q` with `m` odd, `x * 10^k = m * 5^k * 2^(q+k)`.
fn is_exact_decimal(x: f64, places: i32) -> bool {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut m, mut q) = if biased == 0 { (fraction, -1074) } else { (fraction | (1u64 << 52), biased - 1075) };
    if m == 0 {
        return true;
    }
    while m % 2 == 0 {
        m /= 2;
        q += 1;
    }
    if places >= 0 {
        return q + places >= 0;
    }
    let j = -places;
    // m < 2^53 < 5^23, so only small powers of five can divide it.
    q >= j && j <= 22 && m % 5u64.pow(j as u32) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_ties_round_to_even_like_python() {
        // CPython: repr(675823202824074.25) == '675823202824074.2', and .75 gives '...074.8'.
        let big = 675823202824074.0;
        assert_eq!(float_repr(big + 0.25), "675823202824074.2");
        assert_eq!(float_repr(big + 0.75), "675823202824074.8");
        assert_eq!(float_repr(-(big + 1.25)), "-675823202824075.2");
        assert_eq!(float_repr(2f64.powi(53)), "9007199254740992.0");
        assert_eq!(float_repr(5e-324), "5e-324");
        assert!(is_exact_decimal(0.25, 2) && !is_exact_decimal(0.25, 1) && !is_exact_decimal(0.1, 30));
        assert!(is_exact_decimal(1500.0, -2) && !is_exact_decimal(1500.0, -3));
        assert_eq!(increment("199", 3), ("200".to_string(), 3));
        assert_eq!(increment("99", 3), ("10".to_string(), 4));
    }

    #[test]
    fn floats_match_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (1234.5, "1234.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1.2345e16, "1.2345e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5, "-2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-0.0, "-0.0"),
            (1e300, "1e+300"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "repr of {f:e}");
        }
    }

    #[test]
    fn default_dumps_matches_python() {
        let v = json!({"a": 1, "b": [1.0, "x\"y", null, true], "c": {}, "d": [], "é": "ü€😀\u{7f}"});
        assert_eq!(dumps(&v), r#"{"a": 1, "b": [1.0, "x\"y", null, true], "c": {}, "d": [], "\u00e9": "\u00fc\u20ac\ud83d\ude00\u007f"}"#);
    }

    #[test]
    fn indent_and_non_ascii_like_tojson() {
        let v = json!({"b": [1, {"x": "é"}], "a": 2});
        let o = DumpOptions { ensure_ascii: false, indent: Some(2), sort_keys: true, separators: None };
        assert_eq!(dumps_with(&v, &o), "{\n  \"a\": 2,\n  \"b\": [\n    1,\n    {\n      \"x\": \"é\"\n    }\n  ]\n}");
    }
}
