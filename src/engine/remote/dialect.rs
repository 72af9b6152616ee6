//! What each server calls the parameters a request needs: sampling, constraints, token ids.
//!
//! Every sampling parameter is sent explicitly, disabled ones included: llama-server turns on
//! top-k 40 and min-p 0.05 by default, and vLLM takes defaults from the model's
//! `generation_config.json`, so leaving a parameter out would change how the role samples.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::config::server::{Api, Flavor};
use crate::engine::{Constraint, SamplingParams};

/// One server's dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub flavor: Flavor,
    /// Whether the server takes this crate's Lark grammars (llguidance's dialect): `apigen-mt
    /// serve` always, vLLM through its `guidance` backend, llama-server when built with
    /// llguidance (probed at start).
    pub lark: bool,
}

impl Dialect {
    pub fn new(flavor: Flavor) -> Self {
        Self { flavor, lark: matches!(flavor, Flavor::ApigenMt | Flavor::Vllm) }
    }

    /// Refuses sampling this server cannot take; the message names the parameter.
    pub fn check_sampling(&self, s: &SamplingParams) -> Result<()> {
        if self.flavor == Flavor::Openai {
            for (name, set) in [("top_k", s.top_k != 0), ("min_p", s.min_p != 0.0), ("repeat_penalty", s.repeat_penalty != 1.0)] {
                if set {
                    bail!(
                        "{name} is not an OpenAI parameter and this server ({}) takes no extra ones; \
                         leave it at its default, or set `flavor` if the server is vllm, sglang or llama-server",
                        self.flavor.name()
                    );
                }
            }
        }
        Ok(())
    }

    /// Adds the sampling parameters to a request body.
    pub fn sampling(&self, body: &mut Map<String, Value>, s: &SamplingParams) {
        body.insert("temperature".into(), json!(s.temperature));
        body.insert("top_p".into(), json!(s.top_p));
        match self.flavor {
            Flavor::ApigenMt => {
                body.insert("seed".into(), json!(s.seed));
                body.insert("top_k".into(), json!(s.top_k));
                body.insert("min_p".into(), json!(s.min_p));
                body.insert("repeat_penalty".into(), json!(s.repeat_penalty));
                body.insert("repeat_last_n".into(), json!(s.repeat_last_n));
            }
            Flavor::Vllm | Flavor::Sglang => {
                // Both take the seed as a signed 64-bit integer: the same bits, reinterpreted.
                body.insert("seed".into(), json!(s.seed as i64));
                body.insert("top_k".into(), json!(if s.top_k == 0 { -1 } else { s.top_k as i64 }));
                body.insert("min_p".into(), json!(s.min_p));
                // The penalty covers the whole sequence there, not the last `repeat_last_n` tokens.
                body.insert("repetition_penalty".into(), json!(s.repeat_penalty));
            }
            Flavor::LlamaServer => {
                // llama-server keeps a 32-bit seed.
                body.insert("seed".into(), json!(s.seed & 0x7fff_ffff));
                body.insert("top_k".into(), json!(s.top_k));
                body.insert("min_p".into(), json!(s.min_p));
                body.insert("repeat_penalty".into(), json!(s.repeat_penalty));
                body.insert("repeat_last_n".into(), json!(s.repeat_last_n));
            }
            Flavor::Openai => {
                body.insert("seed".into(), json!(s.seed as i64));
            }
        }
    }

