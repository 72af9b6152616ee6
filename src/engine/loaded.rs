//! A model loaded and ready to serve: the decoder, and the [`Frontend`] that turns requests into
//! token ids (tokenizer, chat template, constraint compiler).
//!
//! The split follows who may touch what: the decoder belongs to the engine's worker alone, while
//! the frontend is shared by every caller thread, which prepare their own requests in parallel.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device};
use serde::Serialize;

use super::{Completion, EngineError, FinishReason, ModelInfo, Prompt, Request};
use crate::chat::thinking;
use crate::chat::tools::ToolFormat;
use crate::chat::{CalendarDate, ChatTemplate, RenderOptions};
use crate::constrain::{ConstraintCompiler, SeqConstraint};
use crate::model::presets::{self, Preset};
use crate::model::source::{self, HubConfig, TextFiles};
use crate::model::{Decoder, DecoderOptions};
use crate::tokenizer::Tokenizer;

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Device and dtype.
    pub decoder: DecoderOptions,
    pub hub: HubConfig,
    /// The date `strftime_now` reports in chat templates.
    pub date: CalendarDate,
}

impl LoadOptions {
    /// CPU, the default dtype, the HF environment, the templates' default date.
    pub fn from_env(offline: bool) -> Result<Self> {
        Ok(Self { decoder: DecoderOptions::default(), hub: HubConfig::from_env(offline)?, date: RenderOptions::default().date })
    }
}

/// Parses `--device`. The forward pass runs on the CPU only (its kernels are this crate's own),
/// so a GPU device is refused with the way to use one: an inference server as the backend.
pub fn parse_device(name: &str) -> Result<Device> {
    let kind = name.split_once(':').map_or(name, |(kind, _)| kind);
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "metal" => bail!(
            "--device {name}: the in-process engine runs on the CPU only. To use a GPU, serve the model with \
             vLLM, SGLang or llama-server and name the server as the model, e.g. \
             --model http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct (see the README, \"Inference servers\")"
        ),
        other => bail!("unknown device {other:?}: the in-process engine runs on cpu (GPUs through an inference server)"),
    }
}

/// Parses `--dtype`.
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => bail!("unknown dtype {other:?}: expected f32, f16 or bf16"),
    }
}

/// What `models inspect` reports about a loaded model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDescription {
    pub name: String,
    pub architecture: String,
    pub parameters: u64,
    /// The weights' storage: a dtype (`bf16`) or the quantization mix of a GGUF (`Q4_1`).
    pub weights: String,
    pub context_length: usize,
    pub vocab_size: usize,
    pub bos_token: Option<String>,
    pub eos_tokens: Vec<String>,
    pub template_supports_tools: bool,
    pub tool_format: String,
}

/// A model ready to serve.
pub struct LoadedModel {
    pub decoder: Decoder,
    pub frontend: Frontend,
    pub info: ModelInfo,
}

/// The tool-call format the model speaks: its preset's, else what its template shows. A template
/// that renders tools in a way this crate does not know falls back to the generic format, with a
/// warning, rather than refusing to load a model that may never be offered tools.
pub fn tool_format(template: &ChatTemplate, preset_hint: Option<&str>, spec: &str) -> ToolFormat {
    ToolFormat::detect(template, preset_hint).unwrap_or_else(|err| {
        tracing::warn!("{spec}: {err:#}; using the generic tool-call format");
        ToolFormat::Generic
    })
}

