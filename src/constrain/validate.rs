//! Checking finished text against a constraint, for backends that cannot enforce it while
//! generating (a server without grammar support).
//!
//! The check runs llguidance over the text's bytes, one token per byte, so it needs no model
//! tokenizer and accepts whatever tokenization the server used. JSON may carry blanks here: the
//! compact form is how this engine generates, not what valid output must look like.

use std::sync::{Arc, OnceLock};

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::ApproximateTokEnv;
use llguidance::{Matcher, ParserFactory};

use super::Constraint;

/// One parser factory over the byte vocabulary, built on first use.
fn factory() -> Result<&'static ParserFactory, String> {
    static FACTORY: OnceLock<Result<ParserFactory, String>> = OnceLock::new();
    FACTORY
        .get_or_init(|| {
            let env: llguidance::toktrie::TokEnv = Arc::new(ApproximateTokEnv::single_byte());
            let mut factory = ParserFactory::new_simple(&env).map_err(|e| format!("cannot set up llguidance: {e}"))?;
            factory.quiet();
            factory.limits_mut().verbose_errors = false;
            Ok(factory)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `Ok` when `text` is a complete sentence of `constraint`, else why not.
pub fn check(constraint: &Constraint, text: &str) -> Result<(), String> {
    let grammar = match constraint {
        Constraint::JsonSchema(schema) => TopLevelGrammar::from_json_schema(schema.clone()),
        Constraint::Regex(regex) => TopLevelGrammar::from_lark(format!("start: /{}/", llguidance::regex_to_lark(regex, "dw"))),
        Constraint::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
    };
    let parser = factory()?.create_parser(grammar).map_err(|e| format!("the constraint does not compile: {e:#}"))?;
    let mut matcher = Matcher::new(Ok(parser));
    let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
    let accepted = matcher.try_consume_tokens(&bytes).map_err(|e| format!("{e:#}"))?;
    if accepted < bytes.len() {
        let at: String = String::from_utf8_lossy(&text.as_bytes()[accepted..]).chars().take(40).collect();
        return Err(format!("the output leaves the constraint at byte {accepted}, before {at:?}"));
    }
    if !matcher.is_stopped() && !matcher.is_accepting().map_err(|e| format!("{e:#}"))? {
        return Err("the output ends before the constraint is complete".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_regex_and_lark_are_checked_whole() {
        let schema = Constraint::JsonSchema(json!({"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}));
        assert_eq!(check(&schema, r#"{"score": 7}"#), Ok(()));
        assert_eq!(check(&schema, "{\n  \"score\":7 }"), Ok(()));
        assert!(check(&schema, r#"{"score": "7"}"#).is_err());
        assert!(check(&schema, r#"{"score": 7"#).unwrap_err().contains("complete"));
        let regex = Constraint::Regex("[0-9]{3}".into());
        assert_eq!(check(&regex, "123"), Ok(()));
        assert!(check(&regex, "12a").is_err());
        let lark = Constraint::Lark("start: \"yes\" | \"no\"".into());
        assert_eq!(check(&lark, "no"), Ok(()));
        assert!(check(&lark, "maybe").is_err());
        assert!(check(&Constraint::Lark("start: (".into()), "x").unwrap_err().contains("compile"));
    }
}
