//! A model served by an OpenAI-compatible inference server (vLLM, SGLang, llama.cpp's
//! `llama-server`, `apigen-mt serve`), behind the same [`LanguageModel`] door as the in-process
//! engine, so that any role can run on a GPU box or a cluster.
//!
//! Prompts stay this crate's own: by default the conversation is rendered here with the model's
//! chat template and tokenized with its tokenizer (from a preset, a local folder or the Hugging
//! Face cache), and the token ids go to `/v1/completions`. The server's template never touches
//! the data, and the prompt is the very one the in-process engine would see. Where no template
//! can be had locally, llama-server's own (`/props`) is rendered here and tokenized by the
//! server; otherwise, or when asked, `/v1/chat/completions` carries the messages and the server
//! renders them (see the README for what changes then).
//!
//! Constraints map onto each server's structured-output parameters ([`dialect`]); where a server
//! cannot enforce one, its output is checked here and the request retried with another seed a
//! bounded number of times before the attempt fails with `backend_error`. Faults follow the rule
//! in [`http`].

pub mod dialect;
pub mod http;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::loaded::{self, Frontend};
use super::{Completion, Constraint, EngineError, EngineMetrics, FinishReason, LanguageModel, ModelInfo, Prompt, Request};
use crate::chat::generic::call_text;
use crate::chat::tools::ToolFormat;
use crate::chat::{thinking, CalendarDate, ChatTemplate, Message, RenderOptions, ToolCall};
use crate::config::server::{Api, Flavor, Server};
use crate::model::source::{self, HubConfig};
use dialect::Dialect;
use http::{Client, ClientMetrics};

/// Tries of a request whose output is checked here because the server cannot enforce its
/// constraint.
pub const VALIDATE_TRIES: usize = 3;

/// What `stats.json` reports of one server model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerReport {
    pub url: String,
    pub flavor: &'static str,
    pub api: &'static str,
    /// Where prompts were rendered from: a template source, `server`, or `null` (chat API).
    pub template: Option<String>,
    #[serde(flatten)]
    pub client: ClientMetrics,
    /// Outputs refused by the check of a constraint the server could not enforce.
    pub invalid_outputs: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// How prompts become what the server is sent.
enum Text {
    /// This crate renders and tokenizes; prompts go as token ids.
    Local(Frontend),
    /// The server's template, rendered here; the server tokenizes (`/tokenize`). Recent
    /// tokenizations are kept, since a prompt is counted and then sent.
    ServerTemplate { template: ChatTemplate, recent: Mutex<VecDeque<(String, Vec<u32>)>> },
    /// The chat API: the server renders and parses tool calls. A local frontend, when there is
    /// one, still counts tokens.
    Chat(Option<Frontend>),
}

/// A model on a server.
pub struct RemoteModel {
    info: ModelInfo,
    server: Server,
    dialect: Dialect,
    client: Client,
    text: Text,
    template_source: Option<String>,
    requests: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    invalid_outputs: AtomicU64,
}

/// What connecting found out, for the run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Connected {
    /// The served model name.
    pub model: String,
    /// The template source as resolved; `None` for the chat API.
    pub template: Option<String>,
    pub api: Api,
}

