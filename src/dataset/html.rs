//! `report.html`: one self-contained page per run directory, for reading a run rather than
//! its numbers alone. It needs no network: styles, script and charts (inline SVG) are in the
//! file.
//!
//! The page has the charts of `stats.json` (the funnel, rejections per phase and stage, the
//! shape of the verified conversations, throughput and cache per model and role) and a browser
//! of every record the directory holds ([`Contents`]). The browser's list is HTML written here,
//! so every record id is in the page's text and the list reads without script; the script
//! adds filters (outcome, reason, tool, user, text), paging, and the detail view, which it
//! builds from each record's JSON (one `<script type="application/json">` per record, parsed
//! only when opened, so a run of thousands of records opens at once).
//!
//! Every number shown is taken from `stats.json` as it is; the record files only add the
//! records themselves and the token distribution, which `stats.json` keeps as mean, min and max.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use super::contents::{Contents, Record};
use super::report::number;

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// Rows the browser shows per page at first.
pub const PAGE: usize = 100;

/// Text safe inside HTML elements and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe inside a `<script>` element: no `<` can open a tag or comment.
fn script_json(value: &Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

/// `value` with integers that a JavaScript number cannot hold exactly (beyond 2^53, such as
/// 64-bit seeds) as strings, so that the page shows their digits as they are.
fn exact_in_javascript(value: &Value) -> Value {
    const SAFE: u64 = 1 << 53;
    match value {
        Value::Number(n) if n.as_u64().is_some_and(|u| u > SAFE) || n.as_i64().is_some_and(|i| i.unsigned_abs() > SAFE) => {
            Value::String(n.to_string())
        }
        Value::Array(items) => Value::Array(items.iter().map(exact_in_javascript).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), exact_in_javascript(v))).collect()),
        other => other.clone(),
    }
}

fn entries(value: &Value) -> Vec<(String, &Value)> {
    value.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v)).collect()).unwrap_or_default()
}

/// One bar of a horizontal bar chart.
struct Bar {
    label: String,
    value: f64,
    /// What is written after the bar.
    text: String,
    /// Extra text after `text`, dimmed.
    note: String,
}

/// A horizontal bar chart: a label, a bar scaled to the largest value, and the number.
/// `class` names each row's group for styles and tests.
fn bars(out: &mut String, class: &str, title: &str, rows: &[Bar]) {
    if rows.is_empty() {
        return;
    }
    let (label_w, bar_w, row_h) = (230.0, 300.0, 24.0);
    let max = rows.iter().map(|r| r.value).fold(0.0_f64, f64::max);
    let height = row_h * rows.len() as f64 + 4.0;
    let _ = write!(
        out,
        r#"<figure class="chart"><figcaption>{}</figcaption><svg class="bars" role="img" width="{w}" height="{height}" viewBox="0 0 {w} {height}">"#,
        esc(title),
        w = label_w + bar_w + 200.0,
    );
    for (i, row) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 2.0;
        let width = if max > 0.0 { (row.value / max * bar_w).max(if row.value > 0.0 { 1.0 } else { 0.0 }) } else { 0.0 };
        let _ = write!(
            out,
            r#"<g class="{class}" data-label="{label}"><text class="label" x="{lx}" y="{ty}" text-anchor="end">{label}</text><rect x="{label_w}" y="{y}" width="{width:.1}" height="{bh}" rx="2"/><text class="count" x="{cx:.1}" y="{ty}">{text}</text><text class="note" x="{nx:.1}" y="{ty}">{note}</text></g>"#,
            label = esc(&row.label),
            lx = label_w - 8.0,
            ty = y + 15.0,
            bh = row_h - 6.0,
            cx = label_w + width + 6.0,
            nx = label_w + width + 14.0 + 8.0 * row.text.chars().count() as f64,
            text = esc(&row.text),
            note = esc(&row.note),
        );
    }
    out.push_str("</svg></figure>\n");
}

