//! Runs against environment packages: faults of the tool server, a server that cannot start,
//! resuming with a moved or edited package, and a small `run` on SmolLM2.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use apigen_mt::chat::generic::call_text;
use apigen_mt::chat::{Role, ToolCall};
use apigen_mt::cli::load::Engines;
use apigen_mt::cli::pipeline::Pipeline;
use apigen_mt::config::{Settings, SettingsFile};
use apigen_mt::dataset::rundir::{RunDir, BLUEPRINTS, BLUEPRINTS_REJECTED, TRAJECTORIES, TRAJECTORIES_REJECTED};
use apigen_mt::engine::{Completion, Constraint, EngineError, EngineHandle, FinishReason, LanguageModel, ModelInfo, Prompt, Request};
use apigen_mt::env::Action;
use apigen_mt::prompts::Prompts;
use apigen_mt::trajectory::runner::World;
use apigen_mt::trajectory::user::STOP;
use serde_json::{json, Value};

use super::{copy_package, edit, faulty, library, python};

/// Marks the actions a task's instruction carries, for the scripted agent to replay.
const MARK: &str = " Steps: ";
/// The writes of the faulty package: one works, three break the server.
const WRITES: [&str; 4] = ["bump", "crash", "hang", "garble"];

/// Plays every role for the faulty package: the generator drafts "identify, then one write",
/// the writes in turn; reviewers accept; the simulated user states the goal and stops; the
/// agent replays the task's actions, but every other time swaps the write for one that breaks
/// the server. (Turns, not seeds, pick the writes, so that every fault surely happens; which
/// task gets which depends on scheduling, which this test does not compare.)
struct Script {
    info: ModelInfo,
    /// Drafts so far: draft k takes write k mod 4, so every write is drafted twice in 8.
    drafts: AtomicUsize,
    /// The agent's write calls so far: every other one breaks the server.
    agent_writes: AtomicUsize,
}

fn allowed(schema: &Value, name: &str) -> Option<String> {
    match schema {
        Value::Object(map) => map
            .get("properties")
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("enum"))
            .and_then(|e| e.get(0))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| map.values().find_map(|v| allowed(v, name))),
        Value::Array(list) => list.iter().find_map(|v| allowed(v, name)),
        _ => None,
    }
}

impl LanguageModel for Script {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, _: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        let Prompt::Chat { messages, tools, .. } = &request.prompt else {
            return Err(EngineError::Invalid("the pipeline sends chat prompts".into()));
        };
        let prompt = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
        let seed = request.sampling.seed;
        let text = if !tools.is_empty() {
            let first = messages.iter().find(|m| m.role == Role::User).map(|m| m.content.as_str()).unwrap_or("");
            let mut actions: Vec<Action> = first.split_once(MARK).and_then(|(_, a)| serde_json::from_str(a).ok()).unwrap_or_default();
            let done = messages.iter().filter(|m| m.role == Role::Tool).count();
            if done + 1 == actions.len() {
                let k = self.agent_writes.fetch_add(1, Ordering::SeqCst);
                actions[done].name = if k.is_multiple_of(2) { "bump".into() } else { WRITES[1 + (k / 2) % 3].to_string() };
            }
            match actions.get(done) {
                Some(a) => call_text(&ToolCall { id: String::new(), name: a.name.clone(), arguments: a.kwargs.clone() }),
                None => "Done.".into(),
            }
        } else if prompt.starts_with("You are role-playing a customer") {
            let spoke = messages.iter().any(|m| m.role == Role::Assistant);
            let goal = prompt.split("Your goal, which only you know:\n").nth(1).and_then(|g| g.lines().next()).unwrap_or("");
            if spoke {
                STOP.to_string()
            } else {
                goal.to_string()
            }
        } else if prompt.contains("You review") {
            json!({"reflection": "ok", "correctness": 1, "completeness": 1, "satisfaction": 1, "creativity": 1, "correction": ""})
                .to_string()
        } else if prompt.contains("failed the") {
            "Try again.".to_string()
        } else {
            let schema = match &request.constraint {
                Some(Constraint::JsonSchema(s)) => s,
                _ => return Err(EngineError::Invalid("the generator is constrained".into())),
            };
            let email = allowed(schema, "email").expect("email enum");
            let item = allowed(schema, "item_id").expect("item_id enum");
            let write = WRITES[self.drafts.fetch_add(1, Ordering::SeqCst) % 4];
            let actions = json!([{"name": "find_user", "kwargs": {"email": email}}, {"name": write, "kwargs": {"item_id": item}}]);
            let instruction = format!("You are {email}; count item {item} once more ({seed}).{MARK}{actions}");
            json!({"thought": "identify, then count", "instruction": instruction, "actions": actions, "outputs": []}).to_string()
        };
        Ok(Completion {
            tokens: vec![7; text.len() % 13 + 1],
            prompt_tokens: prompt.len() / 4,
            generated_count: None,
            cached_tokens: 0,
            text,
            reasoning: None,
            finish_reason: FinishReason::Stop,
            error: None,
        })
    }

    fn count_tokens(&self, _: &Prompt) -> Result<usize, EngineError> {
        Ok(100)
    }
}

