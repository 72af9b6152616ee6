//! A run directory read back for the pages a person reads (`report.html`, the dataset card):
//! `stats.json`, `manifest.json` and whichever record files are there.
//!
//! Only `stats.json` is required. Every record file may be missing, so that the directories of
//! every command read alike (blueprints only, trajectories only, whole runs, merged ones); a
//! file kind that a later command adds needs one more reader in [`SOURCES`]. Records of all
//! files become one list of [`Record`]s with the facets the browser filters on (kind, outcome,
//! reason, user, tools) and the line itself for the detail view.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::jsonl::read_values;

/// One record of the run, whatever file it came from.
#[derive(Debug, Clone)]
pub struct Record {
    /// The id the files use: a blueprint's id, or `<blueprint id>/attempt-<n>` for a
    /// conversation (the dataset's `metadata.id`).
    pub id: String,
    /// `trajectory`, `blueprint` or `eval`.
    pub kind: &'static str,
    /// `verified`, `validated`, `rejected`, `passed` or `failed`.
    pub outcome: &'static str,
    /// Why it was rejected: a Phase 2 reason or a Phase 1 stage.
    pub reason: Option<String>,
    pub user: Option<String>,
    /// The tools its conversation called or its actions name, sorted.
    pub tools: Vec<String>,
    /// The task in words (the instruction), for the list.
    pub title: String,
    /// User turns, tool calls and tokens of a conversation.
    pub turns: Option<usize>,
    pub tool_calls: Option<usize>,
    pub tokens: Option<usize>,
    /// Where it came from: file name and line (from 1).
    pub file: &'static str,
    pub line: usize,
    /// The line, with long texts many records share replaced by references (see
    /// [`Contents::shared`]).
    pub body: Value,
}

/// What a run directory holds.
pub struct Contents {
    pub dir: PathBuf,
    pub stats: Value,
    /// `Value::Null` when the directory has no manifest.
    pub manifest: Value,
    pub records: Vec<Record>,
    /// Long texts that many records share (the policy, as every conversation's system
    /// message), each stored once; a message refers to one by `shared_content: index`.
    pub shared: Vec<String>,
    /// The record files found and their record counts.
    pub files: Vec<(&'static str, usize)>,
}

/// A record file and how its lines become records.
struct Source {
    file: &'static str,
    read: fn(&Value, &Lookup) -> Option<Record>,
}

/// What readers may look up across files.
#[derive(Default)]
struct Lookup {
    /// Blueprint id → its user, from `blueprints.jsonl`.
    users: HashMap<String, String>,
}

/// The record files, in the order the browser lists them: the dataset first.
const SOURCES: &[Source] = &[
    Source { file: "trajectories.jsonl", read: trajectory },
    Source { file: "results.jsonl", read: eval_result },
    Source { file: "trajectories.rejected.jsonl", read: rejected_trajectory },
    Source { file: "blueprints.jsonl", read: validated_blueprint },
    Source { file: "heldout.jsonl", read: heldout_blueprint },
    Source { file: "blueprints.rejected.jsonl", read: rejected_blueprint },
];

/// Texts at least this long that repeat are stored once.
const SHARE_AT: usize = 200;

impl Contents {
    /// Reads `dir`. A missing `stats.json` is an error naming it; a record file that is there
    /// but not JSON Lines is an error naming the file and line.
    pub fn read(dir: &Path) -> Result<Self> {
        let stats_path = dir.join(super::rundir::STATS);
        let text = std::fs::read_to_string(&stats_path)
            .with_context(|| format!("reading {}: is {} a run directory?", stats_path.display(), dir.display()))?;
        let stats: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", stats_path.display()))?;
        let manifest_path = dir.join(super::manifest::FILE);
        let manifest = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("{} is not JSON", manifest_path.display()))?,
            Err(_) => Value::Null,
        };

        let mut lines = BTreeMap::new();
        for source in SOURCES {
            let path = dir.join(source.file);
            if path.is_file() {
                lines.insert(source.file, read_values(&path)?);
            }
        }
        let mut context = Lookup::default();
        for line in lines.get("blueprints.jsonl").into_iter().flatten() {
            if let (Some(id), Some(user)) = (line["id"].as_str(), line["user_id"].as_str()) {
                context.users.insert(id.to_string(), user.to_string());
            }
        }
        let mut records = Vec::new();
        let mut files = Vec::new();
        for source in SOURCES {
            let Some(values) = lines.get(source.file) else { continue };
            files.push((source.file, values.len()));
            for (i, value) in values.iter().enumerate() {
                if let Some(mut record) = (source.read)(value, &context) {
                    record.file = source.file;
                    record.line = i + 1;
                    records.push(record);
                }
            }
        }
        let shared = share_texts(&mut records);
        Ok(Self { dir: dir.to_path_buf(), stats, manifest, records, shared, files })
    }

    /// The config the run was made with (`manifest.config`), or null.
    pub fn config(&self) -> &Value {
        &self.manifest["config"]
    }
}

