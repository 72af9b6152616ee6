//! Structured output from the real SmolLM2 GGUF through the engine: schema constraints and
//! forced tool calls hold at temperature 1, where the unconstrained model rarely complies.

use apigen_mt::chat::tools::{parse, tool_choice_constraint, CallContext, ToolFormat};
use apigen_mt::chat::Message;
use apigen_mt::engine::loaded::{LoadOptions, LoadedModel};
use apigen_mt::engine::{Constraint, EngineHandle, FinishReason, Prompt, Request, SamplingParams};
use serde_json::{json, Value};

use crate::support::smollm2_dir;

fn smollm2() -> Option<EngineHandle> {
    let dir = smollm2_dir()?;
    let options = LoadOptions::from_env(true).expect("load options");
    let model = LoadedModel::load(dir.join("model-q4_1.gguf").to_str().expect("utf-8 path"), &options).expect("SmolLM2 loads");
    Some(apigen_mt::engine::start(model, apigen_mt::engine::EngineConfig::default()).expect("engine starts"))
}

fn sampled(seed: u64) -> SamplingParams {
    SamplingParams { temperature: 1.0, seed, ..SamplingParams::default() }
}

#[test]
fn smollm2_json_schema_output_validates_for_20_seeds() {
    let Some(engine) = smollm2() else { return };
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"enum": ["get_order_details", "cancel_pending_order"]},
            "arguments": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "pattern": "^#W\\d{7}$"}},
                "required": ["order_id"],
                "additionalProperties": false
            }
        },
        "required": ["name", "arguments"],
        "additionalProperties": false
    });
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let messages = vec![
        Message::system("Answer with a JSON tool call {\"name\": ..., \"arguments\": {\"order_id\": ...}}."),
        Message::user("Where is my order #W2378156?"),
    ];
    let unconstrained =
        engine.generate(Request::new(Prompt::chat(messages.clone())).sampling(sampled(0)).max_tokens(48)).expect("unconstrained request");
    eprintln!("unconstrained (seed 0): {:?}", unconstrained.text);
    for seed in 0..20 {
        let request = Request::new(Prompt::chat(messages.clone()))
            .sampling(sampled(seed))
            .max_tokens(64)
            .constraint(Constraint::JsonSchema(schema.clone()));
        let completion = engine.generate(request).expect("constrained request");
        eprintln!("constrained (seed {seed}): {}", completion.text);
        assert_eq!(completion.finish_reason, FinishReason::Constraint, "seed {seed}: {:?}", completion.text);
        let value: Value = serde_json::from_str(&completion.text).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(validator.is_valid(&value), "seed {seed}: {value}");
    }
}

#[test]
fn smollm2_required_tool_calls_parse_and_validate_for_20_seeds() {
    let Some(engine) = smollm2() else { return };
    let retail = apigen_mt::env::domain("retail").expect("retail domain");
    let tools: Vec<Value> =
        ["get_order_details", "cancel_pending_order"].iter().map(|name| retail.tool(name).expect("retail tool").openai_schema()).collect();
    let format = ToolFormat::from_name(&engine.info().tool_format).expect("known format");
    assert_eq!(format, ToolFormat::Generic, "SmolLM2's template has no tool support");
    let constraint = tool_choice_constraint("required", format, &tools).expect("grammar").expect("required constrains");
    let messages = vec![Message::user("Please cancel order #W2378156, I ordered it by mistake.")];
    for seed in 0..20 {
        let prompt = Prompt::Chat { messages: messages.clone(), tools: tools.clone(), add_generation_prompt: true, thinking: None };
        let request = Request::new(prompt).sampling(sampled(seed)).max_tokens(200).constraint(constraint.clone());
        let completion = engine.generate(request).expect("request");
        assert_eq!(completion.finish_reason, FinishReason::Constraint, "seed {seed}: {:?}", completion.text);
        let context = CallContext { tools: &tools, parallel: false, conversation_seed: "test", turn: seed as usize };
        let parsed = parse(format, &completion.text, &context).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(parsed.calls.len(), 1, "seed {seed}: {:?}", completion.text);
        let call = &parsed.calls[0];
        let tool = retail.tool(&call.name).unwrap_or_else(|| panic!("seed {seed}: unknown tool {}", call.name));
        apigen_mt::env::check_args(tool.name, &(tool.parameters)(), &call.arguments).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let validator = jsonschema::validator_for(&(tool.parameters)()).expect("tool schema");
        assert!(validator.is_valid(&Value::Object(call.arguments.clone())), "seed {seed}: {:?}", call.arguments);
    }
}
