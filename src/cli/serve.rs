//! `apigen-mt serve`: the in-process engine as an OpenAI-compatible HTTP server.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::load::ModelArgs;
use crate::config::server::is_server;
use crate::engine::loaded::{self, Frontend};
use crate::model::source;
use crate::serve::{self, Options};

/// Serve a model over an OpenAI-compatible HTTP API.
#[derive(Debug, Args)]
#[command(long_about = "Serve a model over an OpenAI-compatible HTTP API: /v1/models, /v1/completions and
/v1/chat/completions (streamed with \"stream\": true), /health, and llama-server's /tokenize and /props.

Requests share the engine's continuous batching and prefix cache, and keep its batch invariance:
the same request with the same seed gives the same text whatever else is in flight. Chat requests
take tools and tool_choice (calls are parsed in the model's own format), response_format with a
JSON schema, and a Lark grammar (llguidance's dialect) as \"grammar\" or vLLM's
\"structured_outputs\". top_k, min_p and repetition_penalty are taken as extra parameters.
Parameters the server does not implement (logprobs, presence_penalty, ...) are refused with 400.

Another run can use it as a backend: --agent-model http://127.0.0.1:8000/v1

Example:
  apigen-mt serve --model smollm2-135m-instruct --port 8000
  curl -s localhost:8000/v1/chat/completions -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}'")]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The address to listen on; 0.0.0.0 opens the server to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port; 0 picks a free one (the address is printed on start).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Require this key as `Authorization: Bearer KEY` (401 without it); /health stays open.
    #[arg(long, env = "APIGEN_MT_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// The model name /v1/models lists (default: the model as given to --model, or its preset name).
    #[arg(long, value_name = "NAME")]
    pub served_model_name: Option<String>,
    /// Requests held at once, running or waiting; more get 503 until some finish.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_queue: usize,
    /// Seconds the requests in flight may finish after SIGTERM or Ctrl-C before they are cancelled.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub shutdown_grace: u64,
}

pub fn run(args: ServeArgs) -> Result<()> {
    if is_server(&args.model.model) {
        bail!("serve runs a model in process; {} is a server already", args.model.model);
    }
    let options = args.model.load_options()?;
    let engine = args.model.start()?;
    // The text side again, for /tokenize and /props (the engine keeps its own).
    let resolved = source::resolve(&args.model.model, &options.hub)?;
    let (tokenizer, template) = loaded::load_text(&resolved.files.text(), options.date)
        .with_context(|| format!("loading the tokenizer and template of {}", args.model.model))?;
    let text = Frontend::text_only(tokenizer, template, Vec::new(), engine.info().context_length);
    let name = args.served_model_name.clone().unwrap_or_else(|| engine.info().name.clone());
    let options = Options {
        host: args.host.clone(),
        port: args.port,
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        model_name: name.clone(),
        max_queue: args.max_queue,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    serve::serve(engine, Some(text), options, |address| {
        eprintln!("apigen-mt serve: {name} on http://{address}/v1 (Ctrl-C to stop)");
    })?;
    eprintln!("apigen-mt serve: stopped");
    Ok(())
}
