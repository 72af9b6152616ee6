//! Phase 2 end to end: a scripted agent that replays a blueprint's own ground truth must verify
//! (and a one-argument change must not), and the `trajectories` command on the real SmolLM2 GGUF
//! records every attempt and repeats itself exactly.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};

use apigen_mt::chat::generic::call_text;
use apigen_mt::chat::{Role, ToolCall};
use apigen_mt::config::SettingsFile;
use apigen_mt::dataset::rundir::{RunDir, OPENAI, SHAREGPT, TRAJECTORIES, TRAJECTORIES_REJECTED};
use apigen_mt::engine::{Completion, EngineError, EngineHandle, FinishReason, LanguageModel, ModelInfo, Prompt, Request};
use apigen_mt::env::{Action, Db};
use apigen_mt::prompts::Prompts;
use apigen_mt::schedule::Slots;
use apigen_mt::trajectory::agent::Models;
use apigen_mt::trajectory::runner::{run, tasks_of, Progress, Run, Stats, World};
use apigen_mt::trajectory::user::STOP;
use apigen_mt::trajectory::Task;

/// An agent that makes `calls` one per step (in the generic tool-call format), then says
/// `answer`; a user who asks once and then stops. Replies depend only on the prompt, so any
/// number of threads may share it.
struct Replay {
    info: ModelInfo,
    calls: Vec<Action>,
    answer: String,
}

impl LanguageModel for Replay {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, _: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        let Prompt::Chat { messages, tools, .. } = &request.prompt else {
            return Err(EngineError::Invalid("expected a chat prompt".into()));
        };
        let spoken = messages.iter().filter(|m| m.role == Role::Assistant).count();
        let text = if tools.is_empty() {
            if spoken == 0 { "Please change my default address." } else { STOP }.to_string()
        } else if let Some(action) = self.calls.get(spoken) {
            call_text(&ToolCall { id: String::new(), name: action.name.clone(), arguments: action.kwargs.clone() })
        } else {
            self.answer.clone()
        };
        Ok(Completion {
            text,
            reasoning: None,
            tokens: vec![0; 3],
            prompt_tokens: 10,
            generated_count: None,
            cached_tokens: 0,
            finish_reason: FinishReason::Stop,
            error: None,
        })
    }

    fn count_tokens(&self, _: &Prompt) -> Result<usize, EngineError> {
        Ok(10)
    }
}

fn world() -> Db {
    apigen_mt::env::generate::generate("retail", 0).expect("retail generates")
}

fn first_user(db: &Db) -> String {
    db["users"].as_object().and_then(|u| u.keys().next().cloned()).expect("the world has users")
}

fn action(name: &str, kwargs: Value) -> Action {
    Action { name: name.into(), kwargs: kwargs.as_object().cloned().unwrap_or_default() }
}

fn blueprint(user: &str, zip: &str) -> Task {
    let address = json!({"user_id": user, "address1": "12 Quarry Lane", "address2": "Unit 4", "city": "Dover",
                         "state": "DE", "country": "USA", "zip": zip});
    Task {
        id: Some("move".into()),
        instruction: format!("You are {user}. You moved; update your default address to 12 Quarry Lane, Unit 4, Dover DE {zip}."),
        actions: vec![action("get_user_details", json!({"user_id": user})), action("modify_user_address", address)],
        outputs: vec![zip.to_string()],
        user_id: Some(user.into()),
        persona: None,
        data_seed: Some(0),
    }
}

