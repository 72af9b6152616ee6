//! `README.md` in a run directory: a Hugging Face dataset card, so that the folder uploads as it
//! is (`huggingface-cli upload ORG/NAME DIR --repo-type dataset`) and the hub shows the data.
//!
//! The YAML front matter carries what the hub reads: the licence (left for the user to choose,
//! with a comment saying so), task categories, the size category, and `configs` that point at
//! the dataset files (Parquet where written, else JSONL) with their record counts. The body
//! says how the data was made: the models per role with their licences where the preset knows
//! them, the settings, the funnel, the environment, the program version and config hash, and
//! the known limits. Every number is taken from `stats.json`.

use std::fmt::Write;

use serde_json::Value;

use super::contents::Contents;
use super::formats::{Container, Format, Layout};
use super::html::role_models;
use super::report::number;
use crate::model::presets;

/// The hub's size category for `n` records.
pub fn size_category(n: u64) -> &'static str {
    match n {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        _ => "10M<n<100M",
    }
}

/// A YAML scalar: a double-quoted string with JSON escapes, which YAML reads as the same text.
fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// The licence of a model the preset list knows, by preset name or by its hub id.
fn license(model: &str) -> Option<String> {
    let all = presets::load_all(&presets::user_dirs()).ok()?;
    all.into_iter().find(|p| p.name == model || p.model == model || p.model.split(':').next() == Some(model)).and_then(|p| p.license)
}

/// One `configs` entry of the front matter: a name and the file it reads.
struct Config {
    name: &'static str,
    file: &'static str,
    records: u64,
}

/// The dataset files present, one config per layout, preferring Parquet.
fn configs(contents: &Contents, records: u64) -> Vec<Config> {
    let mut out = Vec::new();
    for (layout, name) in [(Layout::ShareGpt, "sharegpt"), (Layout::OpenAi, "openai")] {
        let file = [Container::Parquet, Container::Jsonl]
            .into_iter()
            .map(|container| Format { layout, container }.file())
            .find(|file| contents.dir.join(file).is_file());
        if let Some(file) = file {
            out.push(Config { name, file, records });
        }
    }
    if out.is_empty() && contents.dir.join("blueprints.jsonl").is_file() {
        let n = contents.files.iter().find(|(f, _)| *f == "blueprints.jsonl").map_or(0, |(_, n)| *n as u64);
        out.push(Config { name: "blueprints", file: "blueprints.jsonl", records: n });
    }
    out
}

/// The tool names the dataset's records offer: from the first record of a dataset file.
fn offered_tools(contents: &Contents) -> Vec<String> {
    let path = contents.dir.join(Format { layout: Layout::OpenAi, container: Container::Jsonl }.file());
    let first = std::fs::read_to_string(path).ok().and_then(|t| t.lines().next().and_then(|l| serde_json::from_str::<Value>(l).ok()));
    match first {
        Some(r) => r["tools"].as_array().into_iter().flatten().filter_map(|t| t["function"]["name"].as_str().map(str::to_string)).collect(),
        None => {
            let mut names: Vec<String> = contents.records.iter().flat_map(|r| r.tools.iter().cloned()).collect();
            names.sort();
            names.dedup();
            names
        }
    }
}

fn front_matter(out: &mut String, contents: &Contents, title: &str, records: u64) {
    out.push_str("---\n");
    out.push_str("# license: choose this dataset's licence before you publish it (an SPDX-style id such as\n");
    out.push_str("# apache-2.0 or cc-by-4.0, or `other` with license_name). The models that wrote it may\n");
    out.push_str("# restrict your choice: see \"Models\" below.\n");
    out.push_str("license: unknown\n");
    let _ = writeln!(out, "pretty_name: {}", quoted(title));
    out.push_str("language:\n- en\ntask_categories:\n- text-generation\n");
    out.push_str("tags:\n- synthetic\n- function-calling\n- tool-use\n- multi-turn\n- agent\n- apigen-mt\n");
    let _ = writeln!(out, "size_categories:\n- {}", size_category(records));
    let configs = configs(contents, records);
    if !configs.is_empty() {
        out.push_str("configs:\n");
        for (i, c) in configs.iter().enumerate() {
            let _ = writeln!(out, "- config_name: {}", c.name);
            if i == 0 {
                out.push_str("  default: true\n");
            }
            let _ = writeln!(out, "  data_files:\n  - split: train\n    path: {}", quoted(c.file));
        }
        out.push_str("dataset_info:\n");
        for c in &configs {
            let _ = writeln!(out, "- config_name: {}\n  splits:\n  - name: train\n    num_examples: {}", c.name, c.records);
        }
    }
    out.push_str("---\n\n");
}