impl RemoteModel {
    /// Reaches the server, picks the model (`model`, or the first one it serves), detects its
    /// dialect, and loads the template and tokenizer prompts are rendered with.
    pub fn connect(server: &Server, model: Option<&str>, hub: &HubConfig, date: CalendarDate) -> Result<(Self, Connected)> {
        let api_key = match &server.api_key_env {
            Some(var) => {
                Some(std::env::var(var).map_err(|_| anyhow!("the API key for {} is to come from ${var}, which is not set", server.url))?)
            }
            None => None,
        };
        let client = Client::new(&server.url, api_key, Duration::from_secs(server.timeout_secs), server.max_in_flight, server.retries);
        let models = client
            .get("models")
            .map_err(|f| anyhow!(f.into_engine_error(&format!("listing the models of {}", server.url))))
            .with_context(|| format!("cannot reach the model server at {}", server.url))?;
        let listed: Vec<&Value> = models["data"].as_array().map(|d| d.iter().collect()).unwrap_or_default();
        let ids: Vec<&str> = listed.iter().filter_map(|m| m["id"].as_str()).collect();
        let entry = match model {
            Some(name) => listed
                .iter()
                .find(|m| m["id"].as_str() == Some(name))
                .copied()
                .ok_or_else(|| anyhow!("{} does not serve model {name:?} (it serves: {})", server.url, ids.join(", ")))?,
            None => listed.first().copied().ok_or_else(|| anyhow!("{} lists no models at /models", server.url))?,
        };
        let served = entry["id"].as_str().context("the server's /models entry has no id")?.to_string();
        let flavor = server.flavor.unwrap_or_else(|| Flavor::from_owner(entry["owned_by"].as_str().unwrap_or("")));
        let mut dialect = Dialect::new(flavor);
        let props = if flavor == Flavor::LlamaServer { client.get("/props").ok() } else { None };
        let server_context = entry["max_model_len"]
            .as_u64()
            .map(|n| n as usize)
            .or_else(|| props.as_ref().and_then(|p| p["default_generation_settings"]["n_ctx"].as_u64()).map(|n| n as usize));
        // The model's own context, from the template source: the fallback where the server does not
        // say, and what the server's is compared with.
        let mut model_context = None;
        if flavor == Flavor::LlamaServer {
            dialect.lark = probe_lark(&client, &served);
        }

        // The template: the one named, else the served model's own files, else the server's.
        let local = |spec: &str| -> Result<(Frontend, ToolFormat, Option<usize>, String)> {
            let resolved = source::resolve_text(spec, hub)?;
            let (tokenizer, template) = loaded::load_text(&resolved.files, date)?;
            let mut eos = Vec::new();
            if let Some(path) = &resolved.files.generation_config {
                eos.extend(loaded::generation_config_eos(path)?);
            }
            eos.extend(tokenizer.token_to_id(template.eos_token()));
            let format = loaded::tool_format(&template, resolved.preset.as_ref().map(|p| p.tool_format.name()), spec);
            let context = resolved.preset.as_ref().map(|p| p.context_length).or_else(|| config_context(&resolved.files.config));
            Ok((Frontend::text_only(tokenizer, template, eos, 0), format, context, resolved.name))
        };
        let server_template = || -> Option<ChatTemplate> {
            let props = props.as_ref()?;
            let text = props["chat_template"].as_str().filter(|t| !t.trim().is_empty())?;
            let token = |key: &str| props[key].as_str().unwrap_or_default().to_string();
            ChatTemplate::new(
                format!("{}/props", server.url),
                vec![("default".into(), text.into())],
                token("bos_token"),
                token("eos_token"),
            )
            .map(|t| t.with_options(RenderOptions { date }))
            .ok()
        };
        let (text, format, template_source) = match (server.api, server.template.as_deref()) {
            (Api::Completions, Some("server")) => {
                let template = server_template()
                    .ok_or_else(|| anyhow!("{} exposes no chat template (llama-server's /props): name a template source", server.url))?;
                let format = loaded::tool_format(&template, None, &served);
                (Text::ServerTemplate { template, recent: Mutex::new(VecDeque::new()) }, format, Some("server".to_string()))
            }
            (Api::Completions, Some(spec)) => {
                let (frontend, format, context, _) =
                    local(spec).with_context(|| format!("loading the template source {spec:?} of {served}"))?;
                model_context = context;
                (Text::Local(frontend), format, Some(spec.to_string()))
            }
            (Api::Completions, None) => match local(&served) {
                Ok((frontend, format, context, _)) => {
                    model_context = context;
                    (Text::Local(frontend), format, Some(served.clone()))
                }
                Err(local_error) => match server_template() {
                    Some(template) => {
                        let format = loaded::tool_format(&template, None, &served);
                        (Text::ServerTemplate { template, recent: Mutex::new(VecDeque::new()) }, format, Some("server".to_string()))
                    }
                    None => {
                        eprintln!(
                            "warning: no chat template for {served} ({local_error:#}); using {}/chat/completions, where the \
                             server renders prompts with its own template (set `template` to render them here)",
                            server.url
                        );
                        (Text::Chat(None), ToolFormat::Generic, None)
                    }
                },
            },
            (Api::Chat, spec) => {
                let frontend = match spec {
                    Some(spec) if spec != "server" => {
                        let (frontend, _, context, _) =
                            local(spec).with_context(|| format!("loading the template source {spec:?} of {served}"))?;
                        model_context = context;
                        Some(frontend)
                    }
                    _ => None,
                };
                if frontend.is_none() && !matches!(flavor, Flavor::ApigenMt | Flavor::Vllm) {
                    bail!(
                        "{}: counting prompt tokens on the chat API of a {} server needs a tokenizer: set `template` \
                         to a preset, model folder or hub repo of {served}",
                        server.url,
                        flavor.name()
                    );
                }
                (Text::Chat(frontend), ToolFormat::Generic, None)
            }
        };
        if let (Some(server_context), Some(model_context)) = (server_context, model_context) {
            if let Some(warning) = short_context_warning(&server.url, &served, flavor, server_context, model_context) {
                eprintln!("{warning}");
            }
        }
        let context_length = server_context.or(model_context).filter(|&n| n > 0).ok_or_else(|| {
            anyhow!("{}: the server does not say the context length of {served}, and the template source does not either", server.url)
        })?;
        let text = match text {
            Text::Local(frontend) => Text::Local(frontend.with_context_length(context_length)),
            Text::Chat(frontend) => Text::Chat(frontend.map(|f| f.with_context_length(context_length))),
            other => other,
        };
        let template_supports_tools = match &text {
            Text::Local(frontend) => frontend.template().is_some_and(ChatTemplate::supports_tools),
            Text::ServerTemplate { template, .. } => template.supports_tools(),
            Text::Chat(_) => true,
        };
        let info = ModelInfo {
            name: served.clone(),
            architecture: format!("server ({})", flavor.name()),
            context_length,
            tool_format: format.name().to_string(),
            template_supports_tools,
        };
        let api = if matches!(text, Text::Chat(_)) { Api::Chat } else { Api::Completions };
        let connected = Connected { model: served, template: template_source.clone(), api };
        let model = Self {
            info,
            server: server.clone(),
            dialect,
            client,
            text,
            template_source,
            requests: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            invalid_outputs: AtomicU64::new(0),
        };
        Ok((model, connected))
    }

