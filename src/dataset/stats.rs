//! `stats.json`: the funnel from Phase 1 attempts to dataset records with each stage's pass
//! rate and reasons for failure, the shape of the kept trajectories, and (under `timing`, the
//! only part that varies between identical runs) throughput and engine metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::blueprint::run::Progress as BlueprintProgress;
use crate::engine::meter::RoleUsage;
use crate::engine::remote::ServerReport;
use crate::engine::EngineMetrics;
use crate::trajectory::runner::{AttemptRecord, Progress as TrajectoryProgress};

/// Per verified trajectory: histograms of agent turns and tool calls, token totals, and how
/// many became dataset records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distributions {
    /// Agent steps → trajectories with that many.
    pub agent_steps: BTreeMap<usize, usize>,
    pub tool_calls: BTreeMap<usize, usize>,
    pub tokens_total: usize,
    pub tokens_min: Option<usize>,
    pub tokens_max: Option<usize>,
    /// Records written to the dataset files.
    pub records: usize,
    /// Verified trajectories that could not be written as training conversations, by reason.
    pub unconvertible: BTreeMap<String, usize>,
}

impl Distributions {
    pub fn add(&mut self, record: &AttemptRecord) {
        *self.agent_steps.entry(record.agent_steps).or_default() += 1;
        *self.tool_calls.entry(record.tool_calls).or_default() += 1;
        let tokens = record.tokens.total();
        self.tokens_total += tokens;
        self.tokens_min = Some(self.tokens_min.map_or(tokens, |m| m.min(tokens)));
        self.tokens_max = Some(self.tokens_max.map_or(tokens, |m| m.max(tokens)));
    }

    fn to_json(&self, verified: usize) -> Value {
        json!({
            "agent_steps": self.agent_steps,
            "tool_calls": self.tool_calls,
            "tokens_per_verified": {
                "mean": ratio(self.tokens_total, verified),
                "min": self.tokens_min,
                "max": self.tokens_max,
            },
        })
    }
}

fn ratio(a: usize, b: usize) -> Value {
    if b == 0 {
        Value::Null
    } else {
        json!(a as f64 / b as f64)
    }
}

/// One model's totals: an in-process engine's metrics, or what was asked of a server.
#[derive(Debug, Clone, Serialize)]
pub struct EngineReport {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<EngineMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerReport>,
}

impl EngineReport {
    fn generated_tokens(&self) -> u64 {
        match (&self.metrics, &self.server) {
            (Some(metrics), _) => metrics.generated_tokens,
            (None, Some(server)) => server.completion_tokens,
            (None, None) => 0,
        }
    }
}

/// Builds `stats.json` from the phases' final progress. Everything outside `timing` is a
/// function of the config and seed alone.
pub fn build(
    blueprints: Option<&BlueprintProgress>,
    trajectories: Option<&TrajectoryProgress>,
    dataset: &Distributions,
    timing: Value,
) -> Value {
    let mut stats = serde_json::Map::new();
    let mut funnel = Vec::new();
    let mut tokens = 0;
    if let Some(p) = blueprints {
        let s = &p.stats;
        let mut phase = s.to_json();
        funnel.push(json!({"stage": "blueprint attempts", "count": s.attempted, "rate": Value::Null}));
        funnel.push(json!({"stage": "validated blueprints", "count": s.validated, "rate": ratio(s.validated, s.attempted)}));
        if let Some(map) = phase.as_object_mut() {
            let counts = map.remove("blueprints").unwrap_or(Value::Null);
            let mut section = counts.as_object().cloned().unwrap_or_default();
            for (key, value) in std::mem::take(map) {
                section.insert(key, value);
            }
            stats.insert("blueprints".into(), Value::Object(section));
        }
        tokens += s.tokens;
    }
    if let Some(p) = trajectories {
        let s = &p.stats;
        let t = &s.trajectories;
        funnel.push(json!({"stage": "trajectory attempts", "count": t.attempted, "rate": Value::Null}));
        funnel.push(json!({"stage": "verified trajectories", "count": t.verified, "rate": ratio(t.verified, t.attempted)}));
        funnel.push(json!({"stage": "dataset records", "count": dataset.records, "rate": ratio(dataset.records, t.verified)}));
        stats.insert(
            "trajectories".into(),
            json!({
                "attempted": t.attempted,
                "verified": t.verified,
                "rejected": t.rejected,
                "duplicates": t.duplicates,
                "rejected_by_reason": s.rejected_by_reason,
                "blueprints": s.blueprints,
                "per_verified": s.per_verified,
                "distribution": dataset.to_json(t.verified),
                "tokens": s.tokens,
            }),
        );
        stats.insert("dataset".into(), json!({"records": dataset.records, "unconvertible": dataset.unconvertible}));
        tokens += s.tokens.total();
    }
    stats.insert("funnel".into(), Value::Array(funnel));
    stats.insert("tokens".into(), json!(tokens));
    stats.insert("timing".into(), timing);
    Value::Object(stats)
}

/// The `timing` section of this process: wall time, generated tokens per second over every
/// engine, each engine's metrics and each role's requests with its prefix-cache share.
pub fn timing(wall_seconds: f64, engines: &[EngineReport], roles: &BTreeMap<String, RoleUsage>) -> Value {
    let generated: u64 = engines.iter().map(EngineReport::generated_tokens).sum();
    json!({
        "note": "this process only: a resumed run counts from its restart",
        "wall_seconds": wall_seconds,
        "generated_tokens_per_second": if wall_seconds > 0.0 { json!(generated as f64 / wall_seconds) } else { Value::Null },
        "engines": engines,
        "roles": roles.iter().map(|(role, u)| {
            (role.clone(), json!({"requests": u.requests, "prompt_tokens": u.prompt_tokens, "cached_tokens": u.cached_tokens,
                                 "cache_share": u.cache_share(), "generated_tokens": u.generated_tokens}))
        }).collect::<serde_json::Map<_, _>>(),
    })
}

/// The `timing` section of a merged run: each shard's own timing kept as it was, their wall
/// times and generated tokens summed, and the longest shard's wall time as the run's (shards run
/// side by side on a cluster).
pub fn merged_timing(shards: &[(String, Value)]) -> Value {
    let number = |t: &Value, key: &str| t[key].as_f64().unwrap_or(0.0);
    let generated: f64 = shards.iter().map(|(_, t)| number(t, "wall_seconds") * number(t, "generated_tokens_per_second")).sum();
    let summed: f64 = shards.iter().map(|(_, t)| number(t, "wall_seconds")).sum();
    let longest = shards.iter().map(|(_, t)| number(t, "wall_seconds")).fold(0.0, f64::max);
    json!({
        "note": "merged: wall_seconds is the longest shard's (shards run side by side); summed_wall_seconds adds them up; generated_tokens_per_second is over the summed time; each shard's own timing is under shards",
        "wall_seconds": longest,
        "summed_wall_seconds": summed,
        "generated_tokens_per_second": if summed > 0.0 { json!(generated / summed) } else { Value::Null },
        "shards": shards.iter().map(|(name, t)| json!({"shard": name, "timing": t})).collect::<Vec<_>>(),
    })
}