/// A histogram: one column per bin, the count above it and the bin below.
fn histogram(out: &mut String, class: &str, title: &str, bins: &[(String, u64)]) {
    if bins.is_empty() {
        return;
    }
    let (col_w, plot_h, top, bottom) = (44.0, 120.0, 18.0, 22.0);
    let width = (col_w * bins.len() as f64 + 10.0).max(200.0);
    let height = plot_h + top + bottom;
    let max = bins.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let _ = write!(
        out,
        r#"<figure class="chart"><figcaption>{}</figcaption><svg class="histogram" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#,
        esc(title)
    );
    for (i, (label, count)) in bins.iter().enumerate() {
        let h = *count as f64 / max * plot_h;
        let x = 5.0 + i as f64 * col_w;
        let _ = write!(
            out,
            r#"<g class="{class}" data-bin="{label}"><rect x="{x}" y="{y:.1}" width="{w}" height="{h:.1}" rx="2"/><text class="count" x="{cx}" y="{ty:.1}" text-anchor="middle">{count}</text><text class="label" x="{cx}" y="{ly}" text-anchor="middle">{label}</text></g>"#,
            label = esc(label),
            y = top + plot_h - h,
            w = col_w - 6.0,
            cx = x + (col_w - 6.0) / 2.0,
            ty = top + plot_h - h - 4.0,
            ly = top + plot_h + 15.0,
        );
    }
    out.push_str("</svg></figure>\n");
}

/// A histogram of a map `value → count` as `stats.json` keeps them.
fn counts(map: &Value) -> Vec<(String, u64)> {
    let mut bins: Vec<(u64, u64)> = entries(map).into_iter().filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?))).collect();
    bins.sort();
    bins.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Up to ten equal bins over `values`.
fn binned(values: &[usize]) -> Vec<(String, u64)> {
    let (Some(&min), Some(&max)) = (values.iter().min(), values.iter().max()) else { return Vec::new() };
    let width = ((max - min) / 10 + 1).max(1);
    let mut bins: BTreeMap<usize, u64> = BTreeMap::new();
    for &v in values {
        *bins.entry((v - min) / width).or_default() += 1;
    }
    let last = (max - min) / width;
    (0..=last)
        .map(|b| {
            let lo = min + b * width;
            let label = if width == 1 { lo.to_string() } else { format!("{lo}–{}", lo + width - 1) };
            (label, bins.get(&b).copied().unwrap_or(0))
        })
        .collect()
}

fn funnel(out: &mut String, stats: &Value) {
    out.push_str("<section id=\"funnel\"><h2>Funnel</h2>\n");
    let stages = stats["funnel"].as_array().cloned().unwrap_or_default();
    if stages.is_empty() {
        out.push_str("<p>stats.json has no funnel.</p>");
    }
    let rows: Vec<Bar> = stages
        .iter()
        .map(|s| Bar {
            label: s["stage"].as_str().unwrap_or("?").to_string(),
            value: s["count"].as_f64().unwrap_or(0.0),
            text: number(&s["count"]),
            note: if s["rate"].is_null() { String::new() } else { format!("pass rate {}", number(&s["rate"])) },
        })
        .collect();
    bars(out, "stage", "From attempts to dataset records; each rate is of the stage before.", &rows);
    out.push_str("</section>\n");
}

fn count_bars(map: &Value) -> Vec<Bar> {
    entries(map)
        .into_iter()
        .map(|(k, v)| Bar { label: k, value: v.as_f64().unwrap_or(0.0), text: number(v), note: String::new() })
        .collect()
}

