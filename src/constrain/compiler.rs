//! Turns a request's [`Constraint`] into a per-sequence matcher, against one model's vocabulary.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};

use super::sequence::SeqConstraint;
use super::vocab::ModelTokEnv;
use super::Constraint;
use crate::response::EngineError;

/// Compiles constraints for one model. Build it once per model (building the token trie and
/// llguidance's slicer for a 50k vocabulary takes a noticeable fraction of a second) and share it;
/// [`ConstraintCompiler::compile`] is cheap by comparison and takes `&self`.
pub struct ConstraintCompiler {
    factory: Arc<ParserFactory>,
    /// Tokens that end a sequence; returned as the only allowed tokens once a grammar is done.
    eos_token_ids: Arc<[u32]>,
}

impl ConstraintCompiler {
    /// Builds the compiler from the model's own tokenizer; `eos_token_ids` are the tokens that
    /// end generation (at least one).
    pub fn new(tokenizer: &tokenizers::Tokenizer, eos_token_ids: &[u32]) -> anyhow::Result<Self> {
        let env = ModelTokEnv::new(tokenizer, eos_token_ids)?;
        let tok_env: llguidance::toktrie::TokEnv = Arc::new(env);
        let mut factory =
            ParserFactory::new_simple(&tok_env).map_err(|e| anyhow::anyhow!("cannot set up llguidance for this vocabulary: {e}"))?;
        // Problems reach the caller as errors; llguidance's own stderr logging would only
        // interleave with the progress display.
        factory.quiet();
        // Keep step errors to a sentence: the verbose form embeds the whole parser state.
        factory.limits_mut().verbose_errors = false;
        Ok(Self { factory: Arc::new(factory), eos_token_ids: eos_token_ids.into() })
    }

    /// Vocabulary size the masks cover (logits beyond it are always disallowed).
    pub fn vocab_size(&self) -> usize {
        self.factory.tok_env().tok_trie().vocab_size()
    }

    /// Compiles `constraint` into a fresh matcher for one sequence.
    ///
    /// JSON schemas are compiled to compact JSON (no whitespace between tokens): a model that
    /// may emit blanks can spend its whole budget on them. Regexes use Rust `regex` syntax with
    /// ASCII `\d`/`\w`. An invalid schema, regex or grammar is refused with llguidance's own
    /// explanation.
    pub fn compile(&self, constraint: &Constraint) -> Result<SeqConstraint, EngineError> {
        let grammar = match constraint {
            Constraint::JsonSchema(schema) => TopLevelGrammar::from_json_schema(compact_json_schema(schema)?),
            // `\d` and `\w` mean ASCII, as in JSON Schema patterns: an id pattern should not
            // admit Devanagari or full-width digits.
            Constraint::Regex(regex) => TopLevelGrammar::from_lark(format!("start: /{}/", llguidance::regex_to_lark(regex, "dw"))),
            Constraint::Lark(grammar) => TopLevelGrammar::from_lark(grammar.clone()),
        };
        let parser = self.factory.create_parser(grammar).map_err(|e| EngineError::Constraint(format!("{e:#}")))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(error) = matcher.get_error() {
            return Err(EngineError::Constraint(error));
        }
        Ok(SeqConstraint::new(matcher, self.eos_token_ids.clone()))
    }
}

/// The schema with llguidance's top-level `x-guidance` options set for compact output. Other
/// options a caller put there are kept; the whitespace ones are ours to decide.
fn compact_json_schema(schema: &Value) -> Result<Value, EngineError> {
    let Value::Object(fields) = schema else {
        return Err(EngineError::Constraint(format!("a JSON schema must be a JSON object, not {schema}")));
    };
    let mut fields = fields.clone();
    let mut options = match fields.remove("x-guidance") {
        None => serde_json::Map::new(),
        Some(Value::Object(options)) => options,
        Some(other) => {
            return Err(EngineError::Constraint(format!("\"x-guidance\" must be an object, not {other}")));
        }
    };
    options.remove("whitespace_pattern");
    options.insert("whitespace_flexible".into(), json!(false));
    fields.insert("x-guidance".into(), Value::Object(options));
    Ok(Value::Object(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_schema_overrides_whitespace_but_keeps_other_options() {
        let schema = json!({
            "type": "object",
            "x-guidance": {"whitespace_pattern": " *", "whitespace_flexible": true, "lenient": true}
        });
        let out = compact_json_schema(&schema).unwrap();
        assert_eq!(out["x-guidance"], json!({"lenient": true, "whitespace_flexible": false}));
        assert_eq!(out["type"], "object");
    }

    #[test]
    fn non_object_schemas_are_refused_with_a_reason() {
        for bad in [json!(true), json!({"x-guidance": 3})] {
            let err = compact_json_schema(&bad).unwrap_err();
            assert!(matches!(&err, EngineError::Constraint(m) if m.contains("must be")), "{err}");
        }
    }
}
