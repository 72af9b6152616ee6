//! Tools that every domain offers unchanged: `think`, `calculate`, `transfer_to_human_agents`.

use serde_json::{json, Value};

use super::lookup::arg_str;
use super::{expr, Args, Db, Tool, ToolKind, ToolResult};
use crate::pynum::{float_str, PyNum};

/// Lets the agent write down its reasoning; the observation is always empty.
pub const THINK: Tool = Tool {
    name: "think",
    kind: ToolKind::Think,
    description: "Write down a private line of reasoning before acting, for example to plan several steps \
                  or to check a policy rule. Nothing is looked up and nothing in the database changes.",
    parameters: think_parameters,
    run: think,
};

fn think_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "thought": {"type": "string", "description": "The reasoning to record."}
        },
        "required": ["thought"]
    })
}

fn think(_db: &mut Db, args: &Args) -> ToolResult {
    arg_str(args, "thought")?;
    Ok(String::new())
}

/// Evaluates arithmetic exactly as τ-bench does: Python's `eval` over digits, `+ - * / ( ) .`
/// and spaces, then `str(round(float(result), 2))`.
///
/// Errors: `Error: invalid characters in expression` (τ-bench's own check). Where Python would
/// raise, the text is `Error: ` and Python's message for division by zero, zero to a negative
/// power, a complex result and float overflow in `**`; our own texts are
/// `Error: invalid syntax in expression`, `Error: integer result too large` (ints beyond
/// 128 bits, which Python would still compute), `Error: expression nested too deeply` and
/// `Error: expression too long`.
pub const CALCULATE: Tool = Tool {
    name: "calculate",
    kind: ToolKind::Read,
    description: "Evaluate an arithmetic expression and get the result rounded to two decimals. \
                  Use it for totals, refunds and price differences instead of doing the arithmetic yourself.",
    parameters: calculate_parameters,
    run: calculate,
};

fn calculate_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "expression": {
                "type": "string",
                "description": "Arithmetic using numbers, + - * /, parentheses and spaces, e.g. '(19.99 + 5) * 2'."
            }
        },
        "required": ["expression"]
    })
}

fn calculate(_db: &mut Db, args: &Args) -> ToolResult {
    let expression = arg_str(args, "expression")?;
    if !expression.chars().all(|c| "0123456789+-*/(). ".contains(c)) {
        return Err("Error: invalid characters in expression".into());
    }
    let value = expr::eval(expression)?;
    Ok(float_str(PyNum::Float(value.to_f64()).round2().to_f64()))
}

/// Hands the conversation to a person; ends the episode.
pub const TRANSFER_TO_HUMAN_AGENTS: Tool = Tool {
    name: "transfer_to_human_agents",
    kind: ToolKind::Terminate,
    description: "Hand the customer over to a human agent, with a short summary of their request. \
                  Do this only when the customer asks for a person, or when the request is outside \
                  what the policy and the other tools allow.",
    parameters: transfer_parameters,
    run: transfer,
};

fn transfer_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "What the customer needs and what has been done so far."}
        },
        "required": ["summary"]
    })
}

fn transfer(_db: &mut Db, args: &Args) -> ToolResult {
    arg_str(args, "summary")?;
    Ok("Transfer successful".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(tool: &Tool, args: Value) -> ToolResult {
        let args = args.as_object().cloned().unwrap_or_default();
        tool.call(&mut Db::new(), &args)
    }

    #[test]
    fn think_and_transfer_have_fixed_observations() {
        assert_eq!(call(&THINK, json!({"thought": "check the policy"})).unwrap(), "");
        assert_eq!(call(&TRANSFER_TO_HUMAN_AGENTS, json!({"summary": "wants a refund"})).unwrap(), "Transfer successful");
        assert!(call(&THINK, json!({})).unwrap_err().starts_with("Error: "));
    }

    #[test]
    fn calculate_matches_python() {
        // Expected strings are CPython 3.11's `str(round(float(eval(e)), 2))`.
        let cases = [
            ("2 + 2", "4.0"),
            ("10 / 3", "3.33"),
            ("0.1 + 0.2", "0.3"),
            ("2.675 * 1", "2.67"),
            ("-2**2", "-4.0"),
            ("1e300", "Error: invalid characters in expression"),
            ("10.0 ** 400", "Error: (34, 'Numerical result out of range')"),
            ("1 / 0", "Error: division by zero"),
            ("1.5 / 0", "Error: float division by zero"),
            ("99999999999999999999 * 10", "1e+21"),
            ("1e", "Error: invalid characters in expression"),
            ("0 - 0.001", "-0.0"),
            ("(-8) ** 0.5", "Error: float() argument must be a string or a real number, not 'complex'"),
            ("10 ** 20 / 7", "1.4285714285714287e+19"),
        ];
        for (e, want) in cases {
            let got = call(&CALCULATE, json!({"expression": e}));
            assert_eq!(got.unwrap_or_else(|e| e), want, "{e}");
        }
    }
}
