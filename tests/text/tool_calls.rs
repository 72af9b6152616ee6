//! Tool calls per model family: a model-style completion parses into calls, the calls and
//! their results render back through the family's template for several turns, what the
//! template renders parses back to the same calls, and malformed output gives its error.

use std::path::PathBuf;

use apigen_mt::chat::tools::{call_grammar, call_id, parse, CallContext, ToolCallError, ToolFormat};
use apigen_mt::chat::{ChatTemplate, Message, ToolCall};
use serde_json::{json, Value};

fn tools() -> Vec<Value> {
    vec![
        json!({"type": "function", "function": {"name": "find_order", "description": "Look up an order.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}),
        json!({"type": "function", "function": {"name": "cancel", "description": "Cancel an order.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["order_id", "reason"]}}}),
    ]
}

/// A family's test template, its end-of-turn text, and completions as its models write them:
/// one call, and two calls.
struct Family {
    format: ToolFormat,
    template: ChatTemplate,
    end_of_turn: &'static str,
    one_call: &'static str,
    two_calls: &'static str,
}

fn fixture_template(name: &str, bos: &str, eos: &str) -> ChatTemplate {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/templates")).join(format!("{name}.jinja"));
    ChatTemplate::from_jinja_file(&path, bos, eos).unwrap()
}

/// ChatML with no tool support, as SmolLM2's template.
fn chatml_without_tools() -> ChatTemplate {
    let source = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}\
                  {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    ChatTemplate::new("inline chatml", vec![("default".into(), source.into())], "", "<|im_end|>").unwrap()
}

fn families() -> Vec<Family> {
    vec![
        Family {
            format: ToolFormat::Hermes,
            template: fixture_template("hermes", "<|endoftext|>", "<|im_end|>"),
            end_of_turn: "<|im_end|>\n",
            one_call: "Let me check.\n<tool_call>\n{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1\"}}\n</tool_call>",
            two_calls: "<tool_call>\n{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1\"}}\n</tool_call>\n\
                        <tool_call>\n{\"name\": \"cancel\", \"arguments\": {\"order_id\": \"#W1\", \"reason\": \"no \\\"rush\\\"\"}}\n</tool_call>",
        },
        Family {
            format: ToolFormat::Llama3,
            template: fixture_template("llama3", "<|begin_of_text|>", "<|eot_id|>"),
            end_of_turn: "<|eot_id|>",
            one_call: "{\"name\": \"find_order\", \"parameters\": {\"order_id\": \"#W1\"}}",
            two_calls: "<|python_tag|>{\"name\": \"find_order\", \"parameters\": {\"order_id\": \"#W1\"}}; \
                        {\"name\": \"cancel\", \"parameters\": {\"order_id\": \"#W1\", \"reason\": \"no \\\"rush\\\"\"}}",
        },
        Family {
            format: ToolFormat::Xlam,
            template: fixture_template("xlam", "<|begin_of_text|>", "<|eot_id|>"),
            end_of_turn: "<|eot_id|>",
            one_call: "[{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1\"}}]",
            two_calls: "[{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1\"}}, \
                        {\"name\": \"cancel\", \"arguments\": {\"order_id\": \"#W1\", \"reason\": \"no \\\"rush\\\"\"}}]",
        },
        Family {
            format: ToolFormat::Mistral,
            template: fixture_template("mistral", "<s>", "</s>"),
            end_of_turn: "</s>",
            one_call: "[TOOL_CALLS] [{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1\"}}]",
            two_calls: "[TOOL_CALLS] [{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1\"}, \"id\": \"abcdefghi\"}, \
                        {\"name\": \"cancel\", \"arguments\": {\"order_id\": \"#W1\", \"reason\": \"no \\\"rush\\\"\"}}]",
        },
        Family {
            format: ToolFormat::Generic,
            template: chatml_without_tools(),
            end_of_turn: "<|im_end|>\n",
            one_call: "Let me check.\n<tool_call>{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1\"}}</tool_call>",
            two_calls: "<tool_call>{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1\"}}</tool_call>\n\
                        <tool_call>{\"name\": \"cancel\", \"arguments\": {\"order_id\": \"#W1\", \"reason\": \"no \\\"rush\\\"\"}}</tool_call>",
        },
    ]
}

fn context<'a>(tools: &'a [Value], turn: usize, parallel: bool) -> CallContext<'a> {
    CallContext { tools, parallel, conversation_seed: "conv-7", turn }
}

/// The text a template adds for `message` after `history`: what the model would have written.
fn rendered_turn(family: &Family, history: &[Message], message: &Message, tools: &[Value]) -> String {
    let prefix = family.template.render(history, tools, true).unwrap();
    let mut with = history.to_vec();
    with.push(message.clone());
    let full = family.template.render(&with, tools, false).unwrap();
    let turn = full.strip_prefix(prefix.as_str()).unwrap_or_else(|| panic!("{:?}: prefix changed:\n{prefix}\n---\n{full}", family.format));
    turn.strip_suffix(family.end_of_turn).unwrap_or_else(|| panic!("{:?}: no end of turn in {turn:?}", family.format)).to_string()
}

#[test]
fn detected_from_the_template() {
    for family in families() {
        assert_eq!(ToolFormat::detect(&family.template, None).unwrap(), family.format);
        assert_eq!(ToolFormat::detect(&family.template, Some("xlam")).unwrap(), ToolFormat::Xlam);
    }
    assert!(ToolFormat::detect(&chatml_without_tools(), Some("qwen")).is_err());
}

#[test]
fn conversations_continue_for_several_turns_and_round_trip() {
    let tools = tools();
    for family in families() {
        // Mistral's template moves the system prompt into the last user turn, so earlier turns
        // render differently as the conversation grows; its conversation has none.
        let mut history = vec![Message::system("You are a store agent."), Message::user("Cancel order #W1, I do not need it.")];
        if family.format == ToolFormat::Mistral {
            history.remove(0);
        }
        for turn in 0..3 {
            // Llama 3 templates take one call per turn.
            let completion = if family.format.parallel_calls() && turn != 1 { family.two_calls } else { family.one_call };
            let parsed = parse(family.format, completion, &context(&tools, turn, true))
                .unwrap_or_else(|e| panic!("{:?} turn {turn}: {e}", family.format));
            assert_eq!(parsed.calls[0].name, "find_order");
            assert_eq!(parsed.calls[0].arguments["order_id"], "#W1");
            assert_eq!(parsed.calls[0].id, call_id(family.format, "conv-7", turn, 0));
            if parsed.calls.len() == 2 {
                assert_eq!(parsed.calls[1].arguments["reason"], "no \"rush\"");
            }
            let message = parsed.clone().into_message();

            // What the template renders for the call parses back to the same calls.
            let shown = rendered_turn(&family, &history, &message, &tools);
            let reparsed = parse(family.format, &shown, &context(&tools, turn, true))
                .unwrap_or_else(|e| panic!("{:?} turn {turn}: {e} in {shown:?}", family.format));
            assert_eq!(reparsed.calls, parsed.calls, "{:?} turn {turn}: {shown:?}", family.format);

            history.push(message);
            for call in &parsed.calls {
                history.push(Message::tool_result(call, format!("status at turn {turn}: ok")));
            }
            if turn == 1 {
                history.push(Message::assistant("Anything else?"));
                history.push(Message::user("Yes, check it again."));
            }
        }
        let prompt = family.template.render(&history, &tools, true).unwrap();
        // Every result made it into the prompt.
        assert_eq!(prompt.matches("turn 2: ok").count(), if family.format.parallel_calls() { 2 } else { 1 }, "{prompt}");
        assert!(prompt.contains("turn 0: ok"), "{:?}: {prompt}", family.format);
    }
}

#[test]
fn plain_answers_have_no_calls() {
    let tools = tools();
    for family in families() {
        let parsed = parse(family.format, "  Your order shipped on Monday.\n", &context(&tools, 0, true)).unwrap();
        assert_eq!(parsed.text, "Your order shipped on Monday.");
        assert!(parsed.calls.is_empty());
    }
}

#[test]
fn malformed_calls_give_their_errors() {
    let tools = tools();
    let ctx = context(&tools, 0, true);
    type Expect = fn(&ToolCallError) -> bool;
    let cases: Vec<(ToolFormat, &str, Expect)> = vec![
        // Truncated JSON.
        (ToolFormat::Hermes, "<tool_call>\n{\"name\": \"find_order\", \"arguments\": {\"order_", |e| {
            matches!(e, ToolCallError::Truncated(_))
        }),
        (ToolFormat::Llama3, "{\"name\": \"find_order\", \"parameters\": {", |e| matches!(e, ToolCallError::Truncated(_))),
        (ToolFormat::Xlam, "[{\"name\": \"find_order\"", |e| matches!(e, ToolCallError::Truncated(_))),
        (ToolFormat::Mistral, "[TOOL_CALLS] [{\"name\": ", |e| matches!(e, ToolCallError::Truncated(_))),
        (ToolFormat::Generic, "<tool_call>{\"name\": \"find_order\"</tool_call>", |e| matches!(e, ToolCallError::Truncated(_))),
        // Unknown tool.
        (
            ToolFormat::Hermes,
            "<tool_call>{\"name\": \"refund\", \"arguments\": {}}</tool_call>",
            |e| matches!(e, ToolCallError::UnknownTool { name, known } if name == "refund" && known == "find_order, cancel"),
        ),
        (ToolFormat::Llama3, "{\"name\": \"refund\", \"parameters\": {}}", |e| matches!(e, ToolCallError::UnknownTool { .. })),
        (ToolFormat::Xlam, "[{\"name\": \"refund\", \"arguments\": {}}]", |e| matches!(e, ToolCallError::UnknownTool { .. })),
        (ToolFormat::Mistral, "[TOOL_CALLS] [{\"name\": \"refund\", \"arguments\": {}}]", |e| {
            matches!(e, ToolCallError::UnknownTool { .. })
        }),
        // Extra prose after the call.
        (
            ToolFormat::Hermes,
            "<tool_call>{\"name\": \"cancel\", \"arguments\": {}}</tool_call> I hope that helps!",
            |e| matches!(e, ToolCallError::TrailingText(t) if t == "I hope that helps!"),
        ),
        (ToolFormat::Llama3, "{\"name\": \"cancel\", \"parameters\": {}} and done", |e| matches!(e, ToolCallError::TrailingText(_))),
        (ToolFormat::Xlam, "[{\"name\": \"cancel\", \"arguments\": {}}]\nDone.", |e| matches!(e, ToolCallError::TrailingText(_))),
        (ToolFormat::Mistral, "[TOOL_CALLS] [{\"name\": \"cancel\", \"arguments\": {}}] ok", |e| {
            matches!(e, ToolCallError::TrailingText(_))
        }),
        (ToolFormat::Generic, "<tool_call>{\"name\": \"cancel\", \"arguments\": {}}</tool_call>\nThen I will", |e| {
            matches!(e, ToolCallError::TrailingText(_))
        }),
        // Unescaped nested quotes.
        (ToolFormat::Hermes, "<tool_call>{\"name\": \"cancel\", \"arguments\": {\"reason\": \"say \"no\"\"}}</tool_call>", |e| {
            matches!(e, ToolCallError::InvalidJson { .. })
        }),
        (ToolFormat::Llama3, "{\"name\": \"cancel\", \"parameters\": {\"reason\": \"say \"no\"\"}}", |e| {
            matches!(e, ToolCallError::InvalidJson { .. })
        }),
        (ToolFormat::Mistral, "[TOOL_CALLS] [{\"name\": \"cancel\", \"arguments\": {\"reason\": \"a \"b\"\"}}]", |e| {
            matches!(e, ToolCallError::InvalidJson { .. })
        }),
        // Several calls where one is expected: Llama 3 always.
        (ToolFormat::Llama3, "<|python_tag|>{\"name\": \"cancel\", \"parameters\": {}}; {\"name\": \"cancel\", \"parameters\": {}}", |e| {
            matches!(e, ToolCallError::TooManyCalls { found: 2 })
        }),
        // Wrong shapes.
        (ToolFormat::Xlam, "[]", |e| matches!(e, ToolCallError::Shape { .. })),
        (ToolFormat::Xlam, "[\"find_order\"]", |e| matches!(e, ToolCallError::Shape { .. })),
        (ToolFormat::Hermes, "<tool_call>{\"name\": \"cancel\", \"arguments\": [1]}</tool_call>", |e| {
            matches!(e, ToolCallError::Shape { .. })
        }),
        (ToolFormat::Generic, "<tool_call>{\"arguments\": {}}</tool_call>", |e| matches!(e, ToolCallError::Shape { .. })),
        (ToolFormat::Mistral, "[TOOL_CALLS] {\"name\": \"cancel\"}", |e| matches!(e, ToolCallError::Shape { .. })),
    ];
    for (format, completion, expected) in cases {
        match parse(format, completion, &ctx) {
            Err(e) => assert!(expected(&e), "{format:?} {completion:?}: unexpected error {e:?}"),
            Ok(parsed) => panic!("{format:?} {completion:?} parsed as {parsed:?}"),
        }
    }
    // Parallel calls refused by the caller, in every format that has them.
    for family in families() {
        let err = parse(family.format, family.two_calls, &context(&tools, 0, false)).unwrap_err();
        assert_eq!(err, ToolCallError::TooManyCalls { found: 2 }, "{:?}", family.format);
        assert!(err.to_string().contains("at most one"));
    }
}

#[test]
fn lenient_where_the_intent_is_clear() {
    let tools = tools();
    let ctx = context(&tools, 4, true);
    // Generation stopped on the closing tag.
    let p =
        parse(ToolFormat::Hermes, "<tool_call>\n{\"name\": \"cancel\", \"arguments\": {\"order_id\": \"1\", \"reason\": \"x\"}}\n", &ctx)
            .unwrap();
    assert_eq!(p.calls.len(), 1);
    // Arguments quoted as a JSON string, as the OpenAI API writes them.
    let p = parse(ToolFormat::Xlam, "[{\"name\": \"find_order\", \"arguments\": \"{\\\"order_id\\\": \\\"7\\\"}\"}]", &ctx).unwrap();
    assert_eq!(p.calls[0].arguments["order_id"], "7");
    // Mistral's marker decoded away.
    let p = parse(ToolFormat::Mistral, "[{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"7\"}}]", &ctx).unwrap();
    assert_eq!(p.calls[0].id.len(), 9);
    assert!(p.calls[0].id.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn call_ids_are_deterministic_and_distinct() {
    let a = call_id(ToolFormat::Hermes, "seed", 3, 0);
    assert_eq!(a, call_id(ToolFormat::Hermes, "seed", 3, 0));
    assert!(a.starts_with("call_") && a.len() == 29, "{a}");
    let others = [
        call_id(ToolFormat::Hermes, "seed", 3, 1),
        call_id(ToolFormat::Hermes, "seed", 4, 0),
        call_id(ToolFormat::Hermes, "seeds", 3, 0),
        call_id(ToolFormat::Llama3, "seed", 3, 0),
    ];
    assert!(others.iter().all(|o| *o != a));
    let m = call_id(ToolFormat::Mistral, "seed", 0, 0);
    assert_eq!(m.len(), 9);
}

#[test]
fn grammar_schemas_accept_rendered_calls_and_reject_others() {
    let tools = tools();
    let call = ToolCall {
        id: String::new(),
        name: "cancel".into(),
        arguments: json!({"order_id": "#W1", "reason": "late"}).as_object().cloned().unwrap(),
    };
    for format in ToolFormat::ALL {
        let g = call_grammar(format, &tools).unwrap();
        let key = if format == ToolFormat::Llama3 { "parameters" } else { "arguments" };
        let one = json!({"name": call.name, key: call.arguments});
        let wrong_name = json!({"name": "refund", key: call.arguments});
        let missing_arg = json!({"name": "cancel", key: {"order_id": "#W1"}});
        let wrap = |v: Value| if g.schema["type"] == "array" { json!([v]) } else { v };
        let validator = jsonschema::validator_for(&g.schema).unwrap();
        assert!(validator.is_valid(&wrap(one.clone())), "{format:?}");
        assert!(!validator.is_valid(&wrap(wrong_name)), "{format:?}");
        assert!(!validator.is_valid(&wrap(missing_arg)), "{format:?}");
        // The trigger and close frame a call the parser accepts.
        let body = apigen_mt::pyjson::dumps_with(&wrap(one), &apigen_mt::pyjson::DumpOptions { ensure_ascii: false, ..Default::default() });
        let text = if g.trigger_in_json { format!("{body}{}", g.close) } else { format!("{}{body}{}", g.trigger, g.close) };
        assert!(body.starts_with(&g.trigger) || !g.trigger_in_json);
        let parsed = parse(format, &text, &context(&tools, 0, true)).unwrap();
        assert_eq!(parsed.calls[0].arguments, call.arguments, "{format:?}");
    }
    assert!(call_grammar(ToolFormat::Hermes, &[]).is_err());
    assert!(call_grammar(ToolFormat::Hermes, &[json!({"type": "function", "function": {}})]).is_err());
}
