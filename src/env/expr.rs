//! Arithmetic expressions as Python evaluates them, for the `calculate` tool.
//!
//! τ-bench's calculator runs Python's `eval` on text made only of digits, `+ - * / ( ) .` and
//! spaces. Over that alphabet Python's grammar is small: int and float literals, unary `+`/`-`,
//! `+ - * / // **` with Python's precedence (`**` binds tighter than a unary minus on its left
//! and is right-associative), and parentheses. We parse the whole text first (a syntax error
//! wins over a runtime error, as in Python) and then evaluate left to right with
//! [`PyNum`]'s Python semantics.

use crate::pynum::PyNum;

/// Deeper nesting than this is refused (Python itself stops at 200 nested parentheses).
const MAX_DEPTH: usize = 100;
/// Longer expressions are refused, which bounds the depth of the tree that evaluation walks
/// (Python's compiler also gives up on very long operator chains).
const MAX_TOKENS: usize = 1000;

const SYNTAX: &str = "Error: invalid syntax in expression";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Num(PyNum),
    Plus,
    Minus,
    Star,
    Pow,
    Slash,
    FloorDiv,
    Open,
    Close,
}

#[derive(Debug)]
enum Expr {
    Num(PyNum),
    Neg(Box<Expr>),
    /// Unary plus: no effect on a number, kept for the shape of the tree.
    Pos(Box<Expr>),
    Bin(Box<Expr>, Token, Box<Expr>),
}

/// Evaluates `text` as Python would, returning the number or the error text for the agent.
pub fn eval(text: &str) -> Result<PyNum, String> {
    let tokens = tokenize(text)?;
    if tokens.len() > MAX_TOKENS {
        return Err("Error: expression too long".into());
    }
    let mut parser = Parser { tokens: &tokens, pos: 0, depth: 0 };
    let expr = parser.arith()?;
    if parser.pos != tokens.len() {
        return Err(SYNTAX.into());
    }
    evaluate(&expr)
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let (token, len) = match c {
            b' ' => {
                i += 1;
                continue;
            }
            b'0'..=b'9' | b'.' => number(&text[i..])?,
            b'+' => (Token::Plus, 1),
            b'-' => (Token::Minus, 1),
            b'(' => (Token::Open, 1),
            b')' => (Token::Close, 1),
            b'*' if bytes.get(i + 1) == Some(&b'*') => (Token::Pow, 2),
            b'*' => (Token::Star, 1),
            b'/' if bytes.get(i + 1) == Some(&b'/') => (Token::FloorDiv, 2),
            b'/' => (Token::Slash, 1),
            _ => return Err("Error: invalid characters in expression".into()),
        };
        tokens.push(token);
        i += len;
    }
    Ok(tokens)
}

/// One number literal at the start of `text`, and its length in bytes: `12`, `12.`, `12.5`
/// or `.5`. Python refuses leading zeros in a nonzero int literal (`012`), but not in a float.
fn number(text: &str) -> Result<(Token, usize), String> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let int_len = digits(text);
    let is_float = text.as_bytes().get(int_len) == Some(&b'.');
    if !is_float {
        let literal = &text[..int_len];
        if literal.starts_with('0') && literal.bytes().any(|b| b != b'0') {
            return Err(SYNTAX.into());
        }
        let value: i128 = literal.parse().map_err(|_| "Error: integer result too large".to_string())?;
        return Ok((Token::Num(PyNum::Int(value)), int_len));
    }
    let frac_len = digits(&text[int_len + 1..]);
    if int_len == 0 && frac_len == 0 {
        // A lone '.' is attribute access in Python: never valid here.
        return Err(SYNTAX.into());
    }
    let len = int_len + 1 + frac_len;
    let (int_part, frac_part) = (&text[..int_len], &text[int_len + 1..len]);
    let normalized = format!("{}.{}", if int_part.is_empty() { "0" } else { int_part }, if frac_part.is_empty() { "0" } else { frac_part });
    let value: f64 = normalized.parse().map_err(|_| SYNTAX.to_string())?;
    Ok((Token::Num(PyNum::Float(value)), len))
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.pos).copied()
    }

    fn descend(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("Error: expression nested too deeply".into());
        }
        Ok(())
    }

    /// arith := term (('+' | '-') term)*
    fn arith(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while let Some(op @ (Token::Plus | Token::Minus)) = self.peek() {
            self.pos += 1;
            left = Expr::Bin(Box::new(left), op, Box::new(self.term()?));
        }
        Ok(left)
    }

    /// term := factor (('*' | '/' | '//') factor)*
    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.factor()?;
        while let Some(op @ (Token::Star | Token::Slash | Token::FloorDiv)) = self.peek() {
            self.pos += 1;
            left = Expr::Bin(Box::new(left), op, Box::new(self.factor()?));
        }
        Ok(left)
    }

    /// factor := ('+' | '-') factor | power
    fn factor(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(op @ (Token::Plus | Token::Minus)) => {
                self.pos += 1;
                self.descend()?;
                let inner = Box::new(self.factor()?);
                self.depth -= 1;
                Ok(if op == Token::Minus { Expr::Neg(inner) } else { Expr::Pos(inner) })
            }
            _ => self.power(),
        }
    }

    /// power := primary ['**' factor]
    fn power(&mut self) -> Result<Expr, String> {
        let base = self.primary()?;
        if self.peek() != Some(Token::Pow) {
            return Ok(base);
        }
        self.pos += 1;
        self.descend()?;
        let exponent = self.factor()?;
        self.depth -= 1;
        Ok(Expr::Bin(Box::new(base), Token::Pow, Box::new(exponent)))
    }

    /// primary := NUMBER | '(' arith ')'
    fn primary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Token::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Token::Open) => {
                self.pos += 1;
                self.descend()?;
                let inner = self.arith()?;
                self.depth -= 1;
                if self.peek() != Some(Token::Close) {
                    return Err(SYNTAX.into());
                }
                self.pos += 1;
                Ok(inner)
            }
            _ => Err(SYNTAX.into()),
        }
    }
}

