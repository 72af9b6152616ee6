//! Prompt templates for the pipeline's roles (generator, reviewer, summarizer, recombination
//! writer, simulated user, judge).
//!
//! Each prompt is a minijinja template in `prompts/`. The files there are compiled in as
//! defaults, so the binary works from anywhere; `--prompts DIR` overrides any of them by file
//! name, so users tune prompts without recompiling. Templates render with the same
//! Python-compatible settings as chat templates (see `chat::template::python_environment`), and
//! an undefined variable is an error rather than an empty string.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::chat::template::python_environment;

/// The compiled-in templates: `(file name, source)`. A new role adds its file here.
const DEFAULTS: &[(&str, &str)] = &[
    ("generator.jinja", include_str!("../prompts/generator.jinja")),
    ("reviewer.jinja", include_str!("../prompts/reviewer.jinja")),
    ("summarizer.jinja", include_str!("../prompts/summarizer.jinja")),
    ("recombination.jinja", include_str!("../prompts/recombination.jinja")),
    ("judge.jinja", include_str!("../prompts/judge.jinja")),
    ("user.jinja", include_str!("../prompts/user.jinja")),
];

/// A set of prompt templates, ready to render.
pub struct Prompts {
    env: minijinja::Environment<'static>,
}

impl Prompts {
    /// The compiled-in defaults, overridden by same-named `*.jinja` files in `dir` when given.
    /// An override with an unknown name is an error, so a typo cannot silently do nothing.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut env = python_environment()?;
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in DEFAULTS {
            env.add_template(name, source).with_context(|| format!("compiled-in prompt {name}"))?;
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).with_context(|| format!("reading prompts directory {}", dir.display()))?;
            for entry in entries {
                let path = entry.with_context(|| format!("reading prompts directory {}", dir.display()))?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).filter(|n| n.ends_with(".jinja")) else {
                    continue;
                };
                if !DEFAULTS.iter().any(|(known, _)| *known == name) {
                    let known: Vec<&str> = DEFAULTS.iter().map(|(n, _)| *n).collect();
                    bail!("{}: no prompt is called {name} (known: {})", path.display(), known.join(", "));
                }
                let source = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                env.add_template_owned(name.to_string(), source).with_context(|| format!("{}: invalid template", path.display()))?;
            }
        }
        Ok(Self { env })
    }

    /// Renders the template `name` (e.g. "generator.jinja") with `context`.
    pub fn render(&self, name: &str, context: impl Serialize) -> anyhow::Result<String> {
        let template = self.env.get_template(name).with_context(|| format!("prompt {name}"))?;
        template.render(minijinja::value::Serde(context)).with_context(|| format!("rendering prompt {name}"))
    }
}