fn rejections(out: &mut String, stats: &Value) {
    let b = &stats["blueprints"];
    let t = &stats["trajectories"];
    if !b.is_object() && !t.is_object() {
        return;
    }
    out.push_str("<section id=\"rejections\"><h2>Why attempts were rejected</h2>\n<div class=\"charts\">");
    if b.is_object() {
        bars(out, "reason phase1", "Phase 1: blueprint attempts, by the stage that stopped them", &count_bars(&b["rejected_by_stage"]));
        let with = &b["pass_rate"]["with_feedback"];
        let rows: Vec<Bar> = entries(&b["pass_rate"]["without_feedback"])
            .into_iter()
            .map(|(stage, w)| Bar {
                value: w["rate"].as_f64().unwrap_or(0.0),
                text: number(&w["rate"]),
                note: format!("with feedback {}", number(&with[&stage]["rate"])),
                label: stage,
            })
            .collect();
        bars(out, "passrate", "Phase 1: pass rate per stage, first drafts (with feedback after revision)", &rows);
        let r = &b["recombination"];
        if r["attempted"].as_u64().unwrap_or(0) > 0 {
            bars(out, "reason recombination", "Reverse recombination: rejected, by stage", &count_bars(&r["rejected_by_stage"]));
        }
    }
    if t.is_object() {
        let mut rows = count_bars(&t["rejected_by_reason"]);
        if t["duplicates"].as_u64().unwrap_or(0) > 0 {
            rows.push(Bar {
                label: "duplicate of a kept one".into(),
                value: t["duplicates"].as_f64().unwrap_or(0.0),
                text: number(&t["duplicates"]),
                note: "(not a rejection: dropped)".into(),
            });
        }
        bars(out, "reason phase2", "Phase 2: trajectory attempts, by reason", &rows);
        bars(out, "reason dataset", "Verified but left out of the dataset files", &count_bars(&stats["dataset"]["unconvertible"]));
    }
    out.push_str("</div></section>\n");
}

fn distributions(out: &mut String, stats: &Value, contents: &Contents) {
    let d = &stats["trajectories"]["distribution"];
    if !d.is_object() {
        return;
    }
    out.push_str("<section id=\"distributions\"><h2>Verified conversations</h2>\n<div class=\"charts\">");
    let verified: Vec<&Record> = contents.records.iter().filter(|r| r.kind == "trajectory" && r.outcome == "verified").collect();
    let user_turns: Vec<usize> = verified.iter().filter_map(|r| r.turns).collect();
    histogram(out, "bin user-turns", "User turns (from trajectories.jsonl)", &binned(&user_turns));
    histogram(out, "bin agent-steps", "Agent steps (turns of the agent)", &counts(&d["agent_steps"]));
    histogram(out, "bin tool-calls", "Tool calls", &counts(&d["tool_calls"]));
    let tokens: Vec<usize> = verified.iter().filter_map(|r| r.tokens).collect();
    histogram(out, "bin tokens", "Tokens, every role (from trajectories.jsonl)", &binned(&tokens));
    out.push_str("</div>");
    let tok = &d["tokens_per_verified"];
    let _ = writeln!(
        out,
        "<p>Tokens per verified conversation: mean {}, min {}, max {}.</p>",
        number(&tok["mean"]),
        number(&tok["min"]),
        number(&tok["max"])
    );
    out.push_str("</section>\n");
}

/// The roles of the run's config and the models behind them: `{role: {model}}` or
/// `{role: {models: [...]}}` (the reviewer committee).
pub fn role_models(config: &Value) -> Vec<(String, Vec<String>)> {
    entries(config)
        .into_iter()
        .filter_map(|(role, v)| {
            let models: Vec<String> = match (&v["model"], &v["models"]) {
                (Value::String(m), _) => vec![m.clone()],
                (_, Value::Array(list)) => list.iter().filter_map(|m| m.as_str().map(str::to_string)).collect(),
                _ => return None,
            };
            Some((role, models))
        })
        .collect()
}

fn seconds(value: &Value) -> Option<f64> {
    match (value.get("secs"), value.get("nanos")) {
        (Some(s), Some(n)) => Some(s.as_f64()? + n.as_f64()? / 1e9),
        _ => value.as_f64(),
    }
}