/// Replaces system messages that repeat across records by references into a shared list.
fn share_texts(records: &mut [Record]) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in records.iter() {
        for m in messages_of(&r.body) {
            if let Some(text) = m["content"].as_str().filter(|t| t.len() >= SHARE_AT && m["role"] == "system") {
                *counts.entry(text.to_string()).or_default() += 1;
            }
        }
    }
    let mut shared: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in records.iter_mut() {
        for m in messages_of_mut(&mut r.body) {
            let Some(text) = m["content"].as_str() else { continue };
            if counts.get(text).is_some_and(|&n| n > 1) {
                let next = shared.len();
                let k = *index.entry(text.to_string()).or_insert_with(|| {
                    shared.push(text.to_string());
                    next
                });
                m["content"] = Value::Null;
                m["shared_content"] = json!(k);
            }
        }
    }
    shared
}

fn messages_of(body: &Value) -> impl Iterator<Item = &Value> {
    body["messages"].as_array().into_iter().flatten()
}

fn messages_of_mut(body: &mut Value) -> impl Iterator<Item = &mut Value> {
    body.get_mut("messages").and_then(Value::as_array_mut).into_iter().flatten()
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The names of the tools a conversation's messages call.
fn called_tools(messages: &Value) -> Vec<String> {
    let mut names = BTreeSet::new();
    for m in messages.as_array().into_iter().flatten() {
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            // The crate's messages name the tool at the top; OpenAI's under `function`.
            if let Some(name) = call["name"].as_str().or(call["function"]["name"].as_str()) {
                names.insert(name.to_string());
            }
        }
    }
    names.into_iter().collect()
}

/// The first `user_id` argument of a conversation's calls: who the conversation was with,
/// where no blueprint says it.
fn user_in_calls(messages: &Value) -> Option<String> {
    messages.as_array().into_iter().flatten().flat_map(|m| m["tool_calls"].as_array().into_iter().flatten()).find_map(|call| {
        let arguments = if call["arguments"].is_object() { &call["arguments"] } else { &call["function"]["arguments"] };
        string(&arguments["user_id"])
    })
}

fn action_tools(actions: &Value) -> Vec<String> {
    let names: BTreeSet<String> = actions.as_array().into_iter().flatten().filter_map(|a| string(&a["name"])).collect();
    names.into_iter().collect()
}

/// A Phase 2 attempt (verified in `trajectories.jsonl`, rejected in `trajectories.rejected.jsonl`).
fn conversation(line: &Value, context: &Lookup, outcome: &'static str) -> Record {
    let blueprint = string(&line["blueprint_id"]).unwrap_or_default();
    let id = format!("{blueprint}/attempt-{}", line["attempt"]);
    let user = context.users.get(&blueprint).cloned().or_else(|| user_in_calls(&line["messages"]));
    let tokens = line["tokens"].as_object().map(|roles| {
        roles.values().map(|t| t["prompt"].as_u64().unwrap_or(0) + t["completion"].as_u64().unwrap_or(0)).sum::<u64>() as usize
    });
    Record {
        id,
        kind: "trajectory",
        outcome,
        reason: string(&line["reason"]),
        user,
        tools: called_tools(&line["messages"]),
        title: string(&line["instruction"]).unwrap_or_default(),
        turns: line["user_turns"].as_array().map(Vec::len),
        tool_calls: line["tool_calls"].as_u64().map(|n| n as usize),
        tokens,
        file: "",
        line: 0,
        body: line.clone(),
    }
}

fn trajectory(line: &Value, context: &Lookup) -> Option<Record> {
    Some(conversation(line, context, "verified"))
}

/// A blueprint line (validated, or the draft of a rejected attempt).
fn blueprint(line: &Value, outcome: &'static str, reason: Option<String>) -> Record {
    let draft = if outcome == "validated" { line } else { &line["draft"] };
    Record {
        id: string(&line["id"]).unwrap_or_default(),
        kind: "blueprint",
        outcome,
        reason,
        user: string(&line["user_id"]),
        tools: action_tools(&draft["actions"]),
        title: string(&draft["instruction"]).unwrap_or_default(),
        turns: None,
        tool_calls: draft["actions"].as_array().map(Vec::len),
        tokens: line["tokens"].as_u64().map(|n| n as usize),
        file: "",
        line: 0,
        body: line.clone(),
    }
}

fn validated_blueprint(line: &Value, _: &Lookup) -> Option<Record> {
    Some(blueprint(line, "validated", None))
}

/// A validated blueprint held out for `eval` (`heldout.jsonl`).
fn heldout_blueprint(line: &Value, _: &Lookup) -> Option<Record> {
    Some(blueprint(line, "held out", None))
}

/// A failed Phase 1 attempt (`blueprints.rejected.jsonl`).
fn rejected_blueprint(line: &Value, _: &Lookup) -> Option<Record> {
    Some(blueprint(line, "rejected", string(&line["stage"])))
}

