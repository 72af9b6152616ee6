//! `apigen-mt models`: the presets, and what a model is made of.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::load::ModelArgs;
use crate::model::presets;

/// List model presets or inspect a model.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show the model presets.
    #[command(long_about = "Show the model presets: short names for models with a known hub location,
tool-call format and context length. Built-in presets come from the repository's models/ folder;
add your own (or override one) as <name>.toml files in $APIGEN_MT_MODELS or
~/.config/apigen-mt/models, with the keys description, model, tool_format and context_length,
and optionally a [shape] table (the architecture, for `bench --random-weights`; see models/*.toml).

Examples:
  apigen-mt models list
  apigen-mt models list --json | jq '.[].name'")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Load a model and describe it.
    #[command(long_about = "Load a model and describe it: architecture, parameter count, weight dtype or
quantization, context length, special tokens, and whether its chat template renders tools itself
(otherwise apigen-mt describes tools to it in a generic format).

Examples:
  apigen-mt models inspect --model ../shared/models/smollm2-135m-instruct/model-q4_1.gguf
  apigen-mt models inspect --model qwen2.5-0.5b-instruct --offline --json")]
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ModelsArgs) -> Result<()> {
    match args.command {
        ModelsCommand::List { json } => list(json),
        ModelsCommand::Inspect { model, json } => inspect(&model, json),
    }
}

fn list(json: bool) -> Result<()> {
    let presets = presets::load_all(&presets::user_dirs())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&presets)?);
        return Ok(());
    }
    let name_width = presets.iter().map(|p| p.name.len()).max().unwrap_or(4).max(4);
    println!("{:<name_width$}  {:<8}  {:>8}  MODEL", "NAME", "TOOLS", "CONTEXT");
    for p in &presets {
        println!("{:<name_width$}  {:<8}  {:>8}  {}", p.name, p.tool_format.name(), p.context_length, p.model);
    }
    Ok(())
}

fn inspect(args: &ModelArgs, json: bool) -> Result<()> {
    let d = args.load()?.describe();
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    println!("name:            {}", d.name);
    println!("architecture:    {}", d.architecture);
    println!("parameters:      {} ({:.1}M)", d.parameters, d.parameters as f64 / 1e6);
    println!("weights:         {}", d.weights);
    println!("context length:  {}", d.context_length);
    println!("vocabulary:      {}", d.vocab_size);
    println!("bos token:       {}", d.bos_token.as_deref().unwrap_or("(none)"));
    println!("eos tokens:      {}", d.eos_tokens.join(" "));
    println!("template tools:  {}", if d.template_supports_tools { "yes" } else { "no (generic tool prompt)" });
    println!("tool format:     {}", d.tool_format);
    Ok(())
}
