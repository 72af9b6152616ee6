//! How a role names an inference server: the model spec `URL[#MODEL]`, and the options that say
//! how to reach it.
//!
//! The options fall in two groups. What decides the records a run writes (the served model, the
//! template source, the API) is hashed into the run's config; what decides only how fast or
//! where (the URL, the API-key variable, the timeout, the in-flight limit, the retries) is not,
//! so a run can resume against the same model served elsewhere (see
//! [`crate::config::UNHASHED`]).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Which endpoint carries the prompts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `/v1/completions` with the prompt rendered here by the model's chat template: the server's
    /// own template cannot change the data.
    #[default]
    Completions,
    /// `/v1/chat/completions`: the server renders the messages with its template and parses tool
    /// calls itself.
    Chat,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Completions => "completions",
            Api::Chat => "chat",
        }
    }
}

/// The server dialects whose extra parameters differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// `apigen-mt serve`.
    ApigenMt,
    Vllm,
    Sglang,
    /// llama.cpp's `llama-server`.
    LlamaServer,
    /// Any other OpenAI-compatible server: only the OpenAI parameters.
    Openai,
}

impl Flavor {
    pub const ALL: [Flavor; 5] = [Flavor::ApigenMt, Flavor::Vllm, Flavor::Sglang, Flavor::LlamaServer, Flavor::Openai];

    pub fn name(self) -> &'static str {
        match self {
            Flavor::ApigenMt => "apigen-mt",
            Flavor::Vllm => "vllm",
            Flavor::Sglang => "sglang",
            Flavor::LlamaServer => "llama-server",
            Flavor::Openai => "openai",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|f| f.name() == name) {
            Some(flavor) => Ok(flavor),
            None => {
                let known: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
                bail!("unknown server flavor {name:?} (known: {})", known.join(", "))
            }
        }
    }

    /// The flavor a `/v1/models` entry's `owned_by` names.
    pub fn from_owner(owned_by: &str) -> Self {
        match owned_by {
            "apigen-mt" => Flavor::ApigenMt,
            "vllm" => Flavor::Vllm,
            "sglang" => Flavor::Sglang,
            "llamacpp" | "llama.cpp" => Flavor::LlamaServer,
            _ => Flavor::Openai,
        }
    }
}

/// The default request timeout, in seconds: long generations on a busy server take minutes.
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// The default limit of requests in flight to one server model.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;
/// The default retries of a request after a timeout, a connection error, a 429 or a 5xx.
pub const DEFAULT_RETRIES: usize = 5;

/// A server role's options as written in `run.toml` (`[server]` for every role, `[ROLE.server]`
/// for one) or given by flags: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// The base URL, e.g. `http://127.0.0.1:8000/v1` (`/v1` is added when the URL has no path).
    pub url: Option<String>,
    /// The served model name; default: the first entry of the server's `/v1/models`.
    pub model: Option<String>,
    /// Where the chat template and tokenizer come from: a preset, a local model folder or a Hugging
    /// Face repo; `server` for the server's own (llama-server's `/props` and `/tokenize`).
    /// Default: the served model name, when it is one of those, else the server's.
    pub template: Option<String>,
    /// `completions` (default) or `chat`.
    pub api: Option<Api>,
    /// The server's dialect; default: detected from `/v1/models`.
    pub flavor: Option<String>,
    /// The environment variable holding the API key, sent as a bearer token.
    pub api_key_env: Option<String>,
    pub timeout_secs: Option<u64>,
    pub max_in_flight: Option<usize>,
    pub retries: Option<usize>,
}

impl ServerFile {
    /// `self` with every field that `other` sets taken from `other`.
    pub fn merge(&mut self, other: &ServerFile) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(url, model, template, api, flavor, api_key_env, timeout_secs, max_in_flight, retries);
    }

    /// Whether any field is set.
    pub fn is_empty(&self) -> bool {
        *self == ServerFile::default()
    }
}