    /// Refuses sampling parameters this server cannot take.
    pub fn check_sampling(&self, sampling: &super::SamplingParams) -> Result<()> {
        self.dialect.check_sampling(sampling).with_context(|| format!("{} at {}", self.info.name, self.server.url))
    }

    pub fn report(&self) -> ServerReport {
        ServerReport {
            url: self.server.url.clone(),
            flavor: self.dialect.flavor.name(),
            api: self.api().name(),
            template: self.template_source.clone(),
            client: self.client.metrics(),
            invalid_outputs: self.invalid_outputs.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
        }
    }

    /// The API prompts go through: the chat API where there is no template to render here.
    fn api(&self) -> Api {
        match self.text {
            Text::Chat(_) => Api::Chat,
            _ => Api::Completions,
        }
    }

    /// A request whose constraint the server cannot enforce: each output is checked here, and
    /// the request tried again with the next seeds, [`VALIDATE_TRIES`] times in all.
    fn complete_checked(&self, request: &Request, constraint: &Constraint) -> Result<Completion, EngineError> {
        let mut last = String::new();
        for k in 0..VALIDATE_TRIES {
            // A caller that gave up wants no further try.
            if k > 0 && request.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let completion = self.complete(request, request.sampling.seed.wrapping_add(k as u64))?;
            // Cut off: the caller treats it as incomplete, as it would the engine's.
            if completion.finish_reason == FinishReason::Length {
                return Ok(completion);
            }
            match crate::constrain::validate::check(constraint, &completion.text) {
                Ok(()) => return Ok(completion),
                Err(reason) => {
                    self.invalid_outputs.fetch_add(1, Ordering::Relaxed);
                    last = reason;
                }
            }
        }
        Err(EngineError::Backend(format!(
            "backend_error: {} cannot enforce the {} constraint, and {VALIDATE_TRIES} outputs did not meet it (last: {last})",
            self.what(),
            constraint_kind(constraint)
        )))
    }