fn throughput(out: &mut String, stats: &Value, config: &Value) {
    let timing = &stats["timing"];
    out.push_str("<section id=\"throughput\"><h2>Throughput and cache</h2>\n");
    let _ = writeln!(
        out,
        "<p>Wall time {} s; {} generated tokens/s overall <span class=\"dim\">({})</span>.</p>",
        number(&timing["wall_seconds"]),
        number(&timing["generated_tokens_per_second"]),
        esc(timing["note"].as_str().unwrap_or(""))
    );
    let roles = role_models(config);
    let engines = timing["engines"].as_array().cloned().unwrap_or_default();
    if !engines.is_empty() {
        out.push_str("<table class=\"numbers\"><thead><tr><th>model</th><th>roles</th><th>requests</th><th>prompt tokens</th><th>from prefix cache</th><th>generated tokens</th><th>generated tok/s (busy)</th><th>mean batch</th><th>forward s (in prefill passes)</th><th>GFLOP/s in forward passes</th></tr></thead><tbody>");
        let mut gen_rows = Vec::new();
        let mut cache_rows = Vec::new();
        for e in &engines {
            let model = e["model"].as_str().unwrap_or("?");
            // A server model has no engine metrics: its request and token counts stand in.
            let m = match e.get("server") {
                Some(server) => server,
                None => &e["metrics"],
            };
            let served: Vec<&str> = roles.iter().filter(|(_, ms)| ms.iter().any(|x| x == model)).map(|(r, _)| r.as_str()).collect();
            let prompt = m["prompt_tokens"].as_f64().unwrap_or(0.0);
            let hit = m["prefix_hit_tokens"].as_f64().unwrap_or(0.0);
            let generated = m["generated_tokens"].as_f64().or_else(|| m["completion_tokens"].as_f64()).unwrap_or(0.0);
            let busy = seconds(&m["busy_time"]).unwrap_or(0.0);
            let share = if prompt > 0.0 { hit / prompt } else { 0.0 };
            let rate = if busy > 0.0 { generated / busy } else { 0.0 };
            let steps = m["steps"].as_f64().unwrap_or(0.0);
            let batch = if steps > 0.0 { m["step_sequences"].as_f64().unwrap_or(0.0) / steps } else { 0.0 };
            // How much of the model's time went to computing prompts: what batching cannot
            // shorten (see `scripts/bench-workload.sh`). Servers and older runs do not say.
            let forward_s = seconds(&m["forward_time"]);
            let forward = match (forward_s, seconds(&m["prefill_time"])) {
                (Some(f), Some(p)) => format!("{f:.1} ({p:.1})"),
                (Some(f), None) => format!("{f:.1}"),
                _ => "–".to_string(),
            };
            // The arithmetic rate the engine sustained, to set beside the machine's peak.
            let arithmetic = match (m["flops"].as_f64(), forward_s) {
                (Some(flops), Some(f)) if f > 0.0 => format!("{:.1}", flops / f / 1e9),
                _ => "–".to_string(),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                esc(model),
                esc(&served.join(", ")),
                number(&m["requests"]),
                number(&m["prompt_tokens"]),
                share * 100.0,
                number(&json!(generated as u64)),
                rate,
                batch,
                forward,
                arithmetic
            );
            let label = if served.is_empty() { model.to_string() } else { format!("{} ({model})", served.join(", ")) };
            gen_rows.push(Bar { label: label.clone(), value: rate, text: format!("{rate:.1} tok/s"), note: String::new() });
            cache_rows.push(Bar {
                label,
                value: share,
                text: format!("{:.1}%", share * 100.0),
                note: format!("of {} prompt tokens", number(&m["prompt_tokens"])),
            });
        }
        out.push_str("</tbody></table>\n<div class=\"charts\">");
        bars(out, "throughput", "Generated tokens per second of engine time, per model (the roles it served)", &gen_rows);
        bars(out, "cache", "Prompt tokens served from the prefix cache", &cache_rows);
        out.push_str("</div>");
    } else {
        out.push_str("<p>No engine metrics were recorded (a scripted or remote model).</p>");
    }
    // Per role, from the meter every role's requests went through (`timing.roles`): how much
    // each role asked for and how much of its prompts the prefix cache served.
    let per_role = entries(&timing["roles"]);
    if !per_role.is_empty() {
        out.push_str("<table class=\"numbers\" id=\"roles\"><thead><tr><th>role</th><th>requests</th><th>prompt tokens</th><th>from prefix cache</th><th>generated tokens</th></tr></thead><tbody>");
        let mut cache_rows = Vec::new();
        for (role, u) in &per_role {
            let share = u["cache_share"].as_f64().unwrap_or(0.0);
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td></tr>",
                esc(role),
                number(&u["requests"]),
                number(&u["prompt_tokens"]),
                share * 100.0,
                number(&u["generated_tokens"])
            );
            cache_rows.push(Bar {
                label: role.clone(),
                value: share,
                text: format!("{:.1}%", share * 100.0),
                note: format!("of {} prompt tokens", number(&u["prompt_tokens"])),
            });
        }
        out.push_str("</tbody></table>\n<div class=\"charts\">");
        bars(out, "role-cache", "Prompt tokens served from the prefix cache, per role", &cache_rows);
        out.push_str("</div>");
    }
    // Tokens per role, where the phases count them.
    let role_tokens = &stats["trajectories"]["tokens"];
    let mut rows = Vec::new();
    for (role, t) in entries(role_tokens) {
        let prompt = t["prompt"].as_f64().unwrap_or(0.0);
        let completion = t["completion"].as_f64().unwrap_or(0.0);
        rows.push(Bar {
            label: role,
            value: prompt + completion,
            text: format!("{}", (prompt + completion) as u64),
            note: format!("{} prompt, {} completion", prompt as u64, completion as u64),
        });
    }
    if let Some(tokens) = stats["blueprints"]["tokens"].as_f64() {
        rows.insert(0, Bar { label: "phase 1 roles".into(), value: tokens, text: format!("{}", tokens as u64), note: String::new() });
    }
    out.push_str("<div class=\"charts\">");
    bars(out, "role-tokens", "Tokens per role", &rows);
    out.push_str("</div></section>\n");
}

