//! The endpoints. Each request becomes one engine request per choice; the engine runs them on
//! blocking threads and its batching does the rest.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::error::ApiError;
use super::request::{self, Common, PromptInput, ToolChoice, MAX_CHOICES};
use super::{CancelGuard, Shared};
use crate::chat::thinking::Part;
use crate::chat::tools::{self, CallContext, ToolFormat};
use crate::engine::{Completion, EngineError, FinishReason, Prompt, Request, SamplingParams};

type AppState = State<Arc<Shared>>;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn models(State(shared): AppState) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_entry(&shared)]}))
}

fn model_entry(shared: &Shared) -> Value {
    json!({"id": shared.name, "object": "model", "created": 0, "owned_by": "apigen-mt",
           "max_model_len": shared.engine.info().context_length})
}

/// llama-server's `/props`: the chat template and context, so that a client can render prompts
/// exactly as this server would.
pub async fn props(State(shared): AppState) -> Result<Json<Value>, ApiError> {
    let template = shared.text.as_ref().and_then(|t| t.template());
    let context = shared.engine.info().context_length;
    Ok(Json(json!({
        "model_path": shared.name,
        "chat_template": template.map(|t| t.sources().next().unwrap_or_default()),
        "bos_token": template.map(|t| t.bos_token()),
        "eos_token": template.map(|t| t.eos_token()),
        "default_generation_settings": {"n_ctx": context},
    })))
}

/// Token ids of `content`/`prompt` (text, special-token text recognised) or of `messages` (and
/// `tools`) rendered by the chat template: llama-server's and vLLM's `/tokenize`.
pub async fn tokenize(State(shared): AppState, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body = request::object(&body)?;
    let prompt = match (body.get("content").or(body.get("prompt")), body.get("messages")) {
        (Some(Value::String(text)), None) => Prompt::Text(text.clone()),
        (None, Some(_)) => {
            let (tools, _) = request::tools(&body)?;
            let add_generation_prompt = body.get("add_generation_prompt").and_then(Value::as_bool).unwrap_or(true);
            Prompt::Chat { messages: request::messages(&body)?, tools, add_generation_prompt, thinking: request::thinking(&body) }
        }
        _ => return Err(ApiError::bad_request("give `content` (or `prompt`) as a string, or `messages`")),
    };
    let text = shared.text.as_ref().ok_or_else(|| ApiError::bad_request("this model has no tokenizer"))?;
    let tokens = text.tokenize(&prompt).map_err(ApiError::from)?;
    Ok(Json(json!({"tokens": tokens, "count": tokens.len(), "max_model_len": shared.engine.info().context_length})))
}

pub async fn completions(State(shared): AppState, body: Bytes) -> Result<Response, ApiError> {
    let body = request::object(&body)?;
    let common = request::common(&body, Some(16))?;
    check_model(&shared, &common)?;
    let prompts: Vec<Prompt> = request::prompts(&body)?
        .into_iter()
        .map(|p| match p {
            PromptInput::Text(text) => Prompt::Text(text),
            PromptInput::Tokens(tokens) => Prompt::Tokens(tokens),
        })
        .collect();
    if prompts.len() * common.n > MAX_CHOICES {
        return Err(ApiError::bad_request(format!(
            "{} prompts × n = {} asks for more than {MAX_CHOICES} choices",
            prompts.len(),
            common.n
        )));
    }
    let permit = admit(&shared)?;
    let mut choices = Vec::new();
    for prompt in prompts {
        let prompt_tokens = count_tokens(&shared, &prompt).await?;
        for i in 0..common.n {
            choices.push(Choice { prompt: prompt.clone(), prompt_tokens, seed_offset: i, counted: i == 0 });
        }
    }
    let reply = Reply {
        kind: Kind::Completion,
        common,
        id: format!("cmpl-{:032x}", rand::random::<u128>()),
        created: now(),
        model: shared.name.clone(),
    };
    respond(shared, reply, choices, permit).await
}