    fn what(&self) -> String {
        format!("{} at {}", self.info.name, self.server.url)
    }

    /// The prompt as token ids, where they can be had: rendered and tokenized here, or by the
    /// server.
    fn prompt_tokens(&self, prompt: &Prompt) -> Result<Option<Vec<u32>>, EngineError> {
        match &self.text {
            Text::Local(frontend) => frontend.tokenize(prompt).map(Some),
            Text::ServerTemplate { template, recent } => {
                let text = match prompt {
                    Prompt::Tokens(tokens) => return Ok(Some(tokens.clone())),
                    Prompt::Text(text) => text.clone(),
                    Prompt::Chat { messages, tools, add_generation_prompt, thinking } => template
                        .render_with_thinking(messages, tools, *add_generation_prompt, *thinking)
                        .map_err(|e| EngineError::Template(format!("{e:#}")))?,
                };
                let lock = || recent.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((_, tokens)) = lock().iter().find(|(t, _)| *t == text) {
                    return Ok(Some(tokens.clone()));
                }
                let body = json!({"content": text, "add_special": false, "parse_special": true});
                let answer = self.client.post("/tokenize", &body).map_err(|f| f.into_engine_error(&self.what()))?;
                let tokens = token_list(&answer["tokens"])
                    .ok_or_else(|| EngineError::Backend(format!("backend_error: {}: /tokenize answered without tokens", self.what())))?;
                let mut cache = lock();
                if cache.len() >= 64 {
                    cache.pop_front();
                }
                cache.push_back((text, tokens.clone()));
                Ok(Some(tokens))
            }
            Text::Chat(Some(frontend)) => frontend.tokenize(prompt).map(Some),
            Text::Chat(None) => Ok(None),
        }
    }

    /// One request to `/completions` or `/chat/completions`, without a check of its output.
    fn complete(&self, request: &Request, seed: u64) -> Result<Completion, EngineError> {
        let mut body = Map::new();
        body.insert("model".into(), json!(self.info.name));
        let sampling = super::SamplingParams { seed, ..request.sampling.clone() };
        self.dialect.sampling(&mut body, &sampling);
        if !request.stop.is_empty() {
            body.insert("stop".into(), json!(request.stop));
        }
        if request.ignore_eos {
            body.insert("ignore_eos".into(), json!(true));
        }
        let chat = matches!(self.text, Text::Chat(_));
        let tools = matches!(&request.prompt, Prompt::Chat { tools, .. } if !tools.is_empty());
        let mut max_tokens = request.max_tokens;
        let mut prompt_len = 0;
        if chat {
            let Prompt::Chat { messages, tools, thinking, .. } = &request.prompt else {
                return Err(EngineError::Invalid(format!("{} speaks the chat API: only chat prompts", self.what())));
            };
            body.insert("messages".into(), Value::Array(messages.iter().map(wire_message).collect()));
            if !tools.is_empty() {
                body.insert("tools".into(), Value::Array(tools.clone()));
            }
            if let Some(thinking) = thinking {
                body.insert("chat_template_kwargs".into(), json!({"enable_thinking": thinking}));
            }
            self.dialect.ask_token_ids(&mut body);
        } else {
            let tokens = self.prompt_tokens(&request.prompt)?.unwrap_or_default();
            prompt_len = tokens.len();
            if let Some(done) = too_long(prompt_len, self.info.context_length) {
                return Ok(done);
            }
            // The engine stops at the context's end; a server refuses a request that could pass it.
            max_tokens = max_tokens.min(self.info.context_length - prompt_len);
            body.insert("prompt".into(), json!(tokens));
            self.dialect.ask_token_ids(&mut body);
        }
        body.insert("max_tokens".into(), json!(max_tokens));
        if let Some(constraint) = &request.constraint {
            // Callers only reach here for constraints the server enforces; see `generate_streaming`.
            self.dialect.constraint(&mut body, constraint, self.api(), tools);
        }
        let path = if chat { "chat/completions" } else { "completions" };
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
        self.requests.fetch_add(1, Ordering::Relaxed);
        let events = self.client.post_events(path, &Value::Object(body)).map_err(|f| f.into_engine_error(&self.what()))?;
        let answer = Answer::assemble(&events, self.dialect);
        let text = answer.text(chat);
        let usage = &answer.usage;
        let prompt_tokens = usage["prompt_tokens"].as_u64().map_or(prompt_len, |n| n as usize);
        // The generated ids where the server returns them (reasoning and tool calls included);
        // else the text tokenized here, which may count differently.
        let tokens = match answer.token_ids {
            Some(ids) => ids,
            None => match &self.text {
                Text::Local(f) | Text::Chat(Some(f)) => f.tokenizer().and_then(|t| t.encode(&text, false).ok()).unwrap_or_default(),
                _ => Vec::new(),
            },
        };
        let counted = usage["completion_tokens"].as_u64().map(|n| n as usize);
        // A chat answer without ids, from a server whose model has no local tokenizer here:
        // the server's count is all there is, and stats must not read it as nothing generated.
        let generated_count = counted.filter(|_| tokens.is_empty());
        self.prompt_tokens.fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        self.completion_tokens.fetch_add(counted.unwrap_or(tokens.len()) as u64, Ordering::Relaxed);
        let finish_reason = match answer.finish.as_deref() {
            Some("length") => FinishReason::Length,
            None => {
                return Err(EngineError::Backend(format!(
                    "backend_error: {}: the answer has no finish_reason: {}",
                    self.what(),
                    http::head(&Value::Array(events).to_string())
                )))
            }
            _ if request.constraint.is_some() => FinishReason::Constraint,
            _ => FinishReason::Stop,
        };
        Ok(Completion {
            text,
            reasoning: None,
            tokens,
            prompt_tokens,
            generated_count,
            cached_tokens: usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0) as usize,
            finish_reason,
            error: None,
        })
    }
}