    /// Adds `constraint` to a request body for `api`; `false` when this server cannot enforce it
    /// (the caller then validates the output instead). `tools` says whether the chat request
    /// offers tools, whose calls the chat API enforces with `tool_choice` instead of a grammar.
    pub fn constraint(&self, body: &mut Map<String, Value>, constraint: &Constraint, api: Api, tools: bool) -> bool {
        if api == Api::Chat {
            match constraint {
                Constraint::JsonSchema(schema) => {
                    body.insert(
                        "response_format".into(),
                        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}}),
                    );
                    return true;
                }
                // This crate's grammars on a chat prompt with tools are the tool-call grammar.
                Constraint::Lark(_) if tools => {
                    body.insert("tool_choice".into(), json!("auto"));
                    return true;
                }
                _ => {}
            }
        }
        match (self.flavor, constraint) {
            (Flavor::ApigenMt | Flavor::Vllm, Constraint::JsonSchema(schema)) => {
                body.insert("structured_outputs".into(), json!({"json": schema}));
            }
            (Flavor::ApigenMt | Flavor::Vllm, Constraint::Regex(regex)) => {
                body.insert("structured_outputs".into(), json!({"regex": regex}));
            }
            (Flavor::ApigenMt | Flavor::Vllm, Constraint::Lark(lark)) if self.lark => {
                body.insert("structured_outputs".into(), json!({"grammar": lark}));
            }
            (Flavor::Sglang, Constraint::JsonSchema(schema)) => {
                body.insert("json_schema".into(), json!(schema.to_string()));
            }
            (Flavor::Sglang, Constraint::Regex(regex)) => {
                body.insert("regex".into(), json!(regex));
            }
            (Flavor::LlamaServer, Constraint::JsonSchema(schema)) => {
                body.insert("json_schema".into(), schema.clone());
            }
            (Flavor::LlamaServer, Constraint::Lark(lark)) if self.lark => {
                body.insert("grammar".into(), json!(format!("%llguidance {{}}\n{lark}")));
            }
            (Flavor::LlamaServer, Constraint::Regex(regex)) if self.lark => {
                let lark = format!("start: /{}/", llguidance::regex_to_lark(regex, "dw"));
                body.insert("grammar".into(), json!(format!("%llguidance {{}}\n{lark}")));
            }
            _ => return false,
        }
        true
    }

    /// Asks for the generated token ids where the server can return them.
    pub fn ask_token_ids(&self, body: &mut Map<String, Value>) {
        match self.flavor {
            Flavor::ApigenMt | Flavor::Vllm => {
                body.insert("return_token_ids".into(), json!(true));
            }
            Flavor::LlamaServer => {
                body.insert("return_tokens".into(), json!(true));
            }
            Flavor::Sglang | Flavor::Openai => {}
        }
    }

    /// The generated token ids in a completion choice, where the server returned them.
    pub fn token_ids(&self, choice: &Value) -> Option<Vec<u32>> {
        let ids = choice.get("token_ids").or_else(|| choice.get("tokens"))?.as_array()?;
        ids.iter().map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok())).collect()
    }

    /// A grammar that tells whether llama-server takes llguidance grammars.
    pub fn lark_probe() -> Value {
        json!("%llguidance {}\nstart: \"a\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(dialect: Dialect, constraint: &Constraint, api: Api) -> (bool, Value) {
        let mut map = Map::new();
        let ok = dialect.constraint(&mut map, constraint, api, false);
        (ok, Value::Object(map))
    }

    #[test]
    fn disabled_samplers_are_sent_in_each_dialect() {
        let s = SamplingParams { seed: u64::MAX, ..SamplingParams::greedy() };
        let mut vllm = Map::new();
        Dialect::new(Flavor::Vllm).sampling(&mut vllm, &s);
        assert_eq!((vllm["top_k"].clone(), vllm["seed"].clone(), vllm["repetition_penalty"].clone()), (json!(-1), json!(-1), json!(1.0)));
        let mut llama = Map::new();
        Dialect::new(Flavor::LlamaServer).sampling(&mut llama, &s);
        assert_eq!((llama["top_k"].clone(), llama["min_p"].clone(), llama["seed"].clone()), (json!(0), json!(0.0), json!(0x7fff_ffffu64)));
        let openai = Dialect::new(Flavor::Openai);
        assert!(openai.check_sampling(&s).is_ok());
        let err = openai.check_sampling(&SamplingParams { top_k: 20, ..s }).unwrap_err().to_string();
        assert!(err.contains("top_k"), "{err}");
    }

    #[test]
    fn constraints_map_or_fall_back_to_validation() {
        let schema = Constraint::JsonSchema(json!({"type": "object"}));
        let lark = Constraint::Lark("start: \"a\"".into());
        assert_eq!(body(Dialect::new(Flavor::Vllm), &schema, Api::Completions).1["structured_outputs"]["json"], json!({"type": "object"}));
        assert_eq!(body(Dialect::new(Flavor::Sglang), &schema, Api::Completions).1["json_schema"], json!("{\"type\":\"object\"}"));
        assert!(!body(Dialect::new(Flavor::Sglang), &lark, Api::Completions).0);
        assert!(!body(Dialect::new(Flavor::LlamaServer), &lark, Api::Completions).0);
        let llama = Dialect { flavor: Flavor::LlamaServer, lark: true };
        assert!(body(llama, &lark, Api::Completions).1["grammar"].as_str().unwrap().starts_with("%llguidance {}\n"));
        assert!(!body(Dialect::new(Flavor::Openai), &schema, Api::Completions).0);
        assert_eq!(body(Dialect::new(Flavor::Openai), &schema, Api::Chat).1["response_format"]["type"], "json_schema");
    }
}