impl LoadedModel {
    /// Resolves `spec` (path, hub id or preset) and loads everything.
    pub fn load(spec: &str, options: &LoadOptions) -> Result<Self> {
        let resolved = source::resolve(spec, &options.hub)?;
        let files = &resolved.files;
        let decoder = Decoder::load(&files.weights, &options.decoder)?;
        let (tokenizer, template) = load_text(&files.text(), options.date)?;
        let config = decoder.config();
        let mut eos = config.eos_token_ids.clone();
        if let Some(path) = &files.generation_config {
            eos.extend(generation_config_eos(path)?);
        }
        if let Some(id) = tokenizer.token_to_id(template.eos_token()) {
            eos.push(id);
        }
        eos.sort_unstable();
        eos.dedup();
        if eos.is_empty() {
            bail!("{spec}: the model names no end-of-sequence token (config, generation_config or template)");
        }
        let context_length = match &resolved.preset {
            Some(preset) => preset.context_length.min(config.max_position_embeddings),
            None => config.max_position_embeddings,
        };
        let info = ModelInfo {
            name: resolved.name.clone(),
            architecture: config.arch.name().to_string(),
            context_length,
            tool_format: tool_format(&template, resolved.preset.as_ref().map(|p| p.tool_format.name()), spec).name().to_string(),
            template_supports_tools: template.supports_tools(),
        };
        let vocab_size = tokenizer.vocab_size();
        let text = Some(TextModel { tokenizer, template });
        let frontend = Frontend { text, vocab_size, eos, context_length, constraints: OnceLock::new() };
        Ok(Self { decoder, frontend, info })
    }

    /// The model of preset `name` with random weights from `seed` (see
    /// [`crate::model::RandomModel`]): for benchmarks, which need no trained weights and no
    /// tokenizer. It serves token-id prompts only and never ends on its own (it has no
    /// end-of-sequence token), so only `max_tokens` and the context stop it.
    pub fn random(name: &str, seed: u64, options: &LoadOptions) -> Result<Self> {
        Self::random_from(&presets::find_random(name)?, seed, options)
    }

    /// Like [`Self::random`], for a preset already in hand.
    pub fn random_from(preset: &Preset, seed: u64, options: &LoadOptions) -> Result<Self> {
        let model = preset.random_model(seed)?;
        let decoder =
            Decoder::random(&model, &options.decoder).with_context(|| format!("building preset {} with random weights", preset.name))?;
        let config = decoder.config();
        let info = ModelInfo {
            name: format!("{} (random weights)", preset.name),
            architecture: config.arch.name().to_string(),
            context_length: preset.context_length,
            tool_format: preset.tool_format.name().to_string(),
            template_supports_tools: false,
        };
        let frontend = Frontend {
            text: None,
            vocab_size: config.vocab_size,
            eos: Vec::new(),
            context_length: preset.context_length,
            constraints: OnceLock::new(),
        };
        Ok(Self { decoder, frontend, info })
    }

    /// The facts `models inspect` prints.
    pub fn describe(&self) -> ModelDescription {
        let config = self.decoder.config();
        let token_text = |id: u32| self.frontend.tokenizer().and_then(|t| t.id_to_token(id)).unwrap_or_else(|| format!("#{id}"));
        ModelDescription {
            name: self.info.name.clone(),
            architecture: self.info.architecture.clone(),
            parameters: self.decoder.param_count() as u64,
            weights: self.decoder.weights_summary().to_string(),
            context_length: self.info.context_length,
            vocab_size: config.vocab_size,
            bos_token: config.bos_token_id.map(token_text),
            eos_tokens: self.frontend.eos.iter().map(|&id| token_text(id)).collect(),
            template_supports_tools: self.info.template_supports_tools,
            tool_format: self.info.tool_format.clone(),
        }
    }
}

/// The tokenizer and chat template: from the HF files when present, else from GGUF metadata.
pub fn load_text(files: &TextFiles, date: CalendarDate) -> Result<(Tokenizer, ChatTemplate)> {
    let gguf = files.gguf.as_deref();
    let metadata = OnceLock::new();
    let gguf_content = |path: &Path| -> Result<&gguf_file::Content> {
        if let Some(content) = metadata.get() {
            return Ok(content);
        }
        let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| anyhow!("reading GGUF {}: {e}", path.display()))?;
        Ok(metadata.get_or_init(|| content))
    };
    let tokenizer = match (&files.tokenizer, gguf) {
        (Some(path), _) => Tokenizer::from_file(path)?,
        (None, Some(path)) => Tokenizer::from_gguf(gguf_content(path)?, path)?,
        (None, None) => bail!("no tokenizer.json beside the model weights"),
    };
    let template = match (&files.tokenizer_config, &files.chat_template, gguf) {
        (Some(config), _, _) => ChatTemplate::from_tokenizer_config(config)?,
        (None, Some(jinja), _) => ChatTemplate::from_jinja_file(jinja, "", "")?,
        (None, None, Some(path)) => ChatTemplate::from_gguf(gguf_content(path)?, path)?,
        (None, None, None) => bail!("no chat template: no tokenizer_config.json or chat_template.jinja beside the model"),
    };
    Ok((tokenizer, template.with_options(RenderOptions { date })))
}

