//! The run directory end to end with a scripted model: dataset files that load the way their
//! trainers load them, resume after a crash equal to an uninterrupted run, a changed config
//! refused by name, the example config parsed, and a report that agrees with stats.json. On
//! SmolLM2 (`kill`, `shards`): one real run, killed and resumed or split into shards and merged,
//! gives the files of the same run done whole.

mod formats;
mod kill;
mod shards;
mod smollm2;

use std::path::Path;
use std::sync::Arc;

use apigen_mt::chat::generic::call_text;
use apigen_mt::chat::{ChatTemplate, Role, ToolCall};
use apigen_mt::config::{Settings, SettingsFile};
use apigen_mt::dataset::openai::{from_openai, OpenAiMessage};
use apigen_mt::dataset::rundir::{RunDir, OPENAI, SHAREGPT, TRAJECTORIES, TRAJECTORIES_REJECTED};
use apigen_mt::dataset::{jsonl, report};
use apigen_mt::engine::{Completion, EngineError, EngineHandle, FinishReason, LanguageModel, ModelInfo, Prompt, Request};
use apigen_mt::env::{Action, Db};
use apigen_mt::prompts::Prompts;
use apigen_mt::schedule::Slots;
use apigen_mt::trajectory::agent::Models;
use apigen_mt::trajectory::runner::{self, AttemptRecord, Progress, Sink, World};
use apigen_mt::trajectory::user::STOP;
use apigen_mt::trajectory::Task;
use serde_json::{json, Value};

/// The user asks for the zip code its instruction names, then stops; the agent makes both
/// ground-truth calls at once (parallel calls) for the zip the user asked for, then answers.
/// Replies depend on the prompt only, so any number of threads may share the model.
pub(crate) struct Parallel {
    pub(crate) info: ModelInfo,
    pub(crate) user_id: String,
}

/// The test's zip code (`199..`) named in `text`.
fn zip_in(text: &str) -> String {
    text.find("zip 199").map(|i| text[i + 4..].chars().take(5).collect()).unwrap_or_default()
}

pub(crate) fn address(user: &str, zip: &str) -> Value {
    json!({"user_id": user, "address1": "12 Quarry Lane", "address2": "Unit 4", "city": "Dover", "state": "DE", "country": "USA", "zip": zip})
}

impl LanguageModel for Parallel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, _: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        let Prompt::Chat { messages, tools, .. } = &request.prompt else {
            return Err(EngineError::Invalid("expected a chat prompt".into()));
        };
        let spoken = messages.iter().filter(|m| m.role == Role::Assistant).count();
        let everything: String = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
        let text = if tools.is_empty() {
            match spoken {
                0 => format!("Please move my default address to zip {}.", zip_in(&everything)),
                _ => STOP.to_string(),
            }
        } else if spoken == 0 {
            let zip = zip_in(&everything);
            let call = |name: &str, args: Value| {
                call_text(&ToolCall { id: String::new(), name: name.into(), arguments: args.as_object().cloned().unwrap_or_default() })
            };
            format!(
                "{}\n{}",
                call("get_user_details", json!({"user_id": self.user_id})),
                call("modify_user_address", address(&self.user_id, &zip))
            )
        } else {
            format!("All done, {}: your address is updated.", self.user_id)
        };
        Ok(Completion {
            text,
            reasoning: None,
            tokens: vec![0; 4],
            prompt_tokens: 12,
            generated_count: None,
            cached_tokens: 0,
            finish_reason: FinishReason::Stop,
            error: None,
        })
    }

    fn count_tokens(&self, _: &Prompt) -> Result<usize, EngineError> {
        Ok(12)
    }
}

pub(crate) fn first_user(db: &Db) -> String {
    db["users"].as_object().and_then(|u| u.keys().next().cloned()).expect("the world has users")
}

