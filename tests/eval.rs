//! `eval`: pass^k from trials of Phase 2's conversations, with a scripted agent whose skill the
//! test decides, and with the real model through the command line.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use apigen_mt::chat::generic::call_text;
use apigen_mt::chat::{Role, ToolCall};
use apigen_mt::cli::eval::evaluate;
use apigen_mt::cli::load::Engines;
use apigen_mt::cli::pipeline::Pipeline;
use apigen_mt::config::SettingsFile;
use apigen_mt::engine::{Completion, EngineError, EngineHandle, FinishReason, LanguageModel, ModelInfo, Prompt, Request};
use apigen_mt::env::Action;
use apigen_mt::prompts::Prompts;
use apigen_mt::trajectory::runner::World;
use apigen_mt::trajectory::user::STOP;
use apigen_mt::trajectory::Task;
use serde_json::{json, Value};

/// An agent that makes `calls`, one per step, then says it is done; a user who asks once and
/// then stops.
struct Replay {
    info: ModelInfo,
    calls: Vec<Action>,
}

impl LanguageModel for Replay {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, _: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        let Prompt::Chat { messages, tools, .. } = &request.prompt else {
            return Err(EngineError::Invalid("expected a chat prompt".into()));
        };
        let text = if tools.is_empty() {
            let spoke = messages.iter().any(|m| m.role == Role::Assistant);
            if spoke { STOP } else { "Please change my default address." }.to_string()
        } else {
            let done = messages.iter().filter(|m| m.role == Role::Tool).count();
            match self.calls.get(done) {
                Some(a) => call_text(&ToolCall { id: String::new(), name: a.name.clone(), arguments: a.kwargs.clone() }),
                None => "Done: your address is updated.".into(),
            }
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

fn task(user: &str, id: &str) -> Task {
    let address = json!({"user_id": user, "address1": "12 Quarry Lane", "address2": "Unit 4", "city": "Dover", "state": "DE", "country": "USA", "zip": "19901"});
    Task {
        id: Some(id.into()),
        instruction: format!("You are {user}. You moved; update your default address to 12 Quarry Lane, Unit 4, Dover DE 19901."),
        actions: vec![
            Action { name: "get_user_details".into(), kwargs: json!({"user_id": user}).as_object().cloned().unwrap_or_default() },
            Action { name: "modify_user_address".into(), kwargs: address.as_object().cloned().unwrap_or_default() },
        ],
        outputs: vec![],
        user_id: Some(user.into()),
        persona: None,
        data_seed: Some(0),
    }
}

fn eval_with(calls: Vec<Action>, tasks: Vec<Task>, out: &Path) -> Value {
    let info = ModelInfo {
        name: "replay".into(),
        architecture: "script".into(),
        context_length: 100_000,
        tool_format: "generic".into(),
        template_supports_tools: false,
    };
    let engines = Engines::from_handles(vec![("replay".into(), EngineHandle::new(Arc::new(Replay { info, calls })))]);
    let settings =
        toml::from_str::<SettingsFile>("domain = 'retail'\nmodel = 'replay'\nattempts = 3\nbest_of = 1\nmax_turns = 6\nconcurrency = 2\n")
            .unwrap()
            .resolve()
            .unwrap();
    let prompts = Prompts::load(None).unwrap();
    let mut pipeline = Pipeline::new(&settings, &engines, &prompts, None);
    pipeline.show = false;
    let policy = apigen_mt::env::policy::document("retail").unwrap();
    evaluate(&pipeline, policy, World::Generated(0), tasks, out, json!({})).expect("the eval runs")
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn an_agent_that_replays_the_ground_truth_scores_one_and_a_changed_argument_scores_zero() {
    let db = apigen_mt::env::generate::generate("retail", 0).unwrap();
    let user = db["users"].as_object().unwrap().keys().next().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let right = task(&user, "move");
    // Two tasks with the same actions, so that a trial repeating another's conversation counts.
    let good = eval_with(right.actions.clone(), vec![right.clone(), task(&user, "move-again")], &dir.path().join("good"));
    assert_eq!(good["eval"]["pass_hat_k"], json!({"1": 1.0, "2": 1.0, "3": 1.0}), "{}", good["eval"]);
    assert_eq!(good["eval"]["trials"], 6);
    let results = lines(&dir.path().join("good/results.jsonl"));
    assert!(results.iter().all(|r| r["reward"] == 1 && r["reason"].is_null()));
    assert_eq!(results.iter().map(|r| r["trial"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);

    let mut wrong = right.actions.clone();
    wrong[1].kwargs.insert("zip".into(), json!("19902"));
    let bad = eval_with(wrong, vec![right], &dir.path().join("bad"));
    assert_eq!(bad["eval"]["pass_hat_k"]["1"], 0.0);
    assert_eq!(bad["eval"]["failures_by_reason"], json!({"state_mismatch": 3}));
    let results = lines(&dir.path().join("bad/results.jsonl"));
    assert!(results.iter().all(|r| r["reward"] == 0 && r["reason"] == "state_mismatch" && !r["diff"].as_array().unwrap().is_empty()));
    let report = std::fs::read_to_string(dir.path().join("bad/report.md")).unwrap();
    assert!(report.contains("| move | 0 | 3 | state_mismatch × 3 |"), "{report}");
}

#[test]
fn eval_on_the_real_model_recounts_from_its_results_and_repeats_itself() {
    let Some(model) = crate::support::smollm2_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = apigen_mt::env::generate::generate("retail", 0).unwrap();
    let users: Vec<&String> = db["users"].as_object().unwrap().keys().take(3).collect();
    let tasks: String =
        users.iter().enumerate().map(|(i, u)| format!("{}\n", serde_json::to_string(&task(u, &format!("t{i}"))).unwrap())).collect();
    let file = dir.path().join("tasks.jsonl");
    std::fs::write(&file, tasks).unwrap();
    let run = |out: &str| {
        let status = Command::new(env!("CARGO_BIN_EXE_apigen-mt"))
            .args([
                "eval",
                "--domain",
                "retail",
                "--seed",
                "0",
                "--trials",
                "2",
                "--max-turns",
                "3",
                "--agent-max-tokens",
                "48",
                "--user-max-tokens",
                "32",
            ])
            .arg("--blueprints")
            .arg(&file)
            .arg("--agent-model")
            .arg(model.join("model-q4_1.gguf"))
            .arg("--out")
            .arg(dir.path().join(out))
            .status()
            .unwrap();
        assert!(status.success());
    };
    run("a");
    run("b");
    let results = lines(&dir.path().join("a/results.jsonl"));
    assert_eq!(results.len(), 6, "3 tasks × 2 trials");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("a/stats.json")).unwrap()).unwrap();
    let recount = apigen_mt::dataset::scores::stats(&results, json!({})).unwrap();
    assert_eq!(stats["eval"], recount["eval"], "stats.json equals a recount of results.jsonl");
    let successes: u64 = results.iter().map(|r| r["reward"].as_u64().unwrap()).sum();
    assert_eq!(stats["eval"]["successes"], successes);
    let read = |d: &str| std::fs::read_to_string(dir.path().join(d).join("results.jsonl")).unwrap();
    assert_eq!(read("a"), read("b"), "the same seed gives the same results.jsonl");
}