/// The `<option>`s of one filter: every value with its count, most frequent first, shown
/// through `label`.
fn options(out: &mut String, values: impl IntoIterator<Item = String>, label: impl Fn(&str) -> String) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let mut sorted: Vec<(String, usize)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (value, n) in sorted {
        let _ = write!(out, "<option value=\"{}\">{} ({n})</option>", esc(&value), esc(&label(&value)));
    }
}

/// A record's outcome facet: `verified trajectory`, `rejected blueprint`, ...
fn outcome(r: &Record) -> String {
    format!("{} {}", r.outcome, r.kind)
}

/// `verified trajectory` → `verified trajectories`, for the outcome filter.
fn plural(outcome: &str) -> String {
    match outcome.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None if outcome.ends_with("eval") => format!("{outcome} trials"),
        None => format!("{outcome}s"),
    }
}

fn browser(out: &mut String, contents: &Contents) {
    let records = &contents.records;
    out.push_str("<section id=\"browser\"><h2>Records</h2>\n");
    let files: Vec<String> = contents.files.iter().map(|(f, n)| format!("{f} ({n})")).collect();
    let _ = writeln!(
        out,
        "<p class=\"dim\">From {}.</p>",
        if files.is_empty() { "no record files".to_string() } else { esc(&files.join(", ")) }
    );
    out.push_str("<form id=\"filters\" onsubmit=\"return false\">");
    out.push_str("<label>outcome <select id=\"f-outcome\"><option value=\"\">all</option>");
    options(out, records.iter().map(outcome), plural);
    out.push_str("</select></label> <label>reason <select id=\"f-reason\"><option value=\"\">all</option>");
    options(out, records.iter().filter_map(|r| r.reason.clone()), str::to_string);
    out.push_str("</select></label> <label>tool <select id=\"f-tool\"><option value=\"\">all</option>");
    options(out, records.iter().flat_map(|r| r.tools.iter().cloned()), str::to_string);
    out.push_str("</select></label> <label>user <select id=\"f-user\"><option value=\"\">all</option>");
    options(out, records.iter().filter_map(|r| r.user.clone()), str::to_string);
    out.push_str("</select></label> <label>search <input id=\"f-search\" type=\"search\" placeholder=\"text in the record\"></label>");
    let _ = write!(
        out,
        " <label>per page <select id=\"f-page\"><option value=\"{PAGE}\">{PAGE}</option><option value=\"500\">500</option><option value=\"0\">all</option></select></label></form>"
    );
    let _ = writeln!(out, "<p id=\"shown\">{} records.</p>", records.len());
    out.push_str("<div id=\"pager\"></div>\n<table id=\"records\"><thead><tr><th>id</th><th>outcome</th><th>reason</th><th>user</th><th>tools</th><th title=\"user turns\">turns</th><th>calls</th><th>tokens</th><th>task</th></tr></thead><tbody>\n");
    for (i, r) in records.iter().enumerate() {
        let opt = |n: Option<usize>| n.map_or(String::new(), |n| n.to_string());
        let title: String = r.title.chars().take(140).collect();
        let _ = writeln!(
            out,
            "<tr id=\"r{i}\" data-i=\"{i}\" data-outcome=\"{outcome}\" data-reason=\"{reason}\" data-user=\"{user}\" data-tools=\"{tools}\"{hidden}><td class=\"id\"><a href=\"#{id_attr}\">{id}</a></td><td class=\"outcome {o}\">{outcome}</td><td>{reason}</td><td>{user}</td><td>{tool_list}</td><td>{turns}</td><td>{calls}</td><td>{tokens}</td><td class=\"task\">{title}</td></tr>",
            id_attr = esc(&r.id),
            id = esc(&r.id),
            outcome = esc(&outcome(r)),
            o = r.outcome,
            reason = esc(r.reason.as_deref().unwrap_or("")),
            user = esc(r.user.as_deref().unwrap_or("")),
            tools = esc(&format!("|{}|", r.tools.join("|"))),
            tool_list = esc(&r.tools.join(", ")),
            turns = opt(r.turns),
            calls = opt(r.tool_calls),
            tokens = opt(r.tokens),
            title = esc(&title),
            hidden = if i >= PAGE { " hidden" } else { "" },
        );
    }
    out.push_str("</tbody></table>\n<div id=\"detail\" hidden></div>\n</section>\n");
}

