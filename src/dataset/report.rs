//! `report.md`: `stats.json` written for a person. Every number comes from the stats value
//! itself, so the two never disagree; rates are shown to three decimals.

use std::fmt::Write;

use serde_json::Value;

/// A number as the report shows it: integers as they are, other numbers to three decimals,
/// null as "n/a".
pub fn number(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        Value::Number(n) => format!("{:.3}", n.as_f64().unwrap_or(f64::NAN)),
        Value::Null => "n/a".into(),
        other => other.to_string(),
    }
}

fn table(out: &mut String, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

fn entries(value: &Value) -> Vec<(String, &Value)> {
    value.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v)).collect()).unwrap_or_default()
}

/// Renders the report; `title` names the run (its directory).
pub fn render(stats: &Value, title: &str) -> String {
    let mut out = format!("# apigen-mt run: {title}\n\n");
    out.push_str("## Funnel\n\n");
    let funnel = stats["funnel"].as_array().cloned().unwrap_or_default();
    table(
        &mut out,
        &["stage", "count", "pass rate"],
        funnel.iter().map(|s| vec![s["stage"].as_str().unwrap_or("?").to_string(), number(&s["count"]), number(&s["rate"])]),
    );

    let b = &stats["blueprints"];
    if b.is_object() {
        out.push_str("## Phase 1: blueprints\n\n");
        out.push_str("Rejected attempts by the stage that stopped them:\n\n");
        table(&mut out, &["stage", "attempts"], entries(&b["rejected_by_stage"]).into_iter().map(|(k, v)| vec![k, number(v)]));
        out.push_str("Pass rate per stage, first drafts only (without feedback) and final drafts (with feedback):\n\n");
        let without = entries(&b["pass_rate"]["without_feedback"]);
        table(
            &mut out,
            &["stage", "without feedback", "with feedback"],
            without.into_iter().map(|(stage, w)| {
                let with = &b["pass_rate"]["with_feedback"][&stage]["rate"];
                vec![stage, number(&w["rate"]), number(with)]
            }),
        );
        let _ = writeln!(
            out,
            "Revision rounds: {}. Tokens: {}; per validated blueprint: {}.\n",
            number(&b["revision_rounds"]),
            number(&b["tokens"]),
            number(&b["tokens_per_validated"])
        );
        let r = &b["recombination"];
        let _ = writeln!(
            out,
            "Reverse recombination: {} attempted, {} validated, {} rejected.\n",
            number(&r["attempted"]),
            number(&r["validated"]),
            number(&r["rejected"])
        );
        let rejected = entries(&r["rejected_by_stage"]);
        if !rejected.is_empty() {
            table(&mut out, &["stage", "recombinations rejected"], rejected.into_iter().map(|(k, v)| vec![k, number(v)]));
        }
    }

    let t = &stats["trajectories"];
    if t.is_object() {
        out.push_str("## Phase 2: trajectories\n\n");
        let _ = writeln!(
            out,
            "Attempts: {}; verified: {}; rejected: {}; duplicates of a kept trajectory: {}.\n",
            number(&t["attempted"]),
            number(&t["verified"]),
            number(&t["rejected"]),
            number(&t["duplicates"])
        );
        out.push_str("Rejected attempts by reason:\n\n");
        table(&mut out, &["reason", "attempts"], entries(&t["rejected_by_reason"]).into_iter().map(|(k, v)| vec![k, number(v)]));
        let d = &t["distribution"];
        for (key, label) in [("agent_steps", "Agent steps"), ("tool_calls", "Tool calls")] {
            let _ = writeln!(out, "{label} per verified trajectory:\n");
            table(&mut out, &[key, "trajectories"], entries(&d[key]).into_iter().map(|(k, v)| vec![k, number(v)]));
        }
        let tok = &d["tokens_per_verified"];
        let _ = writeln!(
            out,
            "Tokens per verified trajectory: mean {}, min {}, max {}.\n",
            number(&tok["mean"]),
            number(&tok["min"]),
            number(&tok["max"])
        );
        let ds = &stats["dataset"];
        let _ = writeln!(out, "Dataset records: {}.\n", number(&ds["records"]));
        if !entries(&ds["unconvertible"]).is_empty() {
            out.push_str("Verified trajectories left out of the dataset files:\n\n");
            table(&mut out, &["reason", "trajectories"], entries(&ds["unconvertible"]).into_iter().map(|(k, v)| vec![k, number(v)]));
        }
    }

    let timing = &stats["timing"];
    out.push_str("## Throughput\n\n");
    let _ = writeln!(
        out,
        "Wall time {} s; {} generated tokens/s ({}).\n",
        number(&timing["wall_seconds"]),
        number(&timing["generated_tokens_per_second"]),
        timing["note"].as_str().unwrap_or("")
    );
    for engine in timing["engines"].as_array().cloned().unwrap_or_default() {
        let model = engine["model"].as_str().unwrap_or("?");
        // An in-process engine reports its metrics; a server model, what was asked of it.
        let values = match engine.get("server") {
            Some(server) => {
                let _ = writeln!(out, "Server model `{model}` at {}:\n", server["url"].as_str().unwrap_or("?"));
                server
            }
            None => {
                let _ = writeln!(out, "Engine `{model}`:\n");
                &engine["metrics"]
            }
        };
        table(&mut out, &["metric", "value"], entries(values).into_iter().map(|(k, v)| vec![k, metric(v)]));
    }
    out
}

/// An engine metric: numbers as numbers, durations (`{secs, nanos}`) in seconds.
fn metric(value: &Value) -> String {
    match (value.get("secs"), value.get("nanos")) {
        (Some(s), Some(n)) => format!("{:.3} s", s.as_f64().unwrap_or(0.0) + n.as_f64().unwrap_or(0.0) / 1e9),
        _ => value.as_str().map_or_else(|| number(value), str::to_string),
    }
}