pub async fn chat(State(shared): AppState, body: Bytes) -> Result<Response, ApiError> {
    let body = request::object(&body)?;
    let mut common = request::common(&body, None)?;
    check_model(&shared, &common)?;
    let messages = request::messages(&body)?;
    let (tools, choice) = request::tools(&body)?;
    let format = ToolFormat::from_name(&shared.engine.info().tool_format)
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let parallel = body.get("parallel_tool_calls").and_then(Value::as_bool).unwrap_or(true);
    let calls = match &choice {
        ToolChoice::None => None,
        _ if common.constraint.is_some() => {
            return Err(ApiError::invalid(
                "tool_choice",
                "an output constraint (response_format, a grammar) and tool calls cannot be combined; set tool_choice to none",
            ))
        }
        ToolChoice::Auto => Some("auto"),
        ToolChoice::Required => Some("required"),
        ToolChoice::Named(name) => Some(name.as_str()),
    };
    if let Some(calls) = calls {
        common.constraint =
            tools::tool_choice_constraint(calls, format, &tools).map_err(|e| ApiError::invalid("tool_choice", format!("{e:#}")))?;
    }
    let turn = messages.len();
    let prompt = Prompt::Chat { messages, tools: tools.clone(), add_generation_prompt: true, thinking: request::thinking(&body) };
    let permit = admit(&shared)?;
    let prompt_tokens = count_tokens(&shared, &prompt).await?;
    let choices = (0..common.n).map(|i| Choice { prompt: prompt.clone(), prompt_tokens, seed_offset: i, counted: i == 0 }).collect();
    let parse = calls.map(|_| CallParse { format, tools, parallel, turn });
    let reply = Reply {
        kind: Kind::Chat(parse),
        common,
        id: format!("chatcmpl-{:032x}", rand::random::<u128>()),
        created: now(),
        model: shared.name.clone(),
    };
    respond(shared, reply, choices, permit).await
}

/// One choice to generate.
struct Choice {
    prompt: Prompt,
    prompt_tokens: usize,
    /// Choice `i` of a prompt samples with the request's seed plus `i`.
    seed_offset: usize,
    /// Whether this choice's prompt counts in `usage` (each prompt counts once).
    counted: bool,
}

/// How tool calls are read back out of a chat reply.
struct CallParse {
    format: ToolFormat,
    tools: Vec<Value>,
    parallel: bool,
    /// The assistant turn being answered, for call ids.
    turn: usize,
}

enum Kind {
    Completion,
    /// `Some` when tool calls are to be parsed from the reply.
    Chat(Option<CallParse>),
}

/// What every chunk or response of one request shares.
struct Reply {
    kind: Kind,
    common: Common,
    id: String,
    created: u64,
    model: String,
}

impl Reply {
    fn is_chat(&self) -> bool {
        matches!(self.kind, Kind::Chat(_))
    }

    fn seed(&self, choice: usize) -> u64 {
        self.common.sampling.seed.wrapping_add(choice as u64)
    }

    /// The final message or text of choice `index`, and its finish reason.
    fn finished(&self, index: usize, completion: &Completion) -> (Value, &'static str) {
        let finish = match completion.finish_reason {
            FinishReason::Length => "length",
            _ => "stop",
        };
        match &self.kind {
            Kind::Completion => {
                let mut choice = json!({"index": index, "text": completion.text, "logprobs": null, "finish_reason": finish});
                if self.common.return_token_ids {
                    choice["token_ids"] = json!(completion.tokens);
                }
                (choice, finish)
            }
            Kind::Chat(parse) => {
                let mut message = json!({"role": "assistant", "content": completion.text});
                let mut finish = finish;
                if let Some(parse) = parse {
                    let seed = format!("{:016x}", self.seed(index));
                    let context = CallContext { tools: &parse.tools, parallel: parse.parallel, conversation_seed: &seed, turn: parse.turn };
                    if let Ok(parsed) = tools::parse(parse.format, &completion.text, &context) {
                        if !parsed.calls.is_empty() {
                            message["content"] = if parsed.text.is_empty() { Value::Null } else { json!(parsed.text) };
                            message["tool_calls"] = parsed
                                .calls
                                .iter()
                                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": Value::Object(c.arguments.clone()).to_string()}}))
                                .collect();
                            finish = "tool_calls";
                        }
                    }
                }
                if let Some(reasoning) = &completion.reasoning {
                    message["reasoning_content"] = json!(reasoning);
                }
                let mut choice = json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish});
                if self.common.return_token_ids {
                    choice["token_ids"] = json!(completion.tokens);
                }
                (choice, finish)
            }
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.is_chat(), chunk) {
            (false, _) => "text_completion",
            (true, false) => "chat.completion",
            (true, true) => "chat.completion.chunk",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({"id": self.id, "object": self.object(chunk), "created": self.created, "model": self.model, "choices": choices})
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn check_model(shared: &Shared, common: &Common) -> Result<(), ApiError> {
    match &common.model {
        Some(model) if *model != shared.name => Err(ApiError::status(
            StatusCode::NOT_FOUND,
            format!("the model `{model}` does not exist; this server serves `{}`", shared.name),
        )
        .code("model_not_found")),
        _ => Ok(()),
    }
}

/// A place in the bounded queue, or 503.
fn admit(shared: &Arc<Shared>) -> Result<OwnedSemaphorePermit, ApiError> {
    shared.queue.clone().try_acquire_owned().map_err(|_| {
        ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the server is busy: {} requests are in flight (--max-queue); retry later", shared.max_queue),
        )
    })
}