/// Eight Phase 1 attempts, all committed (the run stops at max_attempts, before --tasks).
fn settings(package: &Path) -> Settings {
    let text = format!(
        "domain = '{}'\nmodel = 'script'\nseed = 3\ntasks = 10\nmax_attempts = 8\nreviewers = 1\nrounds = 0\nrecombine = 0\n\
         attempts = 2\nbest_of = 1\nmax_turns = 6\nconcurrency = 3\nactions = 'model'\n",
        package.display()
    );
    toml::from_str::<SettingsFile>(&text).expect("TOML").resolve().expect("settings")
}

const FILES: [&str; 4] = [BLUEPRINTS, BLUEPRINTS_REJECTED, TRAJECTORIES, TRAJECTORIES_REJECTED];

/// `run` into `dir` with the script playing every role, as the command does.
fn run(dir: &Path, settings: &Settings) -> anyhow::Result<()> {
    let info = ModelInfo {
        name: "script".into(),
        architecture: "script".into(),
        context_length: 1 << 16,
        tool_format: "generic".into(),
        template_supports_tools: false,
    };
    let engines = Engines::from_handles(vec![(
        "script".into(),
        EngineHandle::new(Arc::new(Script { info, drafts: AtomicUsize::new(0), agent_writes: AtomicUsize::new(0) })),
    )]);
    let prompts = Prompts::load(None)?;
    let options = json!({"prompts": null, "few_shot": [], "trace": false, "shard": null});
    let out = RunDir::open(dir, "run", settings, options, &FILES)?;
    let mut pipeline = Pipeline::new(settings, &engines, &prompts, None);
    pipeline.show = false;
    let policy = apigen_mt::env::resolve(&settings.domain)?.policy();
    let mut out = pipeline.stream(&[], false, policy, World::Generated(settings.seed), out)?;
    out.finish(&[], &pipeline.roles())?;
    Ok(())
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[test]
fn a_run_survives_tools_that_crash_hang_and_answer_garbage() {
    if !python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run(&dir, &settings(&faulty())).expect("the run finishes despite the faults");

    let validated = jsonl(&dir.join(BLUEPRINTS));
    let rejected = jsonl(&dir.join(BLUEPRINTS_REJECTED));
    assert_eq!(validated.len(), 2, "the two drafts that bump validate");
    for line in &validated {
        assert_eq!(line["actions"][1]["name"], "bump", "{line}");
    }
    let env_errors: Vec<&str> = rejected.iter().filter(|l| l["stage"] == "env_error").map(|l| l["reason"].as_str().unwrap()).collect();
    for (tool, how) in [("crash", "died (exit status: 3)"), ("hang", "did not answer within 1.0s"), ("garble", "garbage")] {
        assert!(
            env_errors.iter().any(|r| r.contains(&format!("tools/call {tool}: ")) && r.contains(how)),
            "no env_error names tools/call {tool} ({how}): {env_errors:?}"
        );
    }
    assert_eq!(env_errors.len(), rejected.len(), "only the broken tools are rejected: {rejected:?}");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap();
    let counts = &stats["blueprints"];
    assert_eq!(counts["attempted"].as_u64(), Some((validated.len() + rejected.len()) as u64), "every attempt has its line: {counts}");
    assert_eq!(counts["rejected_by_stage"]["env_error"].as_u64(), Some(rejected.len() as u64), "{counts}");

    // Phase 2: every attempt of every validated blueprint has its line; the agent's calls of the
    // broken tools are env_error rejections naming the call, the others verify.
    let verified = jsonl(&dir.join(TRAJECTORIES));
    let failed = jsonl(&dir.join(TRAJECTORIES_REJECTED));
    assert_eq!(verified.len() + failed.len(), 2 * 2);
    assert!(!verified.is_empty(), "no conversation verified");
    let broken: Vec<&Value> = failed.iter().filter(|l| l["reason"] == "env_error").collect();
    assert_eq!(broken.len(), 2, "every other agent write broke the server: {failed:?}");
    for line in &broken {
        let error = line["error"].as_str().unwrap();
        assert!(error.starts_with("tools/call crash: ") || error.starts_with("tools/call hang: "), "{line}");
        assert!(
            error.contains("env-server.log") && !error.contains(tmp.path().to_str().unwrap()),
            "the log is named, not its path: {error}"
        );
    }
    // The rest are verified conversations repeated within a blueprint.
    assert!(failed.iter().all(|l| l["reason"] == "env_error" || l["reason"] == "duplicate"), "{failed:?}");
    let log = std::fs::read_to_string(dir.join("env-server.log")).expect("the servers' stderr is kept in the run directory");
    assert!(log.contains("crashing on purpose"), "{log}");
}

#[test]
fn a_server_that_cannot_start_stops_the_run_and_commits_nothing() {
    if !python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let package = tmp.path().join("once");
    copy_package(&faulty(), &package);
    // The server starts when the package loads, then never again: the run's own servers fail.
    edit(&package, "env.toml", "\"server.py\"", "\"server.py\", \"--start-once\"");
    let dir = tmp.path().join("run");
    let err = format!("{:#}", run(&dir, &settings(&package)).unwrap_err());
    assert!(err.contains("the tool server of faulty cannot start"), "{err}");
    for file in FILES {
        assert!(jsonl(&dir.join(file)).is_empty(), "{file} has lines of a run whose environment never worked");
    }
    let log = std::fs::read_to_string(dir.join("env-server.log")).unwrap();
    assert!(log.contains("refusing to start"), "{log}");
}

#[test]
fn a_moved_package_resumes_and_an_edited_one_is_refused_naming_the_file() {
    if !python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (here, there) = (tmp.path().join("here"), tmp.path().join("there"));
    copy_package(&faulty(), &here);
    let files = [BLUEPRINTS];
    let dir = tmp.path().join("run");
    let first = settings(&here);
    assert_eq!(first.domain, "faulty", "the settings name the package, not its folder");
    RunDir::open(&dir, "run", &first, json!({}), &files).expect("a fresh run");

    std::fs::rename(&here, &there).unwrap();
    let moved = settings(&there);
    assert_eq!(moved.hash(), first.hash(), "where a package lies is not part of the run");
    RunDir::open(&dir, "run", &moved, json!({}), &files).expect("a moved package resumes");

    // Edited (a copy: this process keeps the package it loaded from `there`).
    let changed = tmp.path().join("changed");
    copy_package(&there, &changed);
    edit(&changed, "data/items.json", "\"count\": 1", "\"count\": 2");
    let edited = settings(&changed);
    let err = format!("{:#}", RunDir::open(&dir, "run", &edited, json!({}), &files).err().expect("an edited package is refused"));
    assert!(err.contains("package.files.data/items.json"), "{err}");
}

/// A small `run` on SmolLM2 against the example package, twice: the run completes, its files
/// are well formed, and the same seed gives the same files. About 100 s on 2 cores.
#[test]
fn a_small_run_on_smollm2_against_the_example_package_is_reproducible() {
    let Some(model) = crate::support::smollm2_dir() else { return };
    if !python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_apigen-mt"))
            .args(["run", "--domain", library().to_str().unwrap(), "--seed", "1", "--out", tmp.path().join(out).to_str().unwrap()])
            .args(["--model", model.join("model-q4_1.gguf").to_str().unwrap()])
            // Threshold 0: a draft that replays and keeps the rules validates whatever the one
            // reviewer says, so that Phase 2 talks to the tool server too.
            .args(["--tasks", "1", "--max-attempts", "1", "--reviewers", "1", "--threshold", "0", "--rounds", "1"])
            .args(["--attempts", "1", "--best-of", "1", "--max-turns", "3"])
            .args(["--generator-max-tokens", "160", "--reviewer-max-tokens", "64", "--summarizer-max-tokens", "32"])
            .args(["--agent-max-tokens", "48", "--user-max-tokens", "32"])
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    run("a");
    run("b");
    let a = tmp.path().join("a");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(a.join("stats.json")).unwrap()).unwrap();
    eprintln!("smollm2 library run: {}", stats["blueprints"]);
    assert_eq!(stats["blueprints"]["attempted"], 1);
    let validated = stats["blueprints"]["validated"].as_u64().unwrap();
    let conversations = jsonl(&a.join(TRAJECTORIES)).len() + jsonl(&a.join(TRAJECTORIES_REJECTED)).len();
    assert_eq!(conversations as u64, validated, "one conversation per validated blueprint");
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(a.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["config"]["domain"], "library");
    assert!(manifest["config"]["package"]["files"]["server.py"].is_string(), "{}", manifest["config"]);
    let mut records = 0;
    for file in FILES {
        let lines = jsonl(&a.join(file));
        records += lines.len();
        for line in &lines {
            assert!(
                line["id"].as_str().or(line["blueprint_id"].as_str()).is_some_and(|id| !id.contains('/')),
                "ids name the package, not its path: {line}"
            );
        }
        let read = |d: &str| std::fs::read_to_string(tmp.path().join(d).join(file)).unwrap_or_default();
        assert_eq!(read("a"), read("b"), "{file} differs between two runs with the same seed");
    }
    assert!(records >= 1, "the attempt has its line");
}
