//! `apigen-mt serve` over HTTP: batch invariance across concurrent requests, seeds and `n`,
//! OpenAI-style errors with 4xx, the API key, the bounded queue and a clean SIGTERM; and the
//! engine dropping a cancelled request.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use apigen_mt::chat::Message;
use apigen_mt::engine::loaded::{LoadOptions, LoadedModel};
use apigen_mt::engine::{CancelToken, EngineConfig, EngineError, Prompt, Request, SamplingParams};
use serde_json::{json, Value};

use super::{fixture, Serve};

const KEY: &str = "test-key";

/// POSTs JSON, with the test key; the status and the body as JSON.
fn post(serve: &Serve, path: &str, body: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = ureq::post(&format!("http://{}{path}", serve.address)).set("Content-Type", "application/json");
    if let Some(key) = key {
        request = request.set("Authorization", &format!("Bearer {key}"));
    }
    let (status, text) = match request.send_string(body) {
        Ok(response) => (response.status(), response.into_string().expect("a body")),
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().expect("a body")),
        Err(e) => panic!("{path}: {e}"),
    };
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
}

fn chat(serve: &Serve, content: &str, seed: u64, extra: Value) -> Value {
    let mut body = json!({"messages": [{"role": "user", "content": content}], "max_tokens": 24, "temperature": 1.0, "seed": seed});
    body.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
    let (status, answer) = post(serve, "/v1/chat/completions", &body.to_string(), Some(KEY));
    assert_eq!(status, 200, "{answer}");
    answer
}

fn text(answer: &Value, choice: usize) -> String {
    answer["choices"][choice]["message"]["content"].as_str().expect("content").to_string()
}