/// The prompt's length, refused with a 400 when it leaves no room in the context.
async fn count_tokens(shared: &Arc<Shared>, prompt: &Prompt) -> Result<usize, ApiError> {
    let (engine, prompt) = (shared.engine.clone(), prompt.clone());
    let tokens = blocking(move || engine.count_tokens(&prompt)).await?.map_err(ApiError::from)?;
    let context = shared.engine.info().context_length;
    if tokens >= context {
        return Err(ApiError::bad_request(format!(
            "This model's maximum context length is {context} tokens, and the prompt has {tokens}: there is no room to generate. Shorten the prompt."
        ))
        .code("context_length_exceeded"));
    }
    Ok(tokens)
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, format!("the request failed: {e}")))
}

/// The engine request of one choice.
fn engine_request(shared: &Shared, reply: &Reply, choice: &Choice) -> Request {
    let common = &reply.common;
    let room = shared.engine.info().context_length - choice.prompt_tokens;
    let sampling = SamplingParams { seed: common.sampling.seed.wrapping_add(choice.seed_offset as u64), ..common.sampling.clone() };
    let mut request = Request::new(choice.prompt.clone())
        .sampling(sampling)
        .max_tokens(common.max_tokens.unwrap_or(room).min(room))
        .stop(common.stop.clone());
    request.constraint = common.constraint.clone();
    request.ignore_eos = common.ignore_eos;
    request
}

/// What a finished generation means for the response: a completion to show, or an error.
fn outcome(result: Result<Completion, EngineError>) -> Result<Completion, ApiError> {
    let completion = result.map_err(ApiError::from)?;
    if completion.finish_reason == FinishReason::Error {
        // Deterministic (a grammar the output cannot continue): retrying would fail again.
        let error = completion.error.unwrap_or_else(|| "generation failed".into());
        return Err(ApiError::status(StatusCode::UNPROCESSABLE_ENTITY, error));
    }
    Ok(completion)
}

/// What a generation tells the response as it goes.
enum Update {
    Piece { index: usize, part: Part, text: String },
    Done { index: usize, result: Result<Completion, EngineError> },
}

/// Starts every choice on a blocking thread; updates arrive on the returned channel.
fn start(shared: &Arc<Shared>, reply: &Reply, choices: &[Choice], stream: bool) -> (mpsc::UnboundedReceiver<Update>, Vec<CancelGuard>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut guards = Vec::new();
    for (index, choice) in choices.iter().enumerate() {
        let (token, guard) = shared.cancel_token();
        guards.push(guard);
        let request = engine_request(shared, reply, choice).cancel(token.clone());
        let (engine, tx) = (shared.engine.clone(), tx.clone());
        let completion_api = !reply.is_chat();
        tokio::task::spawn_blocking(move || {
            let mut on_piece = |part: Part, piece: &str| {
                if stream && tx.send(Update::Piece { index, part, text: piece.to_string() }).is_err() {
                    token.cancel();
                }
            };
            let result = if completion_api {
                engine.generate_streaming(request, &mut |piece| on_piece(Part::Answer, piece))
            } else {
                engine.generate_streaming_parts(request, &mut on_piece)
            };
            let _ = tx.send(Update::Done { index, result });
        });
    }
    (rx, guards)
}

async fn respond(shared: Arc<Shared>, reply: Reply, choices: Vec<Choice>, permit: OwnedSemaphorePermit) -> Result<Response, ApiError> {
    let prompt_tokens: usize = choices.iter().filter(|c| c.counted).map(|c| c.prompt_tokens).sum();
    if reply.common.stream {
        return Ok(stream_response(shared, reply, choices, prompt_tokens, permit));
    }
    let (mut rx, guards) = start(&shared, &reply, &choices, false);
    let mut done: Vec<Option<Completion>> = vec![None; choices.len()];
    let mut left = choices.len();
    while left > 0 {
        match rx.recv().await {
            Some(Update::Done { index, result }) => {
                done[index] = Some(outcome(result)?);
                left -= 1;
            }
            Some(Update::Piece { .. }) => {}
            None => return Err(ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "a generation ended without an answer")),
        }
    }
    drop((guards, permit));
    let completions: Vec<Completion> = done.into_iter().flatten().collect();
    let generated: usize = completions.iter().map(Completion::completion_tokens).sum();
    let choices: Vec<Value> = completions.iter().enumerate().map(|(i, c)| reply.finished(i, c).0).collect();
    let mut body = reply.envelope(false, choices);
    body["usage"] = usage(prompt_tokens, generated);
    Ok(Json(body).into_response())
}