/// A server role, resolved. `template` is filled in when the server is first reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub url: String,
    /// The template source as resolved (see [`ServerFile::template`]); `None` until the server is
    /// reached, and for the chat API, where the server renders.
    pub template: Option<String>,
    pub api: Api,
    pub flavor: Option<Flavor>,
    pub api_key_env: Option<String>,
    pub timeout_secs: u64,
    pub max_in_flight: usize,
    pub retries: usize,
}

impl Server {
    /// Resolves `options` for the server at `url`.
    pub fn resolve(url: &str, options: &ServerFile) -> Result<Self> {
        let url = normalize_url(url)?;
        let timeout_secs = options.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        let max_in_flight = options.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if timeout_secs == 0 || max_in_flight == 0 {
            bail!("server {url}: timeout_secs and max_in_flight must be at least 1");
        }
        if let Some(var) = &options.api_key_env {
            if var.trim().is_empty() {
                bail!("server {url}: api_key_env names no variable");
            }
        }
        Ok(Self {
            url,
            template: options.template.clone(),
            api: options.api.unwrap_or_default(),
            flavor: options.flavor.as_deref().map(Flavor::from_name).transpose()?,
            api_key_env: options.api_key_env.clone(),
            timeout_secs,
            max_in_flight,
            retries: options.retries.unwrap_or(DEFAULT_RETRIES),
        })
    }
}

/// Whether a model spec names a server.
pub fn is_server(spec: &str) -> bool {
    spec.starts_with("http://") || spec.starts_with("https://")
}

/// Splits `URL[#MODEL]` into the base URL and the served model name, if given.
pub fn parse(spec: &str) -> Result<(String, Option<String>)> {
    let (url, model) = match spec.split_once('#') {
        Some((url, model)) if !model.trim().is_empty() => (url, Some(model.trim().to_string())),
        Some(_) => bail!("model spec {spec:?}: nothing after `#` (write URL#MODEL, or the URL alone for the server's first model)"),
        None => (spec, None),
    };
    Ok((normalize_url(url)?, model))
}

/// The base URL without a trailing slash, with `/v1` added when it has no path (`http://host:8000`
/// means `http://host:8000/v1`, as OpenAI clients take it).
pub fn normalize_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
        bail!("server URL {url:?} must start with http:// or https://");
    };
    if rest.is_empty() || rest.starts_with('/') {
        bail!("server URL {url:?} names no host");
    }
    if rest.contains(char::is_whitespace) {
        bail!("server URL {url:?} contains whitespace");
    }
    Ok(if rest.contains('/') { url.to_string() } else { format!("{url}/v1") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_into_url_and_model() {
        assert_eq!(
            parse("http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct").unwrap(),
            ("http://127.0.0.1:8000/v1".to_string(), Some("Qwen/Qwen2.5-7B-Instruct".to_string()))
        );
        assert_eq!(parse("https://host:9/").unwrap(), ("https://host:9/v1".to_string(), None));
        assert_eq!(parse("http://host/api/v1/").unwrap().0, "http://host/api/v1");
        for bad in ["http://", "http://host#", "ftp://host", "http:///v1", "http://ho st"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(is_server("http://x") && is_server("https://x") && !is_server("org/name"));
    }

    #[test]
    fn options_resolve_with_defaults_and_checks() {
        let s = Server::resolve("http://h:1", &ServerFile::default()).unwrap();
        assert_eq!(
            (s.url.as_str(), s.api, s.timeout_secs, s.retries),
            ("http://h:1/v1", Api::Completions, DEFAULT_TIMEOUT_SECS, DEFAULT_RETRIES)
        );
        let bad = ServerFile { max_in_flight: Some(0), ..Default::default() };
        assert!(Server::resolve("http://h", &bad).is_err());
        let bad = ServerFile { flavor: Some("tgi".into()), ..Default::default() };
        assert!(format!("{:#}", Server::resolve("http://h", &bad).unwrap_err()).contains("vllm"));
        assert_eq!(Flavor::from_owner("llamacpp"), Flavor::LlamaServer);
        assert_eq!(Flavor::from_owner("someone"), Flavor::Openai);
    }
}