pub(crate) fn blueprints(user: &str) -> Vec<Task> {
    ["19901", "19902", "19903"]
        .iter()
        .map(|zip| Task {
            id: Some(format!("move-{zip}")),
            instruction: format!("You are {user}. Move your default address to 12 Quarry Lane, Unit 4, Dover DE, zip {zip}."),
            actions: vec![
                Action { name: "get_user_details".into(), kwargs: json!({"user_id": user}).as_object().cloned().unwrap_or_default() },
                Action { name: "modify_user_address".into(), kwargs: address(user, zip).as_object().cloned().unwrap_or_default() },
            ],
            outputs: vec![],
            user_id: Some(user.into()),
            persona: None,
            data_seed: Some(0),
        })
        .collect()
}

fn settings(best_of: usize) -> Settings {
    let file: SettingsFile = toml::from_str(&format!(
        "domain = 'retail'\nmodel = 'scripted'\nattempts = 2\nbest_of = {best_of}\nmax_turns = 4\nconcurrency = 3\n"
    ))
    .unwrap();
    file.resolve().unwrap()
}

const FILES: [&str; 4] = [TRAJECTORIES, TRAJECTORIES_REJECTED, SHAREGPT, OPENAI];

/// Passes everything on, but fails the `crash_at`-th checkpoint before recording it: as if the
/// process died after writing a blueprint's lines and before the manifest caught up.
struct Crash<'a> {
    inner: &'a mut RunDir,
    checkpoints_left: usize,
}

impl Sink for Crash<'_> {
    fn verified(&mut self, record: &AttemptRecord) -> anyhow::Result<()> {
        self.inner.verified(record)
    }
    fn rejected(&mut self, record: &AttemptRecord) -> anyhow::Result<()> {
        self.inner.rejected(record)
    }
    fn committed(&mut self, progress: &Progress) -> anyhow::Result<()> {
        if self.checkpoints_left == 0 {
            anyhow::bail!("simulated crash");
        }
        self.checkpoints_left -= 1;
        self.inner.committed(progress)
    }
}

/// Runs Phase 2 on the scripted model into `dir`; with `crash_after`, stops at that checkpoint.
fn phase2(dir: &Path, settings: &Settings, crash_after: Option<usize>) -> anyhow::Result<Value> {
    let db = apigen_mt::env::generate::generate("retail", 0)?;
    let user = first_user(&db);
    let info = ModelInfo {
        name: "scripted".into(),
        architecture: "script".into(),
        context_length: 100_000,
        tool_format: "generic".into(),
        template_supports_tools: false,
    };
    let engine = EngineHandle::new(Arc::new(Parallel { info, user_id: user.clone() }));
    let models = Models { agent: engine.clone(), user: engine.clone(), judge: engine };
    let prompts = Prompts::load(None)?;
    let trajectory = apigen_mt::trajectory::TrajectoryConfig::from_settings(settings);
    let domain = apigen_mt::env::domain("retail")?;
    let policy = apigen_mt::env::policy::document("retail")?;
    let slots = Slots::new(settings.concurrency.unwrap_or(1));
    let run = runner::Run {
        models: &models,
        prompts: &prompts,
        config: &trajectory,
        policy,
        domain,
        world: World::Generated(0),
        slots: &slots,
        expected: 2,
        show: false,
    };
    let mut out = RunDir::open(dir, "trajectories", settings, json!({}), &FILES)?;
    let progress = out.trajectory_progress();
    let bps = blueprints(&user);
    match crash_after {
        Some(n) => {
            let mut crash = Crash { inner: &mut out, checkpoints_left: n };
            runner::run(run, runner::tasks_of(bps.into_iter().skip(progress.next_blueprint)), &mut crash, progress)?;
            anyhow::bail!("the crash did not happen")
        }
        None => {
            runner::run(run, runner::tasks_of(bps.into_iter().skip(progress.next_blueprint)), &mut out, progress)?;
            out.finish(&[], &Default::default())
        }
    }
}

fn lines(path: &Path) -> Vec<Value> {
    jsonl::read_values(path).unwrap()
}

