//! The JSON Schema a blueprint is generated under, built from the sampled context.
//!
//! Tool names are limited to the sampled tools and the environment's identification tools,
//! each action's `kwargs` follow that tool's parameter schema, and every id-typed argument is
//! an enum of the ids the context makes valid. This grounding is what lets a small model write executable tasks: it
//! cannot invent an order number or name a variant that is out of stock.

use serde_json::{json, Map, Value};

use crate::env::Environment;
use crate::samplers::{Context, Ids};

/// Longest thought and instruction, in characters; keeps a constrained generation bounded.
const MAX_THOUGHT: usize = 300;
const MAX_INSTRUCTION: usize = 600;
const MAX_ACTIONS: usize = 5;
const MAX_OUTPUTS: usize = 3;

/// The blueprint schema for `context` in `env`. The tools that identify the user come first:
/// they are always offered, because the policy requires the user's identity to be confirmed
/// before their data is touched, and a walk may not start with one.
pub fn blueprint_schema(env: &dyn Environment, context: &Context) -> Value {
    let identify = &env.subjects().identify;
    let mut names: Vec<&str> = identify.iter().map(String::as_str).filter(|n| env.tool(n).is_some()).collect();
    for tool in &context.tools {
        if !names.contains(tool) {
            names.push(tool);
        }
    }
    let variants: Vec<Value> = names
        .iter()
        .filter_map(|n| env.tool(n))
        .map(|tool| {
            let mut params = tool.parameters.clone();
            restrict_ids(&mut params, &context.data.ids);
            json!({
                "type": "object",
                "properties": {"name": {"const": tool.name}, "kwargs": params},
                "required": ["name", "kwargs"],
                "additionalProperties": false
            })
        })
        .collect();
    json!({
        "type": "object",
        "properties": {
            "thought": {"type": "string", "minLength": 1, "maxLength": MAX_THOUGHT},
            "instruction": {"type": "string", "minLength": 1, "maxLength": MAX_INSTRUCTION},
            "actions": {"type": "array", "items": {"anyOf": variants}, "maxItems": MAX_ACTIONS},
            "outputs": {"type": "array", "items": {"type": "string", "pattern": "^[^,]{1,40}$"}, "maxItems": MAX_OUTPUTS}
        },
        "required": ["thought", "instruction", "actions", "outputs"],
        "additionalProperties": false
    })
}

/// The schema the generator answers under when the environment fixed the actions
/// (`actions = "sampled"`): the thought, the instruction, and outputs chosen among `choices`,
/// the values the executed writes revealed, so that an output is never invented.
pub fn writeup_schema(choices: &[String]) -> Value {
    let outputs = match choices {
        [] => json!({"type": "array", "maxItems": 0}),
        _ => json!({"type": "array", "items": {"enum": choices}, "maxItems": MAX_OUTPUTS.min(choices.len())}),
    };
    json!({
        "type": "object",
        "properties": {
            "thought": {"type": "string", "minLength": 1, "maxLength": MAX_THOUGHT},
            "instruction": {"type": "string", "minLength": 1, "maxLength": MAX_INSTRUCTION},
            "outputs": outputs
        },
        "required": ["thought", "instruction", "outputs"],
        "additionalProperties": false
    })
}

/// The schema the recombination writer answers under: one instruction, bounded like a
/// generated one.
pub fn instruction_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"instruction": {"type": "string", "minLength": 1, "maxLength": MAX_INSTRUCTION}},
        "required": ["instruction"],
        "additionalProperties": false
    })
}

/// The ids allowed for an argument called `name`, if it is id-typed and the context has any.
fn allowed<'a>(name: &str, ids: &'a Ids) -> Option<&'a [String]> {
    let list = ids.get(name);
    (!list.is_empty()).then_some(list)
}

/// Replaces every id-typed property (at any depth) by an enum of the allowed values, keeping
/// arrays arrays. Objects are closed so that the model cannot add arguments the tool rejects.
fn restrict_ids(schema: &mut Value, ids: &Ids) {
    let Some(obj) = schema.as_object_mut() else { return };
    if obj.get("type").and_then(Value::as_str) == Some("object") {
        obj.entry("additionalProperties").or_insert(Value::Bool(false));
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            match allowed(name, ids) {
                Some(values) => *prop = id_schema(prop, values),
                None => restrict_ids(prop, ids),
            }
        }
    }
    if let Some(items) = obj.get_mut("items") {
        restrict_ids(items, ids);
    }
}

fn id_schema(prop: &Value, values: &[String]) -> Value {
    let description = prop.get("description").cloned();
    let mut out = Map::new();
    if prop.get("type").and_then(Value::as_str) == Some("array") {
        out.insert("type".into(), json!("array"));
        out.insert("items".into(), json!({"enum": values}));
        out.insert("minItems".into(), json!(1));
    } else {
        out.insert("enum".into(), json!(values));
    }
    if let Some(d) = description {
        out.insert("description".into(), d);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{domain, generate::generate};
    use crate::samplers::{data, Context};

    #[test]
    fn schema_limits_tools_and_ids_to_the_context() {
        let retail = domain("retail").unwrap();
        let db = generate("retail", 1).unwrap();
        let data = data::sample(retail, &db, 4).unwrap();
        let ctx = Context {
            tools: vec!["get_order_details", "return_delivered_order_items"],
            policy: String::new(),
            data: data.clone(),
            persona: None,
            examples: vec![],
            sampled: None,
        };
        let schema = blueprint_schema(retail, &ctx);
        let variants = schema["properties"]["actions"]["items"]["anyOf"].as_array().unwrap();
        let names: Vec<&str> = variants.iter().map(|v| v["properties"]["name"]["const"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["find_user_id_by_email", "find_user_id_by_name_zip", "get_user_details", "get_order_details", "return_delivered_order_items"]
        );
        assert_eq!(variants[0]["properties"]["kwargs"]["properties"]["email"]["enum"], json!(data.ids.get("email")));
        let kwargs = &variants[4]["properties"]["kwargs"];
        assert_eq!(kwargs["properties"]["order_id"]["enum"], json!(data.ids.get("order_id")));
        assert_eq!(kwargs["properties"]["item_ids"]["items"]["enum"], json!(data.ids.get("item_ids")));
        assert_eq!(kwargs["additionalProperties"], false);

        let validator = jsonschema::validator_for(&schema).unwrap();
        let good = json!({"thought": "t", "instruction": "i", "outputs": ["12.50"], "actions": [
            {"name": "get_order_details", "kwargs": {"order_id": data.ids.get("order_id")[0]}}]});
        assert!(validator.is_valid(&good));
        let foreign = json!({"thought": "t", "instruction": "i", "outputs": [], "actions": [
            {"name": "get_order_details", "kwargs": {"order_id": "#W0000000"}}]});
        assert!(!validator.is_valid(&foreign));
        let comma = json!({"thought": "t", "instruction": "i", "outputs": ["1,000"], "actions": []});
        assert!(!validator.is_valid(&comma));
    }
}