/// The first choice of an answer, whole or assembled from streamed chunks (pieces of text, of
/// reasoning, of tool calls' arguments, and token ids, each appended in order).
#[derive(Debug, Default)]
struct Answer {
    content: String,
    reasoning: String,
    /// Tool calls by index: name, and the arguments' JSON text.
    calls: Vec<(String, String)>,
    token_ids: Option<Vec<u32>>,
    finish: Option<String>,
    usage: Value,
}

impl Answer {
    fn assemble(events: &[Value], dialect: Dialect) -> Self {
        let mut answer = Answer { usage: Value::Null, ..Answer::default() };
        for event in events {
            if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
                answer.usage = usage.clone();
            }
            let Some(choice) = event["choices"].as_array().and_then(|c| c.iter().find(|c| c["index"].as_u64().unwrap_or(0) == 0)) else {
                continue;
            };
            if let Some(finish) = choice["finish_reason"].as_str() {
                answer.finish = Some(finish.to_string());
            }
            if let Some(ids) = dialect.token_ids(choice) {
                answer.token_ids.get_or_insert_with(Vec::new).extend(ids);
            }
            answer.content.push_str(choice["text"].as_str().unwrap_or_default());
            let Some(part) = choice.get("delta").or_else(|| choice.get("message")) else { continue };
            answer.content.push_str(part["content"].as_str().unwrap_or_default());
            answer.reasoning.push_str(part["reasoning_content"].as_str().unwrap_or_default());
            for (position, call) in part["tool_calls"].as_array().into_iter().flatten().enumerate() {
                let index = call["index"].as_u64().map_or(position, |i| i as usize);
                if answer.calls.len() <= index {
                    answer.calls.resize(index + 1, (String::new(), String::new()));
                }
                let (name, arguments) = &mut answer.calls[index];
                name.push_str(call["function"]["name"].as_str().unwrap_or_default());
                match &call["function"]["arguments"] {
                    Value::String(piece) => arguments.push_str(piece),
                    Value::Null => {}
                    other => arguments.push_str(&other.to_string()),
                }
            }
        }
        answer
    }

    /// The reply as the model would have written it: reasoning in its tags, the text, and each
    /// tool call in the generic format, for the tool-call parser.
    fn text(&self, chat: bool) -> String {
        if !chat {
            return self.content.clone();
        }
        let mut text = String::new();
        if !self.reasoning.is_empty() {
            text.push_str(&format!("{}{}{}", thinking::OPEN, self.reasoning, thinking::CLOSE));
        }
        text.push_str(&self.content);
        for (name, arguments) in &self.calls {
            let arguments = match serde_json::from_str::<Value>(arguments) {
                Ok(Value::Object(map)) => map,
                // Not an object: left for the tool-call parser to report to the model.
                Ok(other) => [("arguments".to_string(), other)].into_iter().collect(),
                Err(_) => [("arguments".to_string(), Value::String(arguments.clone()))].into_iter().collect(),
            };
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&call_text(&ToolCall { id: String::new(), name: name.clone(), arguments }));
        }
        text
    }
}