#[test]
fn the_sharegpt_file_loads_by_llama_factory_rules() {
    let dir = tempfile::tempdir().unwrap();
    let stats = phase2(dir.path(), &settings(1), None).unwrap();
    let records = lines(&dir.path().join(SHAREGPT));
    let rejected = lines(&dir.path().join(TRAJECTORIES_REJECTED));
    assert_eq!(records.len(), 3, "one verified, distinct trajectory per blueprint; rejected: {rejected:?}");
    assert_eq!(stats["dataset"]["records"], 3);
    for r in &records {
        let turns = r["conversations"].as_array().unwrap();
        assert!(turns.len() % 2 == 0 && turns.last().unwrap()["from"] == "gpt");
        for (i, t) in turns.iter().enumerate() {
            let from = t["from"].as_str().unwrap();
            let allowed = if i % 2 == 0 { ["human", "observation"] } else { ["gpt", "function_call"] };
            assert!(allowed.contains(&from), "turn {i} is {from}");
            assert!(t["value"].is_string());
        }
        assert_eq!(turns[0]["from"], "human");
        assert!(!turns.iter().any(|t| t["value"].as_str().unwrap().contains(STOP)));
        // The two parallel calls: two consecutive function_call/observation pairs.
        let roles: Vec<&str> = turns.iter().map(|t| t["from"].as_str().unwrap()).collect();
        assert_eq!(roles, ["human", "function_call", "observation", "function_call", "observation", "gpt"]);
        let call: Value = serde_json::from_str(turns[3]["value"].as_str().unwrap()).unwrap();
        assert_eq!(call["name"], "modify_user_address");
        assert!(call["arguments"].is_object());
        let tools: Vec<Value> = serde_json::from_str(r["tools"].as_str().expect("tools is a JSON string")).unwrap();
        assert!(tools.iter().any(|t| t["name"] == "modify_user_address"));
        assert!(r["system"].as_str().is_some_and(|s| s.len() > 100), "the policy is the system prompt");
        let m = &r["metadata"];
        for key in [
            "id",
            "blueprint_id",
            "attempt",
            "models",
            "sampling",
            "seed",
            "verification",
            "judge_scores",
            "tokens",
            "program_version",
            "config_hash",
        ] {
            assert!(!m[key].is_null(), "metadata lacks {key}");
        }
        assert_eq!(m["verification"]["verified"], true);
    }
}

#[test]
fn the_openai_file_renders_through_a_tool_calling_chat_template() {
    let dir = tempfile::tempdir().unwrap();
    phase2(dir.path(), &settings(1), None).unwrap();
    let template = ChatTemplate::from_jinja_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates/hermes.jinja"),
        "",
        "<|im_end|>",
    )
    .unwrap();
    assert!(template.supports_tools());
    let records = lines(&dir.path().join(OPENAI));
    assert_eq!(records.len(), 3);
    for r in records {
        let messages: Vec<OpenAiMessage> = serde_json::from_value(r["messages"].clone()).unwrap();
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "tool", "assistant"]);
        let calls = &r["messages"][2]["tool_calls"];
        assert_eq!(calls.as_array().map(Vec::len), Some(2));
        for (i, call) in calls.as_array().unwrap().iter().enumerate() {
            assert_eq!(call["type"], "function");
            let args = call["function"]["arguments"].as_str().expect("arguments is a JSON string");
            assert!(serde_json::from_str::<Value>(args).unwrap().is_object());
            assert_eq!(r["messages"][3 + i]["tool_call_id"], call["id"]);
        }
        let tools = r["tools"].as_array().unwrap();
        assert!(tools.iter().all(|t| t["type"] == "function" && t["function"]["parameters"].is_object()));
        let rendered = template.render(&from_openai(&messages).unwrap(), tools, false).unwrap();
        assert!(rendered.contains("<tool_call>") && rendered.contains("modify_user_address"), "{rendered}");
        for m in &messages {
            assert!(rendered.contains(m.content.trim()), "{} missing from the rendering", m.content);
        }
    }
}

