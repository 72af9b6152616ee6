//! Reasoning kept apart from the answer above every engine: the handle splits `<think>` blocks
//! off chat replies, streams each part tagged, and leaves raw and constrained output alone.

use std::sync::Mutex;

use apigen_mt::chat::thinking::{self, Part};
use apigen_mt::chat::Message;
use apigen_mt::engine::loaded::{LoadOptions, LoadedModel};
use apigen_mt::engine::EngineConfig;
use apigen_mt::engine::{
    Completion, Constraint, EngineError, EngineHandle, FinishReason, LanguageModel, ModelInfo, Prompt, Request, SamplingParams,
};
use serde_json::json;

/// A model that replies with a fixed text, streamed in small pieces, and records its requests.
struct Scripted {
    info: ModelInfo,
    reply: String,
    opens_reasoning: bool,
    seen: Mutex<Vec<Request>>,
}

impl Scripted {
    fn handle(reply: &str, opens_reasoning: bool) -> (EngineHandle, std::sync::Arc<Scripted>) {
        let model = std::sync::Arc::new(Scripted {
            info: ModelInfo {
                name: "scripted".into(),
                architecture: "qwen3".into(),
                context_length: 4096,
                tool_format: "hermes".into(),
                template_supports_tools: true,
            },
            reply: reply.into(),
            opens_reasoning,
            seen: Mutex::new(Vec::new()),
        });
        (EngineHandle::new(model.clone()), model)
    }
}

impl LanguageModel for Scripted {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, on_text: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        self.seen.lock().unwrap().push(request);
        // Three-character pieces cut through the tags, as real token boundaries do.
        let chars: Vec<char> = self.reply.chars().collect();
        for piece in chars.chunks(3) {
            on_text(&piece.iter().collect::<String>());
        }
        Ok(Completion {
            text: self.reply.clone(),
            reasoning: None,
            tokens: vec![7; chars.len()],
            prompt_tokens: 5,
            generated_count: None,
            cached_tokens: 0,
            finish_reason: FinishReason::Stop,
            error: None,
        })
    }

    fn count_tokens(&self, _: &Prompt) -> Result<usize, EngineError> {
        Ok(5)
    }

    fn opens_reasoning(&self, prompt: &Prompt) -> Result<bool, EngineError> {
        Ok(self.opens_reasoning && matches!(prompt, Prompt::Chat { .. }))
    }
}

fn chat(thinking: Option<bool>) -> Request {
    let messages = vec![Message::user("Is 91 prime?")];
    Request::new(Prompt::Chat { messages, tools: Vec::new(), add_generation_prompt: true, thinking })
}

const REPLY: &str = "<think>\n91 = 7 × 13.\n</think>\n\nNo: 91 = 7 × 13.";

#[test]
fn the_handle_splits_reasoning_from_the_answer_and_streams_each_part() {
    let (engine, model) = Scripted::handle(REPLY, false);
    let completion = engine.generate(chat(Some(true))).unwrap();
    assert_eq!(completion.text, "No: 91 = 7 × 13.");
    assert_eq!(completion.reasoning.as_deref(), Some("91 = 7 × 13."));
    assert_eq!(completion.tokens.len(), REPLY.chars().count(), "token counts include the reasoning");
    // The thinking switch reaches the model with the prompt.
    assert!(matches!(model.seen.lock().unwrap()[0].prompt, Prompt::Chat { thinking: Some(true), .. }));

    let mut answer = String::new();
    let streamed = engine.generate_streaming(chat(None), &mut |piece| answer.push_str(piece)).unwrap();
    assert_eq!(answer, streamed.text, "plain streaming carries the answer only");

    let mut parts = (String::new(), String::new());
    engine
        .generate_streaming_parts(chat(None), &mut |part, piece| match part {
            Part::Reasoning => parts.0.push_str(piece),
            Part::Answer => parts.1.push_str(piece),
        })
        .unwrap();
    assert_eq!(parts, ("91 = 7 × 13.".to_string(), "No: 91 = 7 × 13.".to_string()));

    // Serialized completions carry the reasoning only when there is some.
    let json = serde_json::to_value(&completion).unwrap();
    assert_eq!(json["reasoning"], "91 = 7 × 13.");
    let plain = engine.generate(Request::new(Prompt::Text("x".into()))).unwrap();
    assert!(serde_json::to_value(&plain).unwrap().get("reasoning").is_none());
}

#[test]
fn raw_prompts_and_constrained_requests_are_returned_as_generated() {
    let (engine, _) = Scripted::handle(REPLY, true);
    let raw = engine.generate(Request::new(Prompt::Text("continue: ".into()))).unwrap();
    assert_eq!((raw.text.as_str(), raw.reasoning), (REPLY, None));
    let constrained = engine.generate(chat(None).constraint(Constraint::Regex(".*".into()))).unwrap();
    assert_eq!((constrained.text.as_str(), constrained.reasoning), (REPLY, None));
}

#[test]
fn a_template_that_opens_the_block_makes_the_reply_start_as_reasoning() {
    let (engine, _) = Scripted::handle("Seven times thirteen.\n</think>\n\nNot prime.", true);
    let c = engine.generate(chat(None)).unwrap();
    assert_eq!((c.text.as_str(), c.reasoning.as_deref()), ("Not prime.", Some("Seven times thirteen.")));
    // Cut off before the block closes: no answer at all, rather than half a thought as one.
    let (engine, _) = Scripted::handle("Seven times thir", true);
    let c = engine.generate(chat(None)).unwrap();
    assert_eq!((c.text.as_str(), c.reasoning.as_deref()), ("", Some("Seven times thir")));
}