impl LanguageModel for RemoteModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, on_text: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        if request.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let tools = matches!(&request.prompt, Prompt::Chat { tools, .. } if !tools.is_empty());
        let unenforced = request.constraint.as_ref().filter(|c| !self.dialect.constraint(&mut Map::new(), c, self.api(), tools));
        let completion = match unenforced {
            None => self.complete(&request, request.sampling.seed)?,
            Some(constraint) => self.complete_checked(&request, constraint)?,
        };
        on_text(&completion.text);
        Ok(completion)
    }

    fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError> {
        if let Some(tokens) = self.prompt_tokens(prompt)? {
            return Ok(tokens.len());
        }
        // The chat API without a local tokenizer: the server counts (vLLM's and apigen-mt's
        // `/tokenize` take messages).
        let Prompt::Chat { messages, tools, add_generation_prompt, .. } = prompt else {
            return Err(EngineError::Invalid(format!("{} speaks the chat API: only chat prompts", self.what())));
        };
        let mut body = json!({"model": self.info.name, "messages": messages.iter().map(wire_message).collect::<Vec<_>>(),
                              "add_generation_prompt": add_generation_prompt});
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools.clone());
        }
        let answer = self.client.post("/tokenize", &body).map_err(|f| f.into_engine_error(&self.what()))?;
        answer["count"]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| EngineError::Backend(format!("backend_error: {}: /tokenize answered without a count", self.what())))
    }

    fn opens_reasoning(&self, prompt: &Prompt) -> Result<bool, EngineError> {
        match &self.text {
            Text::Local(frontend) => frontend.opens_reasoning(prompt),
            Text::ServerTemplate { template, .. } => {
                let Prompt::Chat { messages, tools, add_generation_prompt, thinking: enable } = prompt else {
                    return Ok(false);
                };
                if !template.sources().any(|t| t.contains(thinking::OPEN)) {
                    return Ok(false);
                }
                let text = template
                    .render_with_thinking(messages, tools, *add_generation_prompt, *enable)
                    .map_err(|e| EngineError::Template(format!("{e:#}")))?;
                Ok(thinking::prompt_opens_reasoning(&text))
            }
            // The server splits reasoning off into `reasoning_content`; see `complete`.
            Text::Chat(_) => Ok(false),
        }
    }

    fn metrics(&self) -> EngineMetrics {
        EngineMetrics {
            requests: self.requests.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            generated_tokens: self.completion_tokens.load(Ordering::Relaxed),
            ..EngineMetrics::default()
        }
    }

    /// The prompt as it goes to the server, where it is rendered here; `None` on the chat API
    /// (the server renders it).
    fn render_prompt(&self, prompt: &Prompt) -> Result<Option<String>, EngineError> {
        match (&self.text, prompt) {
            (Text::Local(frontend), _) => frontend.render(prompt),
            (Text::ServerTemplate { template, .. }, Prompt::Chat { messages, tools, add_generation_prompt, thinking }) => template
                .render_with_thinking(messages, tools, *add_generation_prompt, *thinking)
                .map(Some)
                .map_err(|e| EngineError::Template(format!("{e:#}"))),
            (Text::ServerTemplate { .. }, Prompt::Text(text)) => Ok(Some(text.clone())),
            _ => Ok(None),
        }
    }

    /// The server's own queue decides how many of its requests run at once; what this client
    /// may ask of it is its most requests in flight, whatever the context length.
    fn capacity(&self, _context_tokens: usize) -> Option<usize> {
        Some(self.server.max_in_flight)
    }

    fn server_report(&self) -> Option<ServerReport> {
        Some(self.report())
    }
}