fn evaluate(expr: &Expr) -> Result<PyNum, String> {
    match expr {
        Expr::Num(n) => Ok(*n),
        Expr::Neg(inner) => evaluate(inner)?.checked_neg(),
        Expr::Pos(inner) => evaluate(inner),
        Expr::Bin(left, op, right) => {
            let (a, b) = (evaluate(left)?, evaluate(right)?);
            match op {
                Token::Plus => a.checked_add(b),
                Token::Minus => a.checked_sub(b),
                Token::Star => a.checked_mul(b),
                Token::Slash => a.true_div(b),
                Token::FloorDiv => a.floor_div(b),
                Token::Pow => a.pow(b),
                _ => Err(SYNTAX.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PyNum::{Float, Int};

    #[test]
    fn precedence_and_associativity_follow_python() {
        assert_eq!(eval("2 + 3 * 4").unwrap(), Int(14));
        assert_eq!(eval("-2**2").unwrap(), Int(-4));
        assert_eq!(eval("2**-1").unwrap(), Float(0.5));
        assert_eq!(eval("2**3**2").unwrap(), Int(512));
        assert_eq!(eval("(1 + 2) * 3").unwrap(), Int(9));
        assert_eq!(eval("7 // 2 * 2").unwrap(), Int(6));
        assert_eq!(eval("10 - 4 - 3").unwrap(), Int(3));
        assert_eq!(eval("--5").unwrap(), Int(5));
        assert_eq!(eval(" .5 + 5.").unwrap(), Float(5.5));
        assert_eq!(eval("00 + 007.5").unwrap(), Float(7.5));
    }

    #[test]
    fn syntax_errors_win_over_runtime_errors() {
        for bad in ["", "   ", "1 2", "01", "(1", "1)", "()", "2 * * 3", "1..2", ".", "1.2.3", "2***3", "2(3)"] {
            assert_eq!(eval(bad).unwrap_err(), SYNTAX, "{bad:?}");
        }
        assert_eq!(eval("1/0 + (").unwrap_err(), SYNTAX);
        assert_eq!(eval("1/0").unwrap_err(), "Error: division by zero");
        assert_eq!(eval("2 + x").unwrap_err(), "Error: invalid characters in expression");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep = format!("{}1{}", "(".repeat(150), ")".repeat(150));
        assert_eq!(eval(&deep).unwrap_err(), "Error: expression nested too deeply");
        let unary = format!("{}1", "-".repeat(500));
        assert_eq!(eval(&unary).unwrap_err(), "Error: expression nested too deeply");
        assert_eq!(eval(&format!("{}1{}", "(".repeat(50), ")".repeat(50))).unwrap(), Int(1));
        assert_eq!(eval(&"1+".repeat(5000)).unwrap_err(), "Error: expression too long");
        assert_eq!(eval(&format!("{}1", "1+".repeat(400))).unwrap(), Int(401));
    }
}
