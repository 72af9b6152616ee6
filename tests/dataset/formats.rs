//! ShareGPT ↔ OpenAI conversion, as properties over generated conversations: the ShareGPT side
//! alternates as LLaMA-Factory requires, parallel calls become consecutive
//! function_call/observation pairs, and OpenAI arguments are JSON strings that decode to the
//! original objects.

use apigen_mt::chat::{Message, Role, ToolCall};
use apigen_mt::dataset::openai::{from_openai, to_openai, training_messages};
use apigen_mt::dataset::sharegpt::{self, ShareGpt};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn tools() -> Vec<Value> {
    vec![json!({"type": "function", "function": {"name": "lookup", "description": "Finds a thing.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}}})]
}

/// One agent step: text, or calls (with their results) followed by more steps.
#[derive(Debug, Clone)]
enum Step {
    Say(String),
    Call(Vec<(String, Map<String, Value>, String)>),
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.\"'{}\\n]{1,24}".prop_filter("not blank", |s| !s.trim().is_empty())
}

fn arguments() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        "[a-z_]{1,8}",
        prop_oneof![
            text().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            prop::collection::vec(text().prop_map(Value::from), 0..3).prop_map(Value::from),
        ],
        0..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn exchange() -> impl Strategy<Value = (String, Vec<Step>, String)> {
    let call = ("[a-z_]{1,12}", arguments(), text());
    let step = prop::collection::vec(call, 1..4).prop_map(Step::Call);
    (text(), prop::collection::vec(prop_oneof![step, text().prop_map(Step::Say)], 0..4), text())
}

/// A well-formed conversation: system, then user turns each answered by agent steps that end
/// in a text answer.
fn conversation() -> impl Strategy<Value = Vec<Message>> {
    prop::collection::vec(exchange(), 1..4).prop_map(|exchanges| {
        let mut messages = vec![Message::system("policy")];
        let mut n = 0;
        for (user, steps, answer) in exchanges {
            messages.push(Message::user(user));
            for step in steps {
                match step {
                    // Text in the middle of a turn is followed by the user's reply in real
                    // conversations; here it is followed by a user nudge to keep alternation.
                    Step::Say(t) => {
                        messages.push(Message::assistant(t));
                        messages.push(Message::user("go on"));
                    }
                    Step::Call(calls) => {
                        let calls: Vec<(ToolCall, String)> = calls
                            .into_iter()
                            .map(|(name, arguments, result)| {
                                n += 1;
                                (ToolCall { id: format!("c{n}"), name, arguments }, result)
                            })
                            .collect();
                        messages.push(Message::assistant_calls("", calls.iter().map(|(c, _)| c.clone()).collect()));
                        for (call, result) in &calls {
                            messages.push(Message::tool_result(call, result.clone()));
                        }
                    }
                }
            }
            messages.push(Message::assistant(answer));
        }
        messages
    })
}

/// LLaMA-Factory's sharegpt rule, written out independently of the crate's own check.
fn llama_factory_accepts(record: &ShareGpt) -> bool {
    let turns = &record.conversations;
    let aligned = turns.iter().enumerate().all(|(i, t)| match i % 2 {
        0 => t.from == "human" || t.from == "observation",
        _ => t.from == "gpt" || t.from == "function_call",
    });
    aligned
        && turns.len().is_multiple_of(2)
        && turns.last().is_some_and(|t| t.from == "gpt")
        && serde_json::from_str::<Vec<Value>>(&record.tools).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn conversions_keep_alternation_calls_and_arguments(messages in conversation()) {
        prop_assert_eq!(training_messages(&messages).unwrap(), messages.clone());
        let openai = to_openai(&messages);
        // Arguments are JSON strings that decode to the original objects.
        let calls: Vec<&ToolCall> = messages.iter().flat_map(|m| &m.tool_calls).collect();
        let encoded: Vec<_> = openai.iter().flat_map(|m| &m.tool_calls).collect();
        prop_assert_eq!(calls.len(), encoded.len());
        for (call, enc) in calls.iter().zip(&encoded) {
            prop_assert_eq!(&enc.id, &call.id);
            prop_assert_eq!(serde_json::from_str::<Value>(&enc.function.arguments).unwrap(), Value::Object(call.arguments.clone()));
        }
        prop_assert_eq!(from_openai(&openai).unwrap(), messages.clone());

        let share = sharegpt::from_openai(&openai, &tools()).unwrap();
        prop_assert!(llama_factory_accepts(&share), "{:?}", share.conversations);
        prop_assert_eq!(&share.system, "policy");
        // Parallel calls: one function_call/observation pair per call, in call order.
        let pairs: Vec<(&str, &str)> = share.conversations.windows(2)
            .filter(|w| w[0].from == "function_call")
            .map(|w| (w[0].value.as_str(), w[1].value.as_str()))
            .collect();
        prop_assert_eq!(pairs.len(), calls.len());
        let results: Vec<&str> = messages.iter().filter(|m| m.role == Role::Tool).map(|m| m.content.as_str()).collect();
        for (((call_json, observation), call), result) in pairs.iter().zip(&calls).zip(&results) {
            let value: Value = serde_json::from_str(call_json).unwrap();
            prop_assert_eq!(&value["name"], &json!(call.name));
            prop_assert_eq!(&value["arguments"], &Value::Object(call.arguments.clone()));
            prop_assert_eq!(observation, result);
        }

        // ShareGPT → OpenAI → ShareGPT is the identity.
        let back = sharegpt::to_openai(&share).unwrap();
        prop_assert!(back.iter().all(|m| m.tool_calls.len() <= 1));
        prop_assert_eq!(sharegpt::from_openai(&back, &tools()).unwrap(), share);
    }

    #[test]
    fn any_sequence_of_messages_converts_validly_or_is_refused(
        roles in prop::collection::vec(0u8..5, 0..12),
    ) {
        let mut messages = vec![Message::system("policy")];
        for (i, r) in roles.iter().enumerate() {
            let call = ToolCall { id: format!("c{i}"), name: "lookup".into(), arguments: Map::new() };
            messages.push(match r {
                0 => Message::user("hi"),
                1 => Message::assistant("hello"),
                2 => Message::assistant_calls("", vec![call]),
                3 => Message::tool_result(&ToolCall { id: format!("c{}", i.saturating_sub(1)), ..call }, "ok"),
                _ => Message::user("###STOP###"),
            });
        }
        if let Ok(clean) = training_messages(&messages) {
            let share = sharegpt::from_openai(&to_openai(&clean), &tools()).unwrap();
            prop_assert!(llama_factory_accepts(&share));
        }
    }
}

#[test]
fn the_greeting_stop_and_trailing_calls_are_cut_and_bad_orders_are_named() {
    let call = ToolCall { id: "c1".into(), name: "transfer".into(), arguments: Map::new() };
    let messages = vec![
        Message::system("policy"),
        Message::assistant("Hi! How can I help?"),
        Message::user("Cancel my order."),
        Message::assistant("Done."),
        Message::user("###STOP###"),
    ];
    let clean = training_messages(&messages).unwrap();
    assert_eq!(clean.iter().map(|m| m.role).collect::<Vec<_>>(), [Role::System, Role::User, Role::Assistant]);
    let ends_in_a_call =
        [messages[..4].to_vec(), vec![Message::assistant_calls("", vec![call.clone()]), Message::tool_result(&call, "ok")]].concat();
    assert_eq!(training_messages(&ends_in_a_call).unwrap().len(), 3);

    let twice = vec![Message::system("p"), Message::user("a"), Message::user("b"), Message::assistant("c")];
    let err = training_messages(&twice).unwrap_err().to_string();
    assert!(err.contains("message 1") && err.contains("user"), "{err}");
    let silent = vec![Message::system("p"), Message::user("a")];
    assert!(training_messages(&silent).unwrap_err().to_string().contains("never answered"));
    let bad = ShareGpt { conversations: vec![], system: String::new(), tools: "[]".into() };
    assert!(sharegpt::check(&bad).is_err());
}