#[test]
fn the_same_request_and_seed_give_the_same_text_whatever_else_is_in_flight() {
    let Some(fixture) = fixture() else { return };
    let serve = Arc::new(Serve::start(fixture, "invariance", &["--api-key", KEY]));
    let alone = text(&chat(&serve, "Tell me about the sea.", 7, json!({})), 0);
    // The same request among others of different lengths, prompts and seeds.
    let others: Vec<_> = (0..3)
        .map(|i| {
            let serve = serve.clone();
            std::thread::spawn(move || {
                chat(&serve, &format!("Write {i} lines about mountains, rivers and forests."), 100 + i, json!({"max_tokens": 40}))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let crowded = chat(&serve, "Tell me about the sea.", 7, json!({"n": 2}));
    for other in others {
        other.join().expect("a concurrent request");
    }
    assert_eq!(text(&crowded, 0), alone, "choice 0 samples with the request's own seed");
    assert_ne!(text(&crowded, 1), alone, "choice 1 samples with the next seed");
    assert_ne!(text(&chat(&serve, "Tell me about the sea.", 8, json!({})), 0), alone, "another seed, another sample");
    let usage = &crowded["usage"];
    assert!(usage["prompt_tokens"].as_u64() > Some(0) && usage["completion_tokens"].as_u64() > Some(1), "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap_or(0) + usage["completion_tokens"].as_u64().unwrap_or(0))
    );
}

#[test]
fn bad_requests_get_openai_errors_with_4xx_and_the_key_is_required() {
    let Some(fixture) = fixture() else { return };
    let serve = Serve::start(fixture, "errors", &["--api-key", KEY]);
    let long = json!({"prompt": "hello ".repeat(9000)}).to_string();
    for (path, body, key, status, needle) in [
        ("/v1/completions", r#"{"prompt": "hi"}"#, None, 401, "API key"),
        ("/v1/completions", r#"{"prompt": "hi"}"#, Some("wrong"), 401, "not valid"),
        ("/v1/completions", "{not json", Some(KEY), 400, "not valid JSON"),
        ("/v1/completions", r#"{"prompt": "hi", "logprobs": 2}"#, Some(KEY), 400, "logprobs"),
        ("/v1/completions", r#"{"prompt": "hi", "temperature": -1}"#, Some(KEY), 400, "temperature"),
        ("/v1/completions", &long, Some(KEY), 400, "maximum context length is 8192"),
        ("/v1/completions", r#"{"prompt": "hi", "model": "gpt-4"}"#, Some(KEY), 404, "gpt-4"),
        ("/v1/chat/completions", r#"{"messages": []}"#, Some(KEY), 400, "messages"),
        ("/v1/chat/completions", r#"{"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}"#, Some(KEY), 400, "tools"),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"role": "user", "content": "x"}], "grammar": "start: ("}"#,
            Some(KEY),
            400,
            "constraint",
        ),
        ("/v1/nowhere", "{}", Some(KEY), 404, "/v1/nowhere"),
    ] {
        let (got, answer) = post(&serve, path, body, key);
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{path} {}: {answer}", &body[..body.len().min(80)]);
        assert!(message.contains(needle), "{path}: {message}");
        assert!(answer["error"]["type"].is_string());
    }
    // /health needs no key; the server is still up after all that.
    let health = ureq::get(&format!("http://{}/health", serve.address)).call().expect("health");
    assert_eq!(health.status(), 200);
}

/// One request holds the only place in the queue: the next one gets 503. SIGTERM then stops
/// the server within the grace period, cancelling the request still running, and it exits 0.
#[test]
fn a_full_queue_answers_503_and_sigterm_stops_the_server_cleanly() {
    let Some(fixture) = fixture() else { return };
    let mut serve = Serve::start(fixture, "queue", &["--max-queue", "1", "--shutdown-grace", "1"]);
    let address = serve.address.clone();
    let (streaming, started) = std::sync::mpsc::channel();
    let long = std::thread::spawn(move || {
        let body = json!({"prompt": "Once upon a time", "max_tokens": 4000, "ignore_eos": true, "stream": true});
        let response = ureq::post(&format!("http://{address}/v1/completions")).send_string(&body.to_string());
        // The headers are in: the request holds the queue's place while its events stream.
        let _ = streaming.send(());
        response.map(|r| r.into_string().unwrap_or_default()).unwrap_or_else(|e| e.to_string())
    });
    started.recv_timeout(Duration::from_secs(60)).expect("the long request starts streaming");
    let (status, answer) = post(&serve, "/v1/completions", r#"{"prompt": "hi", "max_tokens": 1}"#, None);
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("--max-queue"), "{answer}");
    let terminated = Command::new("kill").args(["-TERM", &serve.pid().to_string()]).status().expect("kill runs");
    assert!(terminated.success());
    let exit = serve.wait_exit(Duration::from_secs(30)).expect("serve exits after SIGTERM");
    assert!(exit.success(), "{exit}");
    let streamed = long.join().expect("the long request ends");
    assert!(streamed.contains("shutting down") && streamed.trim_end().ends_with("data: [DONE]"), "{streamed}");
    let log = std::fs::read_to_string(&serve.log).expect("log");
    assert!(log.contains("stopped") && !log.contains("panicked"), "{log}");
}

/// The engine drops a request whose token is cancelled, running or still waiting, and says so.
#[test]
fn the_engine_drops_a_cancelled_request() {
    let Some(fixture) = fixture() else { return };
    let options = LoadOptions::from_env(true).expect("options");
    let model = LoadedModel::load(fixture.gguf.to_str().expect("path"), &options).expect("SmolLM2");
    let engine = apigen_mt::engine::start(model, EngineConfig::default()).expect("engine");
    let request = |token: &CancelToken| {
        Request::new(Prompt::chat(vec![Message::user("hello")]))
            .sampling(SamplingParams::greedy())
            .max_tokens(4000)
            .ignore_eos()
            .cancel(token.clone())
    };
    let running = CancelToken::default();
    let worker = {
        let (engine, request) = (engine.clone(), request(&running));
        std::thread::spawn(move || engine.generate(request))
    };
    std::thread::sleep(Duration::from_millis(300));
    running.cancel();
    let result = worker.join().expect("the caller returns");
    assert!(matches!(result, Err(EngineError::Cancelled)), "{result:?}");
    let generated = engine.metrics().generated_tokens;
    assert!(generated < 4000, "it stopped: {generated}");
    let waiting = CancelToken::default();
    waiting.cancel();
    assert!(matches!(engine.generate(request(&waiting)), Err(EngineError::Cancelled)));
}