#[test]
fn a_crashed_run_resumes_to_the_same_files_as_an_uninterrupted_one() {
    let (whole, broken) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = settings(2);
    let expected = phase2(whole.path(), &s, None).unwrap();
    // Dies at the second blueprint's checkpoint, its lines already written...
    let err = phase2(broken.path(), &s, Some(1)).unwrap_err().to_string();
    assert!(err.contains("simulated crash"), "{err}");
    // ...and mid-way through a line of another.
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(broken.path().join(OPENAI)).unwrap().write_all(b"{\"messages\": [{\"ro").unwrap();
    let resumed = phase2(broken.path(), &s, None).unwrap();
    for name in FILES.iter().chain(&["manifest.json"]) {
        let read = |dir: &Path| std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read(broken.path()), read(whole.path()), "{name} differs after resuming");
    }
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("timing");
        v
    };
    assert_eq!(strip(resumed), strip(expected));
}

#[test]
fn resuming_with_another_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    RunDir::open(dir.path(), "trajectories", &settings(1), json!({}), &FILES).unwrap();
    let err = format!("{:#}", RunDir::open(dir.path(), "trajectories", &settings(2), json!({}), &FILES).err().unwrap());
    assert!(err.contains("best_of") && err.contains("manifest.json"), "{err}");
    let mut faster = settings(1);
    faster.concurrency = Some(7);
    RunDir::open(dir.path(), "trajectories", &faster, json!({}), &FILES).expect("concurrency may change");
    let err = format!("{:#}", RunDir::open(dir.path(), "run", &settings(1), json!({}), &FILES).err().unwrap());
    assert!(err.contains("command"), "{err}");

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join(TRAJECTORIES), "{}\n").unwrap();
    let err = format!("{:#}", RunDir::open(foreign.path(), "trajectories", &settings(1), json!({}), &FILES).err().unwrap());
    assert!(err.contains("no manifest"), "{err}");
}

#[test]
fn the_example_config_parses_and_resolves() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("run.example.toml");
    let s = SettingsFile::load(&path).unwrap().resolve().unwrap();
    assert_eq!((s.domain.as_str(), s.tasks, s.max_attempts, s.reviewers, s.best_of), ("retail", 4, 16, 1, 2));
    assert_eq!((s.reviewer.max_tokens, s.agent.max_tokens, s.judge.sampling.temperature), (192, 384, 0.0));
    let models = s.models(&["generator", "reviewer", "summarizer", "user", "judge", "agent"]);
    assert_eq!(models.iter().map(|m| (m.name, m.server.is_some())).collect::<Vec<_>>(), vec![("smollm2-135m-instruct", false)]);
}

#[test]
fn the_report_shows_the_numbers_of_stats_json() {
    let dir = tempfile::tempdir().unwrap();
    let stats = phase2(dir.path(), &settings(2), None).unwrap();
    assert_eq!(stats, serde_json::from_str::<Value>(&std::fs::read_to_string(dir.path().join("stats.json")).unwrap()).unwrap());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let funnel = stats["funnel"].as_array().unwrap();
    assert!(!funnel.is_empty());
    for stage in funnel {
        let name = stage["stage"].as_str().unwrap();
        let row = md.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_else(|| panic!("no row for {name}"));
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells[1].parse::<u64>().unwrap(), stage["count"].as_u64().unwrap(), "{name}");
        match stage["rate"].as_f64() {
            Some(rate) => assert!((cells[2].parse::<f64>().unwrap() - rate).abs() < 5e-4, "{name}"),
            None => assert_eq!(cells[2], "n/a"),
        }
    }
    let t = &stats["trajectories"];
    let line = format!(
        "Attempts: {}; verified: {}; rejected: {}; duplicates of a kept trajectory: {}.",
        t["attempted"], t["verified"], t["rejected"], t["duplicates"]
    );
    assert!(md.contains(&line), "{md}");
    for (steps, count) in t["distribution"]["agent_steps"].as_object().unwrap() {
        assert!(md.contains(&format!("| {steps} | {} |", report::number(count))), "{md}");
    }
}