fn replay_run(calls: Vec<Action>, answer: &str, blueprint: &Task, attempts: usize, out: &Path) -> Stats {
    let info = ModelInfo {
        name: "replay".into(),
        architecture: "script".into(),
        context_length: 100_000,
        tool_format: "generic".into(),
        template_supports_tools: false,
    };
    let handle = EngineHandle::new(Arc::new(Replay { info, calls, answer: answer.into() }));
    let models = Models { agent: handle.clone(), user: handle.clone(), judge: handle };
    let prompts = Prompts::load(None).expect("compiled-in prompts");
    let text = format!("domain = 'retail'\nmodel = 'replay'\nattempts = {attempts}\nbest_of = 1\nmax_turns = 6\nconcurrency = 2\n");
    let settings = toml::from_str::<SettingsFile>(&text).expect("TOML").resolve().expect("settings");
    let config = apigen_mt::trajectory::TrajectoryConfig::from_settings(&settings);
    let domain = apigen_mt::env::domain("retail").expect("retail");
    let policy = apigen_mt::env::policy::document("retail").expect("policy");
    let setup = Run {
        models: &models,
        prompts: &prompts,
        config: &config,
        policy,
        domain,
        world: World::Generated(9),
        slots: &Slots::new(settings.concurrency.unwrap_or(1)),
        expected: 1,
        show: false,
    };
    let files = [TRAJECTORIES, TRAJECTORIES_REJECTED, SHAREGPT, OPENAI];
    let mut sink = RunDir::open(out, "trajectories", &settings, json!({}), &files).expect("a run directory");
    let progress = run(setup, tasks_of([blueprint.clone()]), &mut sink, Progress::default()).expect("the run completes");
    sink.finish(&[], &Default::default()).expect("stats");
    progress.stats
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("output file");
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[test]
fn replaying_the_ground_truth_verifies_and_a_changed_argument_does_not() {
    let user = first_user(&world());
    let bp = blueprint(&user, "19901");
    let dir = tempfile::tempdir().expect("temp dir");

    let good = dir.path().join("good");
    let stats = replay_run(bp.actions.clone(), "Done: your address now ends in 19,901.", &bp, 2, &good);
    assert_eq!((stats.trajectories.attempted, stats.trajectories.verified, stats.trajectories.duplicates), (2, 1, 1));
    let kept = lines(&good.join("trajectories.jsonl"));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["final_hash"], kept[0]["expected_hash"]);
    assert_eq!(kept[0]["tool_calls"], 2);
    assert_eq!(kept[0]["messages"][0]["role"], "system");
    // The second attempt repeats the first conversation: it is kept out of the training files,
    // and its line says why.
    let repeated = lines(&good.join("trajectories.rejected.jsonl"));
    assert_eq!(repeated.len(), 1);
    assert_eq!(repeated[0]["reason"], "duplicate");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(good.join("stats.json")).expect("stats")).expect("JSON");
    assert_eq!(written["trajectories"]["attempted"], 2);
    assert_eq!(written["trajectories"]["verified"], 1);

    // One argument differs: the state no longer matches, and the diff shows where.
    let mut changed = bp.actions.clone();
    changed[1].kwargs.insert("zip".into(), json!("19902"));
    let bad = dir.path().join("bad");
    let stats = replay_run(changed, "Done: your address now ends in 19901.", &bp, 1, &bad);
    assert_eq!((stats.trajectories.verified, stats.trajectories.rejected), (0, 1));
    assert_eq!(stats.rejected_by_reason.get("state_mismatch"), Some(&1));
    let rejected = lines(&bad.join("trajectories.rejected.jsonl"));
    assert_eq!(rejected[0]["reason"], "state_mismatch");
    let diff = rejected[0]["diff"].as_array().expect("a diff");
    assert!(diff.iter().any(|op| op["path"] == format!("/users/{user}/address/zip") && op["value"] == "19902"), "{diff:?}");

    // The right state but the expected output never said: missing outputs.
    let quiet = dir.path().join("quiet");
    let stats = replay_run(bp.actions.clone(), "Done.", &bp, 1, &quiet);
    assert_eq!(stats.rejected_by_reason.get("missing_outputs"), Some(&1));
    assert_eq!(lines(&quiet.join("trajectories.rejected.jsonl"))[0]["missing_outputs"], json!(["19901"]));
}