/// The engine's answer to a prompt that leaves no room to generate, so that both backends end
/// such a conversation the same way.
fn too_long(prompt_tokens: usize, context_length: usize) -> Option<Completion> {
    (prompt_tokens >= context_length).then(|| Completion {
        text: String::new(),
        reasoning: None,
        tokens: Vec::new(),
        prompt_tokens,
        generated_count: None,
        cached_tokens: 0,
        finish_reason: FinishReason::Length,
        error: Some(format!("the prompt has {prompt_tokens} tokens; the context holds {context_length}")),
    })
}

/// A warning when the server gives a request less context than the model has: prompts past
/// the server's limit then end as `context_exceeded`, which looks like a weak model rather than
/// a server setting. llama-server divides `-c` among its `-np` slots, so this is easy to do by
/// accident there.
fn short_context_warning(url: &str, model: &str, flavor: Flavor, server_context: usize, model_context: usize) -> Option<String> {
    if server_context >= model_context {
        return None;
    }
    let hint = if flavor == Flavor::LlamaServer {
        format!(" (llama-server divides -c among its -np slots: give -c {model_context} times the slots for the whole context)")
    } else {
        String::new()
    };
    Some(format!(
        "warning: {url} gives each request {server_context} tokens of context, {model} has {model_context}; \
         prompts longer than {server_context} tokens will end as context_exceeded{hint}"
    ))
}

/// Whether llama-server takes llguidance grammars (it does when built with `LLAMA_LLGUIDANCE`).
fn probe_lark(client: &Client, model: &str) -> bool {
    let body = json!({"model": model, "prompt": "a", "max_tokens": 1, "temperature": 0.0, "grammar": Dialect::lark_probe()});
    match client.post_once("completions", &body) {
        Ok(_) => true,
        Err(failure) => {
            tracing::info!("{}: no llguidance grammars ({failure:?}); tool-call grammars are checked here instead", client.base());
            false
        }
    }
}

fn constraint_kind(constraint: &Constraint) -> &'static str {
    match constraint {
        Constraint::JsonSchema(_) => "JSON schema",
        Constraint::Regex(_) => "regex",
        Constraint::Lark(_) => "grammar",
    }
}

/// `max_position_embeddings` of a `config.json`.
fn config_context(config: &Option<std::path::PathBuf>) -> Option<usize> {
    let text = std::fs::read_to_string(config.as_ref()?).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    json["max_position_embeddings"].as_u64().map(|n| n as usize)
}

fn token_list(value: &Value) -> Option<Vec<u32>> {
    value.as_array()?.iter().map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok())).collect()
}

/// A message in the OpenAI wire layout: tool-call arguments as a JSON string.
fn wire_message(message: &Message) -> Value {
    let mut out = json!({"role": message.role.as_str(), "content": message.content});
    if !message.tool_calls.is_empty() {
        out["tool_calls"] = message
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": Value::Object(c.arguments.clone()).to_string()}}))
            .collect();
    }
    if let Some(id) = &message.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_context_below_the_models_is_warned_about() {
        // llama-server at -c 16384 -np 4: 4,096 tokens a slot for a model of 8,192.
        let warning = short_context_warning("http://127.0.0.1:8081/v1", "smollm2", Flavor::LlamaServer, 4096, 8192).unwrap();
        assert!(warning.contains("4096 tokens of context, smollm2 has 8192"), "{warning}");
        assert!(warning.contains("-np"), "llama-server gets the hint about its slots: {warning}");
        let vllm = short_context_warning("http://h/v1", "m", Flavor::Vllm, 4096, 32768).unwrap();
        assert!(!vllm.contains("-np"), "{vllm}");
        assert_eq!(short_context_warning("http://h/v1", "m", Flavor::LlamaServer, 8192, 8192), None);
        assert_eq!(short_context_warning("http://h/v1", "m", Flavor::Vllm, 32768, 8192), None);
    }
}