/// The streamed response: chunks as the choices generate, then usage (when asked) and `[DONE]`.
/// Dropping the stream (the client hung up) drops the guards, which cancels the generations.
fn stream_response(
    shared: Arc<Shared>,
    reply: Reply,
    choices: Vec<Choice>,
    prompt_tokens: usize,
    permit: OwnedSemaphorePermit,
) -> Response {
    let (rx, guards) = start(&shared, &reply, &choices, true);
    let mut queue = VecDeque::new();
    if reply.is_chat() {
        for index in 0..choices.len() {
            let delta = json!({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null});
            queue.push_back(reply.envelope(true, vec![delta]).to_string());
        }
    }
    let state = Streaming { reply, rx, queue, left: choices.len(), generated: 0, prompt_tokens, finished: false, _held: (guards, permit) };
    let events = stream::unfold(state, |mut state| async move {
        loop {
            if let Some(data) = state.queue.pop_front() {
                return Some((Ok::<_, Infallible>(Event::default().data(data)), state));
            }
            if state.finished {
                return None;
            }
            match state.rx.recv().await {
                Some(update) => state.update(update),
                None => state.close(),
            }
        }
    });
    // Comments every few seconds while nothing else is sent (a long prompt's prefill, a full
    // batch): clients that time out on silence know the server is alive.
    Sse::new(events).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(5))).into_response()
}

struct Streaming {
    reply: Reply,
    rx: mpsc::UnboundedReceiver<Update>,
    /// `data:` payloads ready to send.
    queue: VecDeque<String>,
    left: usize,
    generated: usize,
    prompt_tokens: usize,
    finished: bool,
    _held: (Vec<CancelGuard>, OwnedSemaphorePermit),
}

impl Streaming {
    fn update(&mut self, update: Update) {
        match update {
            Update::Piece { index, part, text } => {
                // Tool calls are only known once the reply is whole; it is sent then.
                if matches!(self.reply.kind, Kind::Chat(Some(_))) {
                    return;
                }
                let choice = match (&self.reply.kind, part) {
                    (Kind::Completion, _) => json!({"index": index, "text": text, "logprobs": null, "finish_reason": null}),
                    (_, Part::Answer) => json!({"index": index, "delta": {"content": text}, "logprobs": null, "finish_reason": null}),
                    (_, Part::Reasoning) => {
                        json!({"index": index, "delta": {"reasoning_content": text}, "logprobs": null, "finish_reason": null})
                    }
                };
                self.queue.push_back(self.reply.envelope(true, vec![choice]).to_string());
            }
            Update::Done { index, result } => {
                self.left -= 1;
                // Only a shutdown cancels a generation whose client is still reading.
                let cancelled = matches!(result, Err(EngineError::Cancelled));
                match outcome(result) {
                    Ok(completion) => {
                        self.generated += completion.completion_tokens();
                        let (whole, finish) = self.reply.finished(index, &completion);
                        let mut last = match &self.reply.kind {
                            Kind::Completion => json!({"index": index, "text": "", "logprobs": null, "finish_reason": finish}),
                            Kind::Chat(Some(_)) => {
                                // The whole message in one delta: its text or its calls.
                                let mut delta = Map::new();
                                let message = &whole["message"];
                                if let Some(reasoning) = message.get("reasoning_content") {
                                    delta.insert("reasoning_content".into(), reasoning.clone());
                                }
                                delta.insert("content".into(), message["content"].clone());
                                if let Some(calls) = message["tool_calls"].as_array() {
                                    let calls: Vec<Value> = calls
                                        .iter()
                                        .enumerate()
                                        .map(|(i, c)| {
                                            let mut c = c.clone();
                                            c["index"] = json!(i);
                                            c
                                        })
                                        .collect();
                                    delta.insert("tool_calls".into(), Value::Array(calls));
                                }
                                json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": finish})
                            }
                            Kind::Chat(None) => json!({"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}),
                        };
                        // Every generated id at once, with the finish reason (as vLLM's last chunk).
                        if self.reply.common.return_token_ids {
                            last["token_ids"] = whole["token_ids"].clone();
                        }
                        self.queue.push_back(self.reply.envelope(true, vec![last]).to_string());
                    }
                    Err(_) if cancelled => self
                        .queue
                        .push_back(ApiError::status(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down").body().to_string()),
                    Err(error) => self.queue.push_back(error.body().to_string()),
                }
                if self.left == 0 {
                    self.close();
                }
            }
        }
    }

    /// Ends the stream: usage when asked, then `[DONE]`.
    fn close(&mut self) {
        if self.finished {
            return;
        }
        if self.left > 0 {
            self.queue
                .push_back(ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "a generation ended without an answer").body().to_string());
        }
        if self.reply.common.include_usage {
            let mut chunk = self.reply.envelope(true, Vec::new());
            chunk["usage"] = usage(self.prompt_tokens, self.generated);
            self.queue.push_back(chunk.to_string());
        }
        self.queue.push_back("[DONE]".into());
        self.finished = true;
    }
}
