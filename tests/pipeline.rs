//! The whole pipeline with a scripted model that plays every role: the streaming `run` gives the
//! same files at any concurrency, and shards merged give the unsharded run's files byte for byte.
//!
//! The script makes every kind of line happen, as a function of each request's derived seed:
//! drafts that fail the format check, duplicates, rejected reviews, unique tasks that validate,
//! recombinations, and conversations that verify (the agent replays the actions the instruction
//! carries) or fail (the agent skips the write).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use apigen_mt::chat::generic::call_text;
use apigen_mt::chat::{Role, ToolCall};
use apigen_mt::cli::load::Engines;
use apigen_mt::cli::pipeline::Pipeline;
use apigen_mt::config::{Settings, SettingsFile};
use apigen_mt::dataset::rundir::{RunDir, BLUEPRINTS, BLUEPRINTS_REJECTED, OPENAI, SHAREGPT, TRAJECTORIES, TRAJECTORIES_REJECTED};
use apigen_mt::engine::{Completion, Constraint, EngineError, EngineHandle, FinishReason, LanguageModel, ModelInfo, Prompt, Request};
use apigen_mt::env::Action;
use apigen_mt::prompts::Prompts;
use apigen_mt::shard::Shard;
use apigen_mt::trajectory::runner::World;
use apigen_mt::trajectory::user::STOP;
use serde_json::{json, Value};

/// The files that must not depend on how the run was scheduled or split.
const RECORDS: [&str; 6] = [BLUEPRINTS, BLUEPRINTS_REJECTED, TRAJECTORIES, TRAJECTORIES_REJECTED, SHAREGPT, OPENAI];

/// Marks the actions a task's instruction carries, for the scripted agent to replay.
const MARK: &str = " Steps: ";

struct Oracle {
    info: ModelInfo,
}

/// Revisions of a write-up (sampled actions) whose previous draft carried the same actions as
/// the calls the prompt lists, and those that did not.
static REVISED_SAME: AtomicUsize = AtomicUsize::new(0);
static REVISED_CHANGED: AtomicUsize = AtomicUsize::new(0);

/// The first enum value allowed for property `name` anywhere in `schema`.
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

impl Oracle {
    fn draft(&self, schema: &Value, seed: u64) -> String {
        let user = allowed(schema, "user_id").expect("user_id enum");
        let email = allowed(schema, "email").expect("email enum");
        let zip = format!("{:05}", seed % 100_000);
        let actions = json!([
            {"name": "find_user_id_by_email", "kwargs": {"email": email}},
            {"name": "modify_user_address", "kwargs": {"user_id": user, "address1": "12 Quarry Road", "address2": "Flat 3",
                "city": "Lowell", "state": "MA", "country": "USA", "zip": zip}}
        ]);
        let (instruction, actions) = match seed % 5 {
            // Nothing checkable: fails the format check.
            0 => ("You want to look at your account.".to_string(), json!([actions[0]])),
            // The same instruction whatever the user: a duplicate of the first one that validates.
            1 => ("You moved and want your default address changed.".to_string(), actions),
            _ => {
                (format!("You are {user}, {email}; you moved to zip {zip} and want your default address changed.{MARK}{actions}"), actions)
            }
        };
        json!({"thought": "identify, then move the address", "instruction": instruction, "actions": actions, "outputs": []}).to_string()
    }