/// A Phase 2 attempt that was not kept (`trajectories.rejected.jsonl`).
fn rejected_trajectory(line: &Value, context: &Lookup) -> Option<Record> {
    Some(conversation(line, context, "rejected"))
}

/// An `eval` trial: `task_id`, `trial`, `reward` (0 or 1), `reason` and its `messages`.
fn eval_result(line: &Value, _: &Lookup) -> Option<Record> {
    let passed = line["reward"].as_u64() == Some(1);
    let body = line.clone();
    let task = line["task_id"].as_str().map_or_else(|| line["task_id"].to_string(), str::to_string);
    Some(Record {
        id: format!("{task}/trial-{}", line["trial"]),
        kind: "eval",
        outcome: if passed { "passed" } else { "failed" },
        reason: if passed { None } else { string(&line["reason"]).or(Some("failed".into())) },
        user: user_in_calls(&body["messages"]),
        tools: called_tools(&body["messages"]),
        title: string(&line["instruction"]).unwrap_or_default(),
        turns: body["messages"].as_array().map(|m| m.iter().filter(|m| m["role"] == "user").count()),
        tool_calls: body["messages"].as_array().map(|m| m.iter().map(|m| m["tool_calls"].as_array().map_or(0, Vec::len)).sum()),
        tokens: None,
        file: "",
        line: 0,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_with_stats_alone_reads_and_one_without_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", Contents::read(dir.path()).err().unwrap());
        assert!(err.contains("stats.json"), "{err}");
        std::fs::write(dir.path().join("stats.json"), "{\"funnel\": []}").unwrap();
        let c = Contents::read(dir.path()).unwrap();
        assert!(c.records.is_empty() && c.files.is_empty() && c.manifest.is_null());
    }

    #[test]
    fn records_of_every_file_get_ids_facets_and_shared_texts() {
        let dir = tempfile::tempdir().unwrap();
        let policy = "p".repeat(SHARE_AT);
        let call = json!({"id": "c1", "name": "get_user_details", "arguments": {"user_id": "ana_1"}});
        let messages = json!([{"role": "system", "content": policy}, {"role": "user", "content": "hi"},
                              {"role": "assistant", "content": "", "tool_calls": [call]}]);
        let attempt = |n: u32, reason: Value| {
            json!({"blueprint": 0, "blueprint_id": "bp-0", "attempt": n, "instruction": "Move.",
            "reason": reason, "messages": messages, "user_turns": [{}], "tool_calls": 1,
            "tokens": {"agent": {"prompt": 3, "completion": 1}, "user": {"prompt": 2, "completion": 2}}})
        };
        let mut verified = attempt(0, Value::Null);
        verified.as_object_mut().unwrap().remove("reason");
        let rejected_attempt = attempt(1, json!("state_mismatch"));
        let write = |name: &str, lines: &[Value]| {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(dir.path().join(name), text).unwrap();
        };
        std::fs::write(dir.path().join("stats.json"), "{}").unwrap();
        write("trajectories.jsonl", &[verified]);
        write(
            "blueprints.jsonl",
            &[json!({"id": "bp-0", "user_id": "ana_2", "instruction": "Move.", "actions": [{"name": "b"}, {"name": "a"}], "tokens": 9})],
        );
        write(
            "blueprints.rejected.jsonl",
            &[json!({"id": "bp-1", "stage": "policy", "draft": {"instruction": "X", "actions": [{"name": "c"}]}})],
        );
        write("trajectories.rejected.jsonl", &[rejected_attempt]);
        let c = Contents::read(dir.path()).unwrap();
        let summary: Vec<(&str, &str, &str, Option<&str>)> =
            c.records.iter().map(|r| (r.id.as_str(), r.kind, r.outcome, r.reason.as_deref())).collect();
        assert_eq!(
            summary,
            [
                ("bp-0/attempt-0", "trajectory", "verified", None),
                ("bp-0/attempt-1", "trajectory", "rejected", Some("state_mismatch")),
                ("bp-0", "blueprint", "validated", None),
                ("bp-1", "blueprint", "rejected", Some("policy")),
            ]
        );
        let first = &c.records[0];
        // The blueprint's user wins over the one in the calls; tokens add up over roles.
        assert_eq!((first.user.as_deref(), first.tokens, first.turns), (Some("ana_2"), Some(8), Some(1)));
        assert_eq!(first.tools, ["get_user_details"]);
        assert_eq!(c.records[2].tools, ["a", "b"]);
        assert_eq!(c.records[3].tools, ["c"]);
        // The policy is stored once and both conversations point at it.
        assert_eq!(c.shared, [policy]);
        assert_eq!(first.body["messages"][0]["shared_content"], 0);
        assert!(first.body["messages"][0]["content"].is_null());
        assert_eq!(c.records[1].body["messages"][0]["shared_content"], 0);
        assert_eq!(c.records[1].line, 1);
    }
}