/// `eos_token_id` of a `generation_config.json`: a number or a list of numbers.
pub fn generation_config_eos(path: &Path) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let ids = match &json["eos_token_id"] {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(items) => items.iter().map(|v| v.as_u64()).collect::<Option<Vec<_>>>().unwrap_or_default(),
        other => other.as_u64().into_iter().collect(),
    };
    ids.into_iter().map(|id| u32::try_from(id).map_err(|_| anyhow!("{}: eos_token_id {id} is out of range", path.display()))).collect()
}

/// A request ready for the worker: its prompt ids and compiled constraint.
pub struct Prepared {
    pub tokens: Vec<u32>,
    pub request: Request,
    pub constraint: Option<SeqConstraint>,
}

/// What admission decided.
pub enum Admission {
    Run(Prepared),
    /// Finished without running: the prompt leaves no room to generate.
    Done(Completion),
}

/// Everything between a request and token ids; shared by every caller thread.
pub struct Frontend {
    /// `None` for a model with random weights, which takes token ids only.
    text: Option<TextModel>,
    /// Ids a prompt may use: the tokenizer's, or the model's vocabulary without one.
    vocab_size: usize,
    eos: Vec<u32>,
    context_length: usize,
    /// Built on the first constrained request: the token trie costs time and memory that plain
    /// chat never needs.
    constraints: OnceLock<Result<ConstraintCompiler, String>>,
}

/// A model's text side alone, without its weights: how a prompt becomes text (the chat
/// template) and token ids (the tokenizer). The engine's frontend holds one; `models render`
/// loads one to show the exact prompt a request becomes.
pub struct TextModel {
    tokenizer: Tokenizer,
    template: ChatTemplate,
}

impl TextModel {
    /// Resolves `spec` (path, hub id or preset) and loads its tokenizer and chat template.
    pub fn load(spec: &str, options: &LoadOptions) -> Result<Self> {
        // The text files only: a model's weights are not needed to render its prompts.
        let resolved = source::resolve_text(spec, &options.hub)?;
        let (tokenizer, template) = load_text(&resolved.files, options.date)?;
        Ok(Self { tokenizer, template })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The text of a prompt as the model is given it: a chat prompt through the chat template,
    /// raw text as it is; `None` for token ids, which have no text of their own.
    pub fn render(&self, prompt: &Prompt) -> Result<Option<String>, EngineError> {
        match prompt {
            Prompt::Tokens(_) => Ok(None),
            Prompt::Text(text) => Ok(Some(text.clone())),
            Prompt::Chat { messages, tools, add_generation_prompt, thinking: enable } => self
                .template
                .render_with_thinking(messages, tools, *add_generation_prompt, *enable)
                .map(Some)
                .map_err(|e| EngineError::Template(format!("{e:#}"))),
        }
    }

    /// The token ids of prompt text, special-token text recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.tokenizer.encode(text, true).map_err(|e| EngineError::Invalid(format!("{e:#}")))
    }
}

impl Frontend {
    /// The text side alone, for a model that runs elsewhere: it renders, tokenizes and compiles
    /// constraints exactly as the engine would for the same files.
    pub fn text_only(tokenizer: Tokenizer, template: ChatTemplate, eos: Vec<u32>, context_length: usize) -> Self {
        let vocab_size = tokenizer.vocab_size();
        Self { text: Some(TextModel { tokenizer, template }), vocab_size, eos, context_length, constraints: OnceLock::new() }
    }

