//! An eval's scores from its `results.jsonl` lines alone (so a recount, a merge of shards or a
//! comparison always agrees with the run): τ-bench's pass^k, the chance that all k of k
//! independent trials of a task succeed, estimated per task from its n trials with c successes
//! as C(c, k) / C(n, k) and averaged over tasks; a confidence interval for pass^1; failures by
//! reason; and the report and side-by-side comparison that show them. `crate::eval` runs the
//! trials that write those lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::report::number;

/// C(n, k) as a float (exact for the small n of trials).
fn choose(n: u64, k: u64) -> f64 {
    if k > n {
        return 0.0;
    }
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// pass^k of one task with `c` successes out of `n` trials: C(c, k) / C(n, k).
pub fn pass_hat(n: u64, c: u64, k: u64) -> f64 {
    let all = choose(n, k);
    if all == 0.0 {
        0.0
    } else {
        choose(c, k) / all
    }
}

/// pass^k for k = 1..=max over tasks given as (trials, successes): τ-bench's estimator, the
/// mean over tasks of [`pass_hat`]. A k above a task's trial count has no estimate and is left
/// out.
pub fn pass_hat_k(tasks: &[(u64, u64)]) -> BTreeMap<u64, f64> {
    let max = tasks.iter().map(|&(n, _)| n).min().unwrap_or(0);
    (1..=max).map(|k| (k, tasks.iter().map(|&(n, c)| pass_hat(n, c, k)).sum::<f64>() / tasks.len() as f64)).collect()
}

/// A 95% confidence interval for pass^1 over tasks: the mean of the per-task success rates
/// ± 1.96 standard errors, clipped to [0, 1] (a normal approximation; tasks are the unit
/// sampled, trials of one task are not independent draws of the benchmark).
pub fn pass1_ci95(tasks: &[(u64, u64)]) -> Option<(f64, f64)> {
    if tasks.len() < 2 {
        return None;
    }
    let rates: Vec<f64> = tasks.iter().map(|&(n, c)| c as f64 / n.max(1) as f64).collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (rates.len() - 1) as f64;
    let half = 1.96 * (var / rates.len() as f64).sqrt();
    Some(((mean - half).max(0.0), (mean + half).min(1.0)))
}

/// Per task (in first-seen order): trials, successes, and the failure reasons.
struct TaskTally {
    id: String,
    trials: u64,
    successes: u64,
    reasons: BTreeMap<String, u64>,
}

/// `stats.json` of an eval, from its `results.jsonl` lines alone (so a recount always agrees),
/// with `timing` added by the caller.
pub fn stats(results: &[Value], timing: Value) -> Result<Value> {
    let mut tasks: Vec<TaskTally> = Vec::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let (mut prompt, mut completion) = (0u64, 0u64);
    for (i, line) in results.iter().enumerate() {
        let id = line["task_id"].as_str().with_context(|| format!("results line {} has no task_id", i + 1))?;
        let reward = line["reward"].as_u64().with_context(|| format!("results line {} has no reward", i + 1))?;
        if tasks.last().map(|t| t.id.as_str()) != Some(id) {
            tasks.push(TaskTally { id: id.to_string(), trials: 0, successes: 0, reasons: BTreeMap::new() });
        }
        let task = tasks.last_mut().expect("pushed above");
        task.trials += 1;
        task.successes += reward;
        if reward == 0 {
            let reason = line["reason"].as_str().unwrap_or("unknown").to_string();
            *task.reasons.entry(reason.clone()).or_default() += 1;
            *reasons.entry(reason).or_default() += 1;
        }
        for role in ["agent", "user", "judge"] {
            prompt += line["tokens"][role]["prompt"].as_u64().unwrap_or(0);
            completion += line["tokens"][role]["completion"].as_u64().unwrap_or(0);
        }
    }
    let counts: Vec<(u64, u64)> = tasks.iter().map(|t| (t.trials, t.successes)).collect();
    if counts.windows(2).any(|w| w[0].0 != w[1].0) {
        bail!("tasks have different numbers of trials: results.jsonl is incomplete");
    }
    let trials = results.len() as u64;
    let successes: u64 = counts.iter().map(|&(_, c)| c).sum();
    let pass = pass_hat_k(&counts);
    Ok(json!({
        "eval": {
            "tasks": tasks.len(),
            "trials_per_task": counts.first().map(|&(n, _)| n).unwrap_or(0),
            "trials": trials,
            "successes": successes,
            "pass_hat_k": pass.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "pass_hat_1_ci95": pass1_ci95(&counts).map(|(lo, hi)| json!([lo, hi])),
            "failures_by_reason": reasons,
            "per_task": tasks.iter().map(|t| json!({"task_id": t.id, "trials": t.trials, "successes": t.successes, "reasons": t.reasons})).collect::<Vec<_>>(),
        },
        "tokens": {"prompt": prompt, "completion": completion},
        "timing": timing,
    }))
}

/// `report.md` of an eval: pass^k, failure reasons, a per-task table, tokens and time.
pub fn report(stats: &Value, title: &str) -> String {
    let e = &stats["eval"];
    let mut out = format!("# apigen-mt eval: {title}\n\n");
    let _ = writeln!(
        out,
        "{} tasks × {} trials = {} trials, {} successful.\n",
        number(&e["tasks"]),
        number(&e["trials_per_task"]),
        number(&e["trials"]),
        number(&e["successes"])
    );
    out.push_str("| k | pass^k |\n|---|---|\n");
    for (k, v) in e["pass_hat_k"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "| {k} | {} |", number(v));
    }
    if let Some([lo, hi]) = e["pass_hat_1_ci95"].as_array().map(Vec::as_slice) {
        let _ = writeln!(out, "\npass^1 95% confidence interval over tasks: {} to {}.", number(lo), number(hi));
    }
    out.push_str("\n## Failures by reason\n\n| reason | trials |\n|---|---|\n");
    for (reason, n) in e["failures_by_reason"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "| {reason} | {} |", number(n));
    }
    out.push_str("\n## Per task\n\n| task | successes | trials | failure reasons |\n|---|---|---|---|\n");
    for t in e["per_task"].as_array().into_iter().flatten() {
        let reasons: Vec<String> = t["reasons"].as_object().into_iter().flatten().map(|(r, n)| format!("{r} × {n}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            t["task_id"].as_str().unwrap_or("?"),
            number(&t["successes"]),
            number(&t["trials"]),
            reasons.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\nTokens: {} prompt, {} completion. Wall time (this process): {} s.",
        number(&stats["tokens"]["prompt"]),
        number(&stats["tokens"]["completion"]),
        number(&stats["timing"]["wall_seconds"])
    );
    out
}

/// Two evals side by side: pass^k of each and the per-task differences in successes.
pub fn compare(a: &Value, b: &Value, name_a: &str, name_b: &str) -> String {
    let mut out = format!("| k | {name_a} | {name_b} | difference |\n|---|---|---|---|\n");
    let (pa, pb) = (&a["eval"]["pass_hat_k"], &b["eval"]["pass_hat_k"]);
    let mut ks: Vec<&String> = pa.as_object().into_iter().flatten().chain(pb.as_object().into_iter().flatten()).map(|(k, _)| k).collect();
    ks.sort_by_key(|k| k.parse::<u64>().unwrap_or(0));
    ks.dedup();
    for k in ks {
        let diff = match (pa[k].as_f64(), pb[k].as_f64()) {
            (Some(x), Some(y)) => format!("{:+.3}", y - x),
            _ => "n/a".into(),
        };
        let _ = writeln!(out, "| {k} | {} | {} | {diff} |", number(&pa[k]), number(&pb[k]));
    }
    let per_task = |s: &Value| -> BTreeMap<String, (u64, u64)> {
        s["eval"]["per_task"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["task_id"].as_str().unwrap_or("?").to_string(),
                    (t["successes"].as_u64().unwrap_or(0), t["trials"].as_u64().unwrap_or(0)),
                )
            })
            .collect()
    };
    let (ta, tb) = (per_task(a), per_task(b));
    let mut changed = Vec::new();
    for (id, &(sa, na)) in &ta {
        match tb.get(id) {
            Some(&(sb, nb)) if sa * nb != sb * na => changed.push(format!("| {id} | {sa}/{na} | {sb}/{nb} |")),
            Some(_) => {}
            None => changed.push(format!("| {id} | {sa}/{na} | (absent) |")),
        }
    }
    for (id, &(sb, nb)) in tb.iter().filter(|(id, _)| !ta.contains_key(*id)) {
        changed.push(format!("| {id} | (absent) | {sb}/{nb} |"));
    }
    let _ = writeln!(out, "\n{} of {} tasks differ:\n", changed.len(), ta.len().max(tb.len()));
    if !changed.is_empty() {
        let _ = writeln!(out, "| task | {name_a} | {name_b} |\n|---|---|---|");
        for row in changed {
            let _ = writeln!(out, "{row}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_hat_k_matches_hand_computed_values() {
        // All successes, none, and mixed: 4 trials with 2 successes gives
        // pass^1 = 2/4, pass^2 = C(2,2)/C(4,2) = 1/6, pass^3 = pass^4 = 0 (k > successes).
        assert_eq!(pass_hat_k(&[(4, 4)]), BTreeMap::from([(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0)]));
        assert_eq!(pass_hat_k(&[(4, 0)]), BTreeMap::from([(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0)]));
        let mixed = pass_hat_k(&[(4, 2)]);
        assert!((mixed[&1] - 0.5).abs() < 1e-12 && (mixed[&2] - 1.0 / 6.0).abs() < 1e-12, "{mixed:?}");
        assert_eq!((mixed[&3], mixed[&4]), (0.0, 0.0));
        // Averaged over tasks: (1 + 0.5) / 2 at k=1, (1 + 1/6) / 2 at k=2.
        let two = pass_hat_k(&[(4, 4), (4, 2)]);
        assert!((two[&1] - 0.75).abs() < 1e-12 && (two[&2] - 7.0 / 12.0).abs() < 1e-12, "{two:?}");
        assert!(pass_hat_k(&[]).is_empty());
    }

    #[test]
    fn the_interval_brackets_the_mean_and_needs_two_tasks() {
        assert_eq!(pass1_ci95(&[(2, 1)]), None);
        let (lo, hi) = pass1_ci95(&[(2, 2), (2, 0), (2, 1), (2, 1)]).unwrap();
        assert!(lo < 0.5 && hi > 0.5 && lo >= 0.0 && hi <= 1.0, "{lo} {hi}");
        assert_eq!(pass1_ci95(&[(2, 2), (2, 2)]), Some((1.0, 1.0)));
    }

    #[test]
    fn stats_refuse_tasks_with_unequal_trials() {
        let line = |id: &str, reward: u8| json!({"task_id": id, "reward": reward, "reason": if reward == 1 { Value::Null } else { json!("max_turns") }});
        let ok = stats(&[line("a", 1), line("a", 0), line("b", 0), line("b", 0)], json!({})).unwrap();
        assert_eq!(ok["eval"]["pass_hat_k"]["1"], 0.25);
        assert_eq!(ok["eval"]["failures_by_reason"]["max_turns"], 3);
        assert!(stats(&[line("a", 1), line("a", 0), line("b", 0)], json!({})).is_err());
    }
}