fn table(out: &mut String, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in rows {
        let cells: Vec<String> = row.into_iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(number(v)),
        _ => None,
    }
}

/// The card for the run in `contents`.
pub fn render(contents: &Contents) -> String {
    let stats = &contents.stats;
    let config = contents.config();
    let manifest = &contents.manifest;
    let domain = config["domain"].as_str().unwrap_or("unknown");
    let records = stats["dataset"]["records"].as_u64().unwrap_or(0);
    let title = format!("apigen-mt {domain} tool-use conversations");
    let mut out = String::new();
    front_matter(&mut out, contents, &title, records);

    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(
        out,
        "Synthetic multi-turn conversations between a simulated user and a tool-calling agent in the `{domain}` environment, \
         made with apigen-mt by the APIGen-MT method: task blueprints are generated and validated first \
         (format, execution against the environment, policy, a reviewer committee), then acted out, and a conversation is kept \
         only when the environment's final state equals the blueprint's and the agent said every expected output. \
         Every model ran locally; nothing was sent to an external API.\n"
    );
    let _ = writeln!(out, "This directory holds {} dataset records.\n", number(&stats["dataset"]["records"]));

    out.push_str("## Files\n\n");
    let mut files = Vec::new();
    for f in Format::ALL {
        if contents.dir.join(f.file()).is_file() {
            let what = match f.layout {
                Layout::ShareGpt => "ShareGPT layout (`conversations` of human/gpt/function_call/observation turns, `system`, `tools` as JSON); LLaMA-Factory's `sharegpt` loader",
                Layout::OpenAi => "OpenAI chat layout (`messages` with `tool_calls`, `tools`); transformers chat templates, TRL",
            };
            files.push(vec![format!("`{}`", f.file()), what.to_string()]);
        }
    }
    for (file, what) in [
        ("trajectories.jsonl", "every verified conversation with its verification, judge scores and token counts"),
        ("blueprints.jsonl", "the validated task blueprints (instruction, ground-truth actions, expected outputs, committee votes)"),
        ("blueprints.rejected.jsonl", "every failed Phase 1 attempt, with its stage and reason"),
        ("trajectories.rejected.jsonl", "every Phase 2 attempt not kept, with its reason"),
        ("heldout.jsonl", "validated blueprints held out for evaluation, never trained on"),
        ("stats.json", "the funnel and distributions; `report.md` and `report.html` show them"),
        ("manifest.json", "the command, the resolved config and its hash"),
    ] {
        if contents.dir.join(file).is_file() {
            files.push(vec![format!("`{file}`"), what.to_string()]);
        }
    }
    table(&mut out, &["file", "contents"], files);
    out.push_str(
        "In the Parquet files, `tools`, `metadata` and call `arguments` are JSON strings: their shape varies between records.\n\n",
    );
    out.push_str(
        "```python\nfrom datasets import load_dataset\nds = load_dataset(\"path/to/this/folder\", \"sharegpt\")  # or \"openai\"\n```\n\n",
    );

    out.push_str("## How it was made\n\n### Models\n\n");
    let roles = role_models(config);
    if roles.is_empty() {
        out.push_str("The manifest names no models.\n\n");
    } else {
        let rows = roles.iter().map(|(role, models)| {
            let licences: Vec<String> = models.iter().map(|m| license(m).unwrap_or_else(|| "unknown (not a preset)".into())).collect();
            let sampling = &config[role]["sampling"];
            let settings = ["temperature", "top_p"]
                .iter()
                .filter_map(|k| scalar(&sampling[*k]).map(|v| format!("{k} {v}")))
                .chain(scalar(&config[role]["max_tokens"]).map(|v| format!("max_tokens {v}")))
                .collect::<Vec<_>>();
            vec![
                role.clone(),
                models.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                licences.join(", "),
                settings.join(", "),
            ]
        });
        table(&mut out, &["role", "model", "licence", "sampling"], rows);
        out.push_str("A dataset made by a model is subject to that model's licence and terms of use; check them before you choose the dataset's licence.\n\n");
    }

    out.push_str("### Settings\n\n");
    let settings: Vec<Vec<String>> =
        config.as_object().into_iter().flatten().filter_map(|(k, v)| scalar(v).map(|s| vec![format!("`{k}`"), s])).collect();
    if settings.is_empty() {
        out.push_str("The manifest records no settings.\n\n");
    } else {
        table(&mut out, &["setting", "value"], settings);
    }

    out.push_str("### Funnel\n\n");
    let funnel = stats["funnel"].as_array().cloned().unwrap_or_default();
    table(
        &mut out,
        &["stage", "count", "pass rate"],
        funnel.iter().map(|s| vec![s["stage"].as_str().unwrap_or("?").to_string(), number(&s["count"]), number(&s["rate"])]),
    );
    let t = &stats["trajectories"];
    if t.is_object() {
        let reasons: Vec<String> =
            t["rejected_by_reason"].as_object().into_iter().flatten().map(|(k, v)| format!("{k} {}", number(v))).collect();
        let _ =
            writeln!(out, "Rejected conversations by reason: {}.\n", if reasons.is_empty() { "none".into() } else { reasons.join(", ") });
        let per = &t["per_verified"];
        let _ = writeln!(
            out,
            "Per verified conversation, on average: {} user turns, {} agent steps, {} tool calls, {} tokens.\n",
            number(&per["user_turns"]),
            number(&per["agent_steps"]),
            number(&per["tool_calls"]),
            number(&per["tokens"])
        );
    }
    let b = &stats["blueprints"];
    if b.is_object() {
        let stages: Vec<String> =
            b["rejected_by_stage"].as_object().into_iter().flatten().map(|(k, v)| format!("{k} {}", number(v))).collect();
        let _ =
            writeln!(out, "Rejected blueprint attempts by stage: {}.\n", if stages.is_empty() { "none".into() } else { stages.join(", ") });
    }

    out.push_str("### Environment\n\n");
    let tools = offered_tools(contents);
    let _ = writeln!(
        out,
        "Domain `{domain}`: an environment of data, tools and a policy document (the system prompt of every conversation). \
         Tools offered to the agent ({}): {}.\n",
        tools.len(),
        if tools.is_empty() { "none recorded".to_string() } else { tools.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ") }
    );

    out.push_str("### Program\n\n");
    let mut program =
        vec![vec!["program".to_string(), format!("apigen-mt {}", manifest["version"].as_str().unwrap_or("(unknown version)"))]];
    for (label, key) in [("command", "command"), ("config hash (SHA-256)", "config_hash")] {
        if let Some(v) = manifest[key].as_str() {
            program.push(vec![label.to_string(), format!("`{v}`")]);
        }
    }
    table(&mut out, &["", ""], program);
    out.push_str("The config hash covers every setting above that changes the output; re-running the same command with the same config and seed reproduces the records.\n\n");

    out.push_str("## Known limits\n\n");
    out.push_str("- The users are simulated by a language model; real users phrase things differently, change their minds more, and make mistakes these do not.\n");
    out.push_str("- A conversation is verified by the environment's final state and the expected outputs only; how politely or efficiently the agent got there is not checked.\n");
    out.push_str("- Tasks come from one synthetic environment with generated data; names, addresses and orders are fictional.\n");
    out.push_str("- Small models write simpler tasks and fail harder ones, so the kept tasks lean towards what the models could do (see the funnel).\n");
    out.push_str("- Verified conversations of one blueprint are distinct but may be close to each other.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_categories_follow_the_hub() {
        assert_eq!(size_category(0), "n<1K");
        assert_eq!(size_category(999), "n<1K");
        assert_eq!(size_category(1000), "1K<n<10K");
        assert_eq!(size_category(250_000), "100K<n<1M");
    }

    #[test]
    fn preset_models_have_their_licence() {
        assert_eq!(license("smollm2-135m-instruct").as_deref(), Some("apache-2.0"));
        assert_eq!(license("HuggingFaceTB/SmolLM2-135M-Instruct").as_deref(), Some("apache-2.0"));
        assert_eq!(license("qwen2.5-3b-instruct").as_deref(), Some("qwen-research"));
        assert_eq!(license("./my-model"), None);
    }
}