    /// The write-up of actions the environment sampled (listed under "The calls:"). A third of
    /// first drafts come back with a blank instruction, so that the format check fails and the
    /// generator revises; a revision checks that its previous draft kept the listed actions.
    fn write_up(&self, prompt: &str, seed: u64) -> String {
        let calls = prompt.split("\nThe calls:\n").nth(1).unwrap_or("");
        let actions: Vec<Value> = calls.lines().map_while(|l| l.split_once(". ").and_then(|(_, a)| serde_json::from_str(a).ok())).collect();
        let revision = prompt.split("Your previous draft:\n").nth(1).and_then(|p| p.lines().next());
        if let Some(previous) = revision {
            let previous: Value = serde_json::from_str(previous).expect("the previous draft is JSON");
            let counter = if previous["actions"] == json!(actions) { &REVISED_SAME } else { &REVISED_CHANGED };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let instruction = match (revision, seed % 3) {
            (None, 0) => " ".to_string(),
            _ => format!("You want your account put right ({seed}).{MARK}{}", json!(actions)),
        };
        json!({"thought": "write it up", "instruction": instruction, "outputs": []}).to_string()
    }

    /// The agent: replays the actions its first user message carries, one call per step, then
    /// answers; when the seed says so it skips the last (write) action, so the attempt fails.
    fn agent(&self, messages: &[apigen_mt::chat::Message], seed: u64) -> String {
        let first = messages.iter().find(|m| m.role == Role::User).map(|m| m.content.as_str()).unwrap_or("");
        let actions: Vec<Action> = first.split_once(MARK).and_then(|(_, json)| serde_json::from_str(json).ok()).unwrap_or_default();
        let done = messages.iter().filter(|m| m.role == Role::Tool).count();
        let lazy = seed.is_multiple_of(7);
        let todo = if lazy { actions.len().saturating_sub(1) } else { actions.len() };
        match actions.get(done).filter(|_| done < todo) {
            Some(action) => call_text(&ToolCall { id: String::new(), name: action.name.clone(), arguments: action.kwargs.clone() }),
            None => "All done: your address is updated.".into(),
        }
    }
}

impl LanguageModel for Oracle {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, _: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        let Prompt::Chat { messages, tools, .. } = &request.prompt else {
            return Err(EngineError::Invalid("the pipeline sends chat prompts".into()));
        };
        let prompt = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
        let seed = request.sampling.seed;
        let schema = match &request.constraint {
            Some(Constraint::JsonSchema(s)) => Some(s),
            _ => None,
        };
        let text = if !tools.is_empty() {
            self.agent(messages, seed)
        } else if prompt.starts_with("You are role-playing a customer") {
            let spoke = messages.iter().any(|m| m.role == Role::Assistant);
            let goal = prompt.split("Your goal, which only you know:\n").nth(1).and_then(|g| g.lines().next()).unwrap_or("");
            if spoke {
                STOP.to_string()
            } else {
                goal.to_string()
            }
        } else if prompt.contains("Score the candidate") {
            json!({"score": seed % 11}).to_string()
        } else if prompt.contains("You review") {
            let yes = u8::from(!seed.is_multiple_of(6));
            json!({"reflection": "checked", "correctness": yes, "completeness": yes, "satisfaction": yes, "creativity": yes, "correction": ""}).to_string()
        } else if prompt.contains("failed the") {
            "Write a task that changes something.".to_string()
        } else if prompt.contains("into one task") {
            let actions = prompt.split("Together they take these actions:\n").nth(1).and_then(|a| a.lines().next()).unwrap_or("[]");
            json!({"instruction": format!("You want all of it done.{MARK}{actions}")}).to_string()
        } else {
            let schema = schema.expect("the generator is constrained");
            match schema["properties"].get("actions") {
                Some(_) => self.draft(schema, seed),
                None => self.write_up(&prompt, seed),
            }
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

fn settings(concurrency: usize) -> Settings {
    settings_with(concurrency, "model")
}

fn settings_with(concurrency: usize, actions: &str) -> Settings {
    let text = format!(
        "domain = 'retail'\nmodel = 'oracle'\nseed = 3\ntasks = 7\nmax_attempts = 24\nreviewers = 2\nrounds = 1\nrecombine = 0.5\n\
         attempts = 2\nbest_of = 2\nmax_turns = 6\nconcurrency = {concurrency}\nactions = '{actions}'\n"
    );
    toml::from_str::<SettingsFile>(&text).expect("TOML").resolve().expect("settings")
}

/// `run` (or one shard of it) into `dir`, as the command does.
fn run(dir: &Path, settings: &Settings, shard: Option<Shard>) {
    let info = ModelInfo {
        name: "oracle".into(),
        architecture: "script".into(),
        context_length: 1 << 16,
        tool_format: "generic".into(),
        template_supports_tools: false,
    };
    let engines = Engines::from_handles(vec![("oracle".into(), EngineHandle::new(Arc::new(Oracle { info })))]);
    let prompts = Prompts::load(None).expect("prompts");
    let options = json!({"prompts": null, "few_shot": [], "trace": false, "shard": shard.map(|s| s.to_string())});
    let files = [BLUEPRINTS, BLUEPRINTS_REJECTED, TRAJECTORIES, TRAJECTORIES_REJECTED, SHAREGPT, OPENAI];
    let out = RunDir::open(dir, "run", settings, options, &files).expect("run dir");
    let mut pipeline = Pipeline::new(settings, &engines, &prompts, shard);
    pipeline.show = false;
    let policy = apigen_mt::env::policy::document("retail").expect("policy");
    let mut out = pipeline.stream(&[], false, policy, World::Generated(settings.seed), out).expect("the run completes");
    out.finish(&[], &pipeline.roles()).expect("stats");
}

/// Asserts two run directories hold the same `name`, naming the first line that differs.
fn assert_same(a: &Path, b: &Path, name: &str, what: &str) {
    let (x, y) = (read(a, name), read(b, name));
    if x != y {
        let (xs, ys): (Vec<&str>, Vec<&str>) = (x.lines().collect(), y.lines().collect());
        let at = (0..xs.len().max(ys.len())).find(|&i| xs.get(i) != ys.get(i)).unwrap_or(0);
        let cut = |l: Option<&&str>| l.map(|l| l.chars().take(300).collect::<String>()).unwrap_or_else(|| "(none)".into());
        panic!(
            "{name} {what}: {} vs {} lines, first difference at line {}:\n{}\n{}",
            xs.len(),
            ys.len(),
            at + 1,
            cut(xs.get(at)),
            cut(ys.get(at))
        );
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

fn lines(dir: &Path, name: &str) -> Vec<Value> {
    read(dir, name).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[test]
fn a_streaming_run_gives_the_same_files_at_any_concurrency_and_merged_shards_give_them_too() {
    let guard = tempfile::tempdir().unwrap();
    let root = guard.path().to_path_buf();
    if std::env::var_os("APIGEN_KEEP_TEST_DIRS").is_some() {
        eprintln!("keeping {}", root.display());
        std::mem::forget(guard);
    }
    let one = root.join("one");
    run(&one, &settings(1), None);

    // The script made every kind of line, so the comparisons below mean something.
    let validated = lines(&one, BLUEPRINTS);
    let rejected = lines(&one, BLUEPRINTS_REJECTED);
    assert_eq!(validated.len(), 7, "the run stops at --tasks");
    let stages: Vec<&str> = rejected.iter().filter_map(|l| l["stage"].as_str()).collect();
    for stage in ["duplicate", "committee"] {
        assert!(stages.contains(&stage), "no {stage} rejection among {stages:?}");
    }
    let first: Vec<&str> = validated.iter().chain(&rejected).filter_map(|l| l["first_failure"].as_str()).collect();
    assert!(first.contains(&"format"), "no first draft failed the format check: {first:?}");
    assert!(validated.iter().any(|l| l["recombined"] == true), "no recombination validated");
    let verified = lines(&one, TRAJECTORIES);
    let failed = lines(&one, TRAJECTORIES_REJECTED);
    assert!(!verified.is_empty() && !failed.is_empty(), "{} verified, {} failed", verified.len(), failed.len());
    assert_eq!(verified.len() + failed.len(), 2 * 7, "every attempt of every kept blueprint has its line");
    let stats: Value = serde_json::from_str(&read(&one, "stats.json")).unwrap();
    assert_eq!(stats["blueprints"]["validated"], 7);
    assert_eq!(stats["trajectories"]["verified"].as_u64().unwrap() as usize, verified.len());
    assert!(stats["timing"]["roles"]["agent"]["requests"].as_u64().unwrap() > 0, "per-role tallies: {}", stats["timing"]["roles"]);

    let many = root.join("many");
    run(&many, &settings(5), None);
    for name in RECORDS {
        assert_same(&one, &many, name, "depends on the concurrency");
    }

    let dirs: Vec<_> = (0..3).map(|i| root.join(format!("shard-{i}"))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        run(dir, &settings(2), Some(Shard::new(i, 3).unwrap()));
    }
    let merged = root.join("merged");
    let stats = apigen_mt::dataset::merge::merge(&merged, &dirs).expect("the shards merge");
    for name in RECORDS {
        assert_same(&one, &merged, name, "of merged shards differs from the unsharded run's");
    }
    let unsharded: Value = serde_json::from_str(&read(&one, "stats.json")).unwrap();
    for key in ["blueprints", "trajectories", "dataset", "funnel"] {
        assert_eq!(stats[key], unsharded[key], "stats.json {key} recounted from the merged files");
    }
    assert_eq!(stats["timing"]["shards"].as_array().map(Vec::len), Some(3));

    // What merge refuses, naming the problem.
    let refused = |dirs: &[std::path::PathBuf]| {
        let out = tempfile::tempdir().unwrap();
        format!("{:#}", apigen_mt::dataset::merge::merge(&out.path().join("m"), dirs).unwrap_err())
    };
    let err = refused(&dirs[..2]);
    assert!(err.contains("shard 2/3 is missing"), "{err}");
    let err = refused(&[dirs[0].clone(), dirs[1].clone(), dirs[1].clone()]);
    assert!(err.contains("both shard 1/3"), "{err}");
    let err = refused(&[dirs[0].clone(), one.clone()]);
    assert!(err.contains("not a shard"), "{err}");
    let other = root.join("other-config");
    let mut changed = settings(2);
    changed.best_of = 1;
    run(&other, &changed, Some(Shard::new(2, 3).unwrap()));
    let err = refused(&[dirs[0].clone(), dirs[1].clone(), other.clone()]);
    assert!(err.contains("different runs") && err.contains("best_of"), "{err}");
    // An unfinished shard: its manifest says it is not complete.
    let unfinished = root.join("unfinished");
    copy_dir(&dirs[2], &unfinished);
    let path = unfinished.join("manifest.json");
    let mut manifest: Value = serde_json::from_str(&read(&unfinished, "manifest.json")).unwrap();
    manifest["progress"]["complete"] = json!(false);
    std::fs::write(&path, manifest.to_string()).unwrap();
    let err = refused(&[dirs[0].clone(), dirs[1].clone(), unfinished]);
    assert!(err.contains("unfinished"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// With sampled actions: the same files at any concurrency; every validated blueprint has a write
/// and replays; a revision rewrites the instruction around the same actions.
#[test]
fn sampled_actions_stay_fixed_through_revisions_and_do_not_depend_on_the_concurrency() {
    let root = tempfile::tempdir().unwrap();
    let (one, many) = (root.path().join("one"), root.path().join("many"));
    run(&one, &settings_with(1, "sampled"), None);
    run(&many, &settings_with(4, "sampled"), None);
    for name in RECORDS {
        assert_same(&one, &many, name, "depends on the concurrency (sampled actions)");
    }
    let validated = lines(&one, BLUEPRINTS);
    assert_eq!(validated.len(), 7, "the run stops at --tasks");
    let retail = apigen_mt::env::resolve("retail").unwrap();
    for line in &validated {
        let actions: Vec<Action> = serde_json::from_value(line["actions"].clone()).unwrap();
        let writes = actions.iter().filter(|a| retail.tool(&a.name).unwrap().kind == apigen_mt::env::ToolKind::Write).count();
        assert!(writes >= 1, "{}: no write in {actions:?}", line["id"]);
    }
    assert!(validated.iter().any(|l| l["rounds"].as_u64() > Some(0)), "no validated blueprint needed a revision");
    assert!(REVISED_SAME.load(Ordering::Relaxed) > 0, "no revision was seen");
    assert_eq!(REVISED_CHANGED.load(Ordering::Relaxed), 0, "a revision changed the sampled actions");
    assert!(!lines(&one, TRAJECTORIES).is_empty(), "no conversation replayed a sampled task");
}