    /// The same frontend, for a context of `context_length` tokens (a server's limit).
    pub fn with_context_length(mut self, context_length: usize) -> Self {
        self.context_length = context_length;
        self
    }

    /// `None` for a model with random weights.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.text.as_ref().map(|t| &t.tokenizer)
    }

    /// `None` for a model with random weights.
    pub fn template(&self) -> Option<&ChatTemplate> {
        self.text.as_ref().map(|t| &t.template)
    }

    /// One more than the largest token id a prompt may use.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The text side, or the refusal a text or chat prompt gets without one.
    fn text(&self) -> Result<&TextModel, EngineError> {
        self.text
            .as_ref()
            .ok_or_else(|| EngineError::Invalid("this model has random weights and no tokenizer: only token-id prompts".into()))
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    pub fn is_eos(&self, token: u32) -> bool {
        self.eos.contains(&token)
    }

    /// Every token that ends generation.
    pub fn eos_tokens(&self) -> &[u32] {
        &self.eos
    }

    /// The prompt's text as the model is given it (see [`TextModel::render`]).
    pub fn render(&self, prompt: &Prompt) -> Result<Option<String>, EngineError> {
        match prompt {
            Prompt::Tokens(_) => Ok(None),
            _ => self.text()?.render(prompt),
        }
    }

    /// The prompt's token ids as the model will see them.
    pub fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>, EngineError> {
        if let Prompt::Tokens(tokens) = prompt {
            if let Some(bad) = tokens.iter().find(|&&t| t as usize >= self.vocab_size) {
                return Err(EngineError::Invalid(format!("token id {bad} is outside the vocabulary")));
            }
            return Ok(tokens.clone());
        }
        let side = self.text()?;
        match side.render(prompt)? {
            Some(text) => side.encode(&text),
            None => Err(EngineError::Invalid("a prompt without text".into())),
        }
    }

    /// Whether the rendered chat prompt ends inside an open `<think>` block. Templates that
    /// never write the tag are not rendered twice to find out.
    pub fn opens_reasoning(&self, prompt: &Prompt) -> Result<bool, EngineError> {
        let Prompt::Chat { messages, tools, add_generation_prompt, thinking: enable } = prompt else {
            return Ok(false);
        };
        let side = self.text()?;
        if !side.template.sources().any(|text| text.contains(thinking::OPEN)) {
            return Ok(false);
        }
        let text = side
            .template
            .render_with_thinking(messages, tools, *add_generation_prompt, *enable)
            .map_err(|e| EngineError::Template(format!("{e:#}")))?;
        Ok(thinking::prompt_opens_reasoning(&text))
    }

    /// Tokenizes and checks a request, and compiles its constraint.
    pub fn prepare(&self, request: &Request) -> Result<Admission, EngineError> {
        let tokens = self.tokenize(&request.prompt)?;
        if tokens.is_empty() {
            return Err(EngineError::Invalid("the prompt is empty".into()));
        }
        if tokens.len() >= self.context_length {
            return Ok(Admission::Done(Completion {
                text: String::new(),
                reasoning: None,
                tokens: Vec::new(),
                prompt_tokens: tokens.len(),
                generated_count: None,
                cached_tokens: 0,
                finish_reason: FinishReason::Length,
                error: Some(format!("the prompt has {} tokens; the context holds {}", tokens.len(), self.context_length)),
            }));
        }
        let constraint = match &request.constraint {
            None => None,
            Some(constraint) => {
                let Some(side) = &self.text else {
                    return Err(EngineError::Constraint("a model with random weights has no tokenizer to constrain".into()));
                };
                let compiler = self
                    .constraints
                    .get_or_init(|| ConstraintCompiler::new(side.tokenizer.hf(), &self.eos).map_err(|e| format!("{e:#}")))
                    .as_ref()
                    .map_err(|e| EngineError::Constraint(e.clone()))?;
                Some(compiler.compile(constraint)?)
            }
        };
        Ok(Admission::Run(Prepared { tokens, request: request.clone(), constraint }))
    }
}