/// The record data the script reads: shared texts, then one element per record.
fn data(out: &mut String, contents: &Contents) {
    let _ =
        writeln!(out, "<script type=\"application/json\" id=\"shared\">{}</script>", script_json(&Value::from(contents.shared.clone())));
    for (i, r) in contents.records.iter().enumerate() {
        let meta =
            serde_json::json!({"id": r.id, "kind": r.kind, "outcome": r.outcome, "reason": r.reason, "file": r.file, "line": r.line});
        let _ = writeln!(
            out,
            "<script type=\"application/json\" id=\"d{i}\">[{},{}]</script>",
            script_json(&meta),
            script_json(&exact_in_javascript(&r.body))
        );
    }
}

fn header(out: &mut String, contents: &Contents) {
    let m = &contents.manifest;
    let title = contents.dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| contents.dir.display().to_string());
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>apigen-mt run {}</title>\n<style>{STYLE}</style></head>\n<body>\n<header><h1>apigen-mt run <code>{}</code></h1>\n",
        esc(&title),
        esc(&contents.dir.display().to_string())
    );
    let mut facts = Vec::new();
    if let Some(c) = m["command"].as_str() {
        facts.push(format!("command <code>{}</code>", esc(c)));
    }
    if let Some(d) = contents.config()["domain"].as_str() {
        facts.push(format!("domain <code>{}</code>", esc(d)));
    }
    if let Some(v) = m["version"].as_str() {
        facts.push(format!("apigen-mt {}", esc(v)));
    }
    if let Some(h) = m["config_hash"].as_str() {
        facts.push(format!("config <code title=\"{}\">{}</code>", esc(h), esc(&h.chars().take(12).collect::<String>())));
    }
    if m["progress"]["complete"] == Value::Bool(false) {
        facts.push("<strong>incomplete</strong>".into());
    }
    let _ = writeln!(out, "<p class=\"facts\">{}</p>", facts.join(" · "));
    out.push_str("<nav><a href=\"#funnel\">funnel</a> <a href=\"#rejections\">rejections</a> <a href=\"#distributions\">conversations</a> <a href=\"#throughput\">throughput</a> <a href=\"#browser\">records</a></nav></header>\n<main>\n");
}

