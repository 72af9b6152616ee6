//! Chat templates rendered in Rust must equal what Python's jinja2 renders under transformers'
//! settings; the expected outputs come from scripts/make-template-fixtures.py.

use std::path::{Path, PathBuf};

use apigen_mt::chat::{CalendarDate, ChatTemplate, Message, RenderOptions, Role, ToolCall};
use candle_core::quantized::gguf_file::Content;
use serde_json::Value;

use crate::support::smollm2_dir;

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/templates"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture's OpenAI-shaped message as the crate's message type.
fn from_openai(v: &Value) -> Message {
    let role: Role = serde_json::from_value(v["role"].clone()).unwrap();
    let tool_calls = v["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap().to_string(),
                    name: c["function"]["name"].as_str().unwrap().to_string(),
                    arguments: c["function"]["arguments"].as_object().unwrap().clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Message {
        role,
        content: v["content"].as_str().unwrap().to_string(),
        tool_calls,
        tool_call_id: v["tool_call_id"].as_str().map(String::from),
        name: v["name"].as_str().map(String::from),
    }
}

struct Conversation {
    messages: Vec<Message>,
    tools: Vec<Value>,
    add_generation_prompt: bool,
}

fn conversation(stem: &str) -> Conversation {
    let v = read_json(&fixtures().join("conversations").join(format!("{stem}.json")));
    let raw = v["messages"].as_array().unwrap();
    let messages: Vec<Message> = raw.iter().map(from_openai).collect();
    // The renderer must hand templates exactly the fixture's shape.
    for (message, original) in messages.iter().zip(raw) {
        assert_eq!(&apigen_mt::chat::template::template_message(message), original);
    }
    Conversation {
        messages,
        tools: v["tools"].as_array().unwrap().clone(),
        add_generation_prompt: v["add_generation_prompt"].as_bool().unwrap(),
    }
}

/// Renders every case of `expected/<name>.json` with `template` and compares; returns the
/// number of cases checked.
fn check_cases(name: &str, template: &ChatTemplate) -> usize {
    let expected = read_json(&fixtures().join("expected").join(format!("{name}.json")));
    assert_eq!(template.supports_tools(), expected["supports_tools"].as_bool().unwrap(), "{name}");
    check_rendered(name, template, &expected["cases"], None)
}

/// Renders each case of `cases` with `enable_thinking` set to `thinking` and compares.
fn check_rendered(name: &str, template: &ChatTemplate, cases: &Value, thinking: Option<bool>) -> usize {
    let cases = cases.as_object().unwrap();
    for (stem, want) in cases {
        let c = conversation(stem);
        let got = template.render_with_thinking(&c.messages, &c.tools, c.add_generation_prompt, thinking);
        match (want.get("output").and_then(Value::as_str), got) {
            (Some(want), Ok(got)) => assert_eq!(got, want, "{name} × {stem} (enable_thinking: {thinking:?})"),
            (None, Err(err)) => {
                let message = want["error"].as_str().unwrap();
                let err = format!("{err:#}");
                assert!(err.contains(message), "{name} × {stem}: {err}");
                assert!(err.contains(name), "error names the template: {err}");
            }
            (Some(_), Err(err)) => panic!("{name} × {stem} failed: {err:#}"),
            (None, Ok(got)) => panic!("{name} × {stem} should fail but gave {got:?}"),
        }
    }
    cases.len()
}

fn pinned(expected_name: &str) -> RenderOptions {
    let expected = read_json(&fixtures().join("expected").join(format!("{expected_name}.json")));
    let d: Vec<u32> = serde_json::from_value(expected["date"].clone()).unwrap();
    RenderOptions { date: CalendarDate::new(d[0] as i32, d[1], d[2]).unwrap() }
}

#[test]
fn own_templates_match_jinja2() {
    let mut checked = 0;
    for name in ["hermes", "llama3", "mistral", "xlam"] {
        let expected = read_json(&fixtures().join("expected").join(format!("{name}.json")));
        let path = fixtures().join(format!("{name}.jinja"));
        let template =
            ChatTemplate::from_jinja_file(&path, expected["bos_token"].as_str().unwrap(), expected["eos_token"].as_str().unwrap())
                .unwrap()
                .with_options(pinned(name));
        checked += check_cases(name, &template);
    }
    assert_eq!(checked, 20);
}

#[test]
fn qwen3_style_template_matches_jinja2_with_thinking_on_off_and_unset() {
    let expected = read_json(&fixtures().join("expected").join("qwen3.json"));
    let template = ChatTemplate::from_jinja_file(&fixtures().join("qwen3.jinja"), "", "<|im_end|>").unwrap().with_options(pinned("qwen3"));
    let mut checked = check_cases("qwen3", &template);
    for (flag, thinking) in [("true", true), ("false", false)] {
        checked += check_rendered("qwen3", &template, &expected["enable_thinking"][flag], Some(thinking));
    }
    assert_eq!(checked, 18);
    // What the switch does: off closes an empty block in the generation prompt; on and unset
    // leave the model to open its own.
    let c = conversation("plain");
    let render = |thinking| template.render_with_thinking(&c.messages, &c.tools, true, thinking).unwrap();
    assert!(render(Some(false)).ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    assert!(render(Some(true)).ends_with("<|im_start|>assistant\n"));
    assert_eq!(render(None), render(Some(true)));
}

#[test]
fn smollm2_template_matches_jinja2_from_both_sources() {
    let Some(dir) = smollm2_dir() else { return };
    let from_config = ChatTemplate::from_tokenizer_config(&dir.join("tokenizer_config.json")).unwrap();
    assert_eq!(check_cases("smollm2", &from_config), 2);
    let gguf_path = dir.join("model-q4_1.gguf");
    let content = Content::read(&mut std::fs::File::open(&gguf_path).unwrap()).unwrap();
    let from_gguf = ChatTemplate::from_gguf(&content, &gguf_path).unwrap();
    assert_eq!((from_gguf.bos_token(), from_gguf.eos_token()), ("<|im_start|>", "<|im_end|>"));
    assert_eq!(check_cases("smollm2", &from_gguf), 2);
}

#[test]
fn smollm2_gets_the_generic_tool_format() {
    let Some(dir) = smollm2_dir() else { return };
    let template = ChatTemplate::from_tokenizer_config(&dir.join("tokenizer_config.json")).unwrap();
    let c = conversation("tool_loop");
    let text = template.render(&c.messages, &c.tools, true).unwrap();
    assert!(text.starts_with("<|im_start|>system\nYou are a store agent. Follow the policy.\n\n# Tools\n"), "{text}");
    assert!(text.contains("\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"find_order\""));
    assert!(text.contains(
        "<|im_start|>assistant\n<tool_call>{\"name\": \"find_order\", \"arguments\": {\"order_id\": \"#W1234\"}}</tool_call><|im_end|>\n"
    ));
    assert!(text.contains("<|im_start|>user\n<tool_response>Refund issued: 1.0 USD — réf ✓</tool_response><|im_end|>\n"));
    assert!(!text.contains("<|im_start|>tool"));
    assert!(text.ends_with("<|im_start|>assistant\n"));
}

#[test]
fn named_templates_and_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tokenizer_config.json");
    let templates = serde_json::json!({
        "bos_token": {"content": "<s>", "lstrip": false},
        "eos_token": "</s>",
        "chat_template": [
            {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"},
            {"name": "tool_use", "template": "{{ bos_token }}{{ tools | length }} tools{{ eos_token }}"}
        ]
    });
    std::fs::write(&config, templates.to_string()).unwrap();
    let t = ChatTemplate::from_tokenizer_config(&config).unwrap();
    assert!(t.supports_tools());
    let messages = [Message::user("hi")];
    assert_eq!(t.render(&messages, &[], false).unwrap(), "<s>hi");
    assert_eq!(t.render(&messages, &[serde_json::json!({})], false).unwrap(), "<s>1 tools</s>");

    // A syntax error names the file and the line.
    std::fs::write(&config, r#"{"chat_template": "line one\n{% for m in messages %}\n{{ m.content }"}"#).unwrap();
    let err = format!("{:#}", ChatTemplate::from_tokenizer_config(&config).unwrap_err());
    assert!(err.contains("tokenizer_config.json") && err.contains("line 3"), "{err}");

    // No template at all.
    std::fs::write(&config, r#"{"eos_token": "</s>"}"#).unwrap();
    let err = format!("{:#}", ChatTemplate::from_tokenizer_config(&config).unwrap_err());
    assert!(err.contains("chat_template.jinja"), "{err}");
}