/// One attempt, no judge and two agent steps, twice (the same seed must give the same files),
/// then once more into the first run's folder under the other cache type, which is refused:
/// 40 s in release on 2 cores with the AVX2 kernels.
#[test]
fn the_trajectories_command_on_the_real_model_records_every_attempt_and_repeats_itself() {
    let Some(gguf) = crate::support::smollm2_dir().map(|d| d.join("model-q4_1.gguf")) else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let db = world();
    let user = first_user(&db);
    let email = db["users"][&user]["email"].as_str().expect("users have an email").to_string();
    let bp = json!({"id": "lookup", "instruction": format!("You are {user} and want to know the email address on your account."),
                    "actions": [{"name": "get_user_details", "kwargs": {"user_id": user}}],
                    "outputs": [email], "data_seed": 0, "extra_field": "ignored"});
    let blueprints = dir.path().join("blueprints.jsonl");
    std::fs::write(&blueprints, format!("{bp}\n")).expect("write blueprints");
    // A one-line policy keeps the agent's prompt (and the test) short.
    let policy = dir.path().join("policy.md");
    std::fs::write(&policy, "Help the customer with their retail account.\n").expect("write policy");
    let command = |out: &Path, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_apigen-mt"))
            .args(["trajectories", "--domain", "retail", "--model"])
            .arg(&gguf)
            .arg("--blueprints")
            .arg(&blueprints)
            .arg("--out")
            .arg(&out)
            .arg("--policy")
            .arg(&policy)
            .args(["--seed", "3", "--attempts", "1", "--best-of", "1", "--max-turns", "2", "--concurrency", "2"])
            .args(["--agent-max-tokens", "24", "--user-max-tokens", "16", "--judge-max-tokens", "12"])
            .args(extra)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .expect("the binary runs")
    };
    let run_once = |out: &str| {
        let out = dir.path().join(out);
        let status = command(&out, &[]);
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        out
    };
    let first = run_once("a");
    let kept = lines(&first.join("trajectories.jsonl"));
    let rejected = lines(&first.join("trajectories.rejected.jsonl"));
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(first.join("stats.json")).expect("stats")).expect("JSON");
    let t = &stats["trajectories"];
    eprintln!("smollm2 trajectory stats: {t}");
    assert_eq!(t["attempted"], 1, "one blueprint, one attempt");
    assert_eq!(t["blueprints"]["total"], 1);
    assert_eq!(t["verified"].as_u64(), Some(kept.len() as u64));
    assert_eq!(t["rejected"].as_u64(), Some(rejected.len() as u64));
    assert_eq!(t["verified"].as_u64().unwrap_or(0) + t["rejected"].as_u64().unwrap_or(0) + t["duplicates"].as_u64().unwrap_or(0), 1);
    for record in kept.iter().chain(&rejected) {
        assert!(record["messages"].as_array().is_some_and(|m| !m.is_empty()));
        assert_eq!(record["user_turns"][0]["candidates"].as_array().map(Vec::len), Some(1));
    }
    let second = run_once("b");
    for name in ["trajectories.jsonl", "trajectories.rejected.jsonl", "dataset.sharegpt.jsonl", "dataset.openai.jsonl", "manifest.json"] {
        let read = |dir: &Path| std::fs::read(dir.join(name)).expect("output file");
        assert_eq!(read(&first), read(&second), "{name} differs between identical runs");
    }
    // stats.json equal but for its timings.
    let untimed = |dir: &Path| {
        let mut stats: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).expect("stats")).expect("JSON");
        stats.as_object_mut().expect("an object").remove("timing");
        stats
    };
    assert_eq!(untimed(&first), untimed(&second));

    // The cache's type changes what a run writes: the manifest records it, and resuming with
    // the other is refused by name.
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(first.join("manifest.json")).expect("manifest")).expect("JSON");
    assert_eq!(manifest["options"]["load"]["kv_dtype"], "f16", "{}", manifest["options"]);
    let other = command(&first, &["--kv-dtype", "f32"]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("option `load.kv_dtype` differs"), "{stderr}");
    // The date is recorded as resolved: naming the default explicitly resumes the run, which
    // has nothing left to do and leaves its files as they were.
    assert_eq!(manifest["options"]["load"]["date"], "2025-01-01", "{}", manifest["options"]);
    let before = std::fs::read(first.join("trajectories.rejected.jsonl")).expect("rejected file");
    let same = command(&first, &["--date", "2025-01-01"]);
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stderr));
    assert_eq!(std::fs::read(first.join("trajectories.rejected.jsonl")).expect("rejected file"), before);
}