#[test]
fn tool_calls_are_parsed_from_the_answer_not_the_reasoning() {
    use apigen_mt::chat::tools::{parse, CallContext, ToolFormat};
    let tools = vec![
        json!({"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}),
    ];
    // The reasoning drafts a call it then decides against; only the answer's call counts.
    let reply = "<think>Maybe <tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"q\": \"draft\"}}\n</tool_call>? No.</think>\n\
                 <tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"q\": \"final\"}}\n</tool_call>";
    let (engine, _) = Scripted::handle(reply, false);
    let c = engine.generate(chat(None)).unwrap();
    let context = CallContext { tools: &tools, parallel: true, conversation_seed: "t", turn: 0 };
    let parsed = parse(ToolFormat::Hermes, &c.text, &context).unwrap();
    assert_eq!(parsed.calls.len(), 1, "{parsed:?}");
    assert_eq!(parsed.calls[0].arguments["q"], "final");
}

/// Writes a tiny model whose template opens `<think>` unless `enable_thinking` is false.
fn thinking_model(dir: &std::path::Path) {
    crate::engine::tiny_model(dir);
    let template = "{% for m in messages %}<|user|>{{ m.content }}</s>{% endfor %}<|assistant|>\
                    {% if enable_thinking is not defined or enable_thinking %}<think>\n{% endif %}";
    let config = json!({"chat_template": template, "bos_token": "<s>", "eos_token": "</s>"});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

fn hi(thinking: Option<bool>) -> Prompt {
    Prompt::Chat { messages: vec![Message::user("hi")], tools: Vec::new(), add_generation_prompt: true, thinking }
}

fn greedy(engine: &EngineHandle, prompt: Prompt) -> Completion {
    engine.generate(Request::new(prompt).sampling(SamplingParams::greedy()).max_tokens(8)).unwrap()
}

/// The real engine on that model: it tells the handle that its template opened the block, and
/// the chat reply comes back as reasoning.
#[test]
fn the_engine_reports_a_block_its_template_opened() {
    let dir = tempfile::tempdir().unwrap();
    thinking_model(dir.path());
    let model = LoadedModel::load(dir.path().to_str().unwrap(), &LoadOptions::from_env(true).unwrap()).unwrap();
    let template = model.frontend.template().expect("a tokenizer-backed model has a template");
    let rendered = |thinking| template.render_with_thinking(&[Message::user("hi")], &[], true, thinking).unwrap();
    let (on, off) = (rendered(None), rendered(Some(false)));
    assert!(on.ends_with("<think>\n") && !off.contains("<think>"), "{on:?} / {off:?}");
    let engine = apigen_mt::engine::start(model, EngineConfig::default()).unwrap();

    let raw = greedy(&engine, Prompt::Text(on));
    let thought = greedy(&engine, hi(None));
    assert_eq!(thought.tokens, raw.tokens, "the chat prompt is the rendered text");
    assert!(!raw.text.trim().is_empty(), "the tiny model should write something: {raw:?}");
    assert_eq!(thought.text, "", "cut off inside the open block: no answer");
    assert_eq!(thought.reasoning, thinking::split(&raw.text, true).reasoning);
    assert!(thought.reasoning.is_some());

    let raw = greedy(&engine, Prompt::Text(off));
    let plain = greedy(&engine, hi(Some(false)));
    assert_eq!((plain.text.as_str(), plain.reasoning.as_deref()), (raw.text.as_str(), None));
}

/// `chat --thinking`: reasoning on stderr, the answer alone on stdout.
#[test]
fn chat_prints_reasoning_to_stderr_and_the_answer_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    thinking_model(dir.path());
    let engine = apigen_mt::engine::start(
        LoadedModel::load(dir.path().to_str().unwrap(), &LoadOptions::from_env(true).unwrap()).unwrap(),
        EngineConfig::default(),
    )
    .unwrap();
    let chat = |flags: &[&str]| {
        let model = dir.path().to_str().unwrap();
        let mut args = vec!["chat", "--model", model, "--prompt", "hi", "--temperature", "0", "--max-tokens", "8"];
        args.extend(flags);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_apigen-mt")).args(&args).output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap();
        (output.status.code(), text(&output.stdout), text(&output.stderr))
    };

    let (code, stdout, stderr) = chat(&[]);
    let thought = greedy(&engine, hi(None));
    assert_eq!((code, stdout.as_str()), (Some(0), "\n"), "{stderr}");
    assert!(stderr.starts_with(&format!("{}\n", thought.reasoning.unwrap())), "{stderr}");
    assert!(stderr.contains("still reasoning"), "{stderr}");

    let (code, stdout, stderr) = chat(&["--thinking", "off"]);
    assert_eq!((code, stdout), (Some(0), format!("{}\n", greedy(&engine, hi(Some(false))).text)), "{stderr}");
    assert!(!stderr.contains("reasoning"), "{stderr}");

    let (code, _, stderr) = chat(&["--thinking", "maybe"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--thinking"), "{stderr}");
}