/// The whole page.
pub fn render(contents: &Contents) -> String {
    let stats = &contents.stats;
    let mut out = String::new();
    header(&mut out, contents);
    funnel(&mut out, stats);
    rejections(&mut out, stats);
    distributions(&mut out, stats, contents);
    throughput(&mut out, stats, contents.config());
    browser(&mut out, contents);
    out.push_str("</main>\n");
    data(&mut out, contents);
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_every_value() {
        assert_eq!(binned(&[3, 3, 4]), [("3".to_string(), 2), ("4".to_string(), 1)]);
        let bins = binned(&(0..100).collect::<Vec<_>>());
        assert_eq!(bins.len(), 10);
        assert_eq!(bins.iter().map(|b| b.1).sum::<u64>(), 100);
        assert!(binned(&[]).is_empty());
    }

    #[test]
    fn record_text_cannot_break_out_of_the_page() {
        assert_eq!(esc("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        let json = script_json(&serde_json::json!({"t": "</script><!-- x"}));
        assert!(!json.contains('<'), "{json}");
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap()["t"], "</script><!-- x");
    }

    #[test]
    fn throughput_shows_each_roles_requests_and_cache_share() {
        let stats = serde_json::json!({"timing": {"wall_seconds": 2.0, "roles": {
            "agent": {"requests": 7, "prompt_tokens": 1000, "cached_tokens": 600, "cache_share": 0.6, "generated_tokens": 50},
            "user": {"requests": 3, "prompt_tokens": 400, "cached_tokens": 0, "cache_share": 0.0, "generated_tokens": 20}},
            "engines": [
                {"model": "m", "metrics": {"requests": 10, "prompt_tokens": 1400, "prefix_hit_tokens": 600, "generated_tokens": 70,
                    "steps": 40, "step_sequences": 100, "busy_time": {"secs": 2, "nanos": 0},
                    "forward_time": {"secs": 1, "nanos": 760_000_000}, "prefill_time": {"secs": 0, "nanos": 260_000_000},
                    "flops": 44_000_000_000u64}},
                {"model": "http://127.0.0.1:8080/v1", "server": {"requests": 2, "prompt_tokens": 10}}]}});
        let mut out = String::new();
        throughput(&mut out, &stats, &Value::Null);
        // The engine's forward time, its prefill passes' share and its arithmetic rate (44 GFLOP
        // in 1.76 s); a server has none of them.
        assert!(out.contains("<td>70</td><td>35.0</td><td>2.50</td><td>1.8 (0.3)</td><td>25.0</td></tr>"), "{out}");
        assert!(out.contains("<td>0.00</td><td>–</td><td>–</td></tr>"), "{out}");
        let table = &out[out.find("id=\"roles\"").expect("a per-role table")..];
        assert!(table.contains("<td>agent</td><td>7</td><td>1000</td><td>60.0%</td><td>50</td>"), "{table}");
        assert!(table.contains("<td>user</td><td>3</td><td>400</td><td>0.0%</td><td>20</td>"), "{table}");
        let mut none = String::new();
        throughput(&mut none, &serde_json::json!({"timing": {}}), &Value::Null);
        assert!(!none.contains("id=\"roles\""));
    }

    #[test]
    fn seeds_beyond_javascript_numbers_keep_their_digits() {
        let v = exact_in_javascript(&serde_json::json!({"seed": 15479291587666328123u64, "n": [3, -4], "x": 1.5}));
        assert_eq!(v, serde_json::json!({"seed": "15479291587666328123", "n": [3, -4], "x": 1.5}));
    }
}
