//! Phase 1 (blueprints) driven end to end by a scripted model: every branch of the attempt
//! loop (generation, format, execution, policy, committee, duplicate, feedback and revision),
//! the ordered commit under concurrency, and the files a run writes. Reverse recombination has
//! its own file.

mod e2e;
mod recombine;

use std::path::Path;
use std::sync::Arc;

use apigen_mt::blueprint::run::{run, Progress, Run, Sink};
use apigen_mt::config::{Settings, SettingsFile};
use apigen_mt::dataset::rundir::{RunDir, BLUEPRINTS, BLUEPRINTS_REJECTED, TRACE};
use apigen_mt::engine::{Completion, Constraint, EngineError, EngineHandle, FinishReason, LanguageModel, ModelInfo, Prompt, Request};
use apigen_mt::prompts::Prompts;
use apigen_mt::roles::Models;
use apigen_mt::samplers::fewshot;
use apigen_mt::schedule::Slots;
use serde_json::{json, Value};

/// What the script sees of a request: the role (from the prompt's wording), the prompt text
/// and the schema constraint.
pub(crate) struct Seen<'a> {
    pub(crate) role: &'static str,
    pub(crate) prompt: &'a str,
    pub(crate) schema: Option<&'a Value>,
    /// The request's sampling seed, which names its task, role and round (see `first_draft_seed`).
    pub(crate) seed: u64,
    /// Whether the caller has given up on the request.
    pub(crate) cancelled: &'a dyn Fn() -> bool,
}

/// A model whose replies a test chooses from the role and the prompt.
pub(crate) struct Scripted {
    info: ModelInfo,
    reply: Box<dyn Fn(&Seen) -> String + Send + Sync>,
}

impl Scripted {
    pub(crate) fn handle(reply: impl Fn(&Seen) -> String + Send + Sync + 'static) -> EngineHandle {
        let info = ModelInfo {
            name: "scripted".into(),
            architecture: "script".into(),
            context_length: 1 << 16,
            tool_format: "generic".into(),
            template_supports_tools: false,
        };
        EngineHandle::new(Arc::new(Scripted { info, reply: Box::new(reply) }))
    }
}

impl LanguageModel for Scripted {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn generate_streaming(&self, request: Request, on_text: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        let Prompt::Chat { messages, .. } = &request.prompt else {
            return Err(EngineError::Invalid("the pipeline sends chat prompts".into()));
        };
        let prompt = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
        let role = if prompt.contains("You review") {
            "reviewer"
        } else if prompt.contains("failed the") {
            "summarizer"
        } else if prompt.contains("into one task") {
            "recombiner"
        } else {
            "generator"
        };
        let schema = match &request.constraint {
            Some(Constraint::JsonSchema(s)) => Some(s),
            _ => None,
        };
        let cancelled = || request.is_cancelled();
        let text = (self.reply)(&Seen { role, prompt: &prompt, schema, seed: request.sampling.seed, cancelled: &cancelled });
        // As the engine does: a request cancelled while it ran ends with no reply.
        if request.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        on_text(&text);
        Ok(Completion {
            tokens: (0..text.split_whitespace().count() as u32).collect(),
            prompt_tokens: prompt.split_whitespace().count(),
            generated_count: None,
            cached_tokens: 0,
            text,
            reasoning: None,
            finish_reason: FinishReason::Stop,
            error: None,
        })
    }

    fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError> {
        Ok(format!("{prompt:?}").split_whitespace().count())
    }
}

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

fn address() -> Value {
    json!({"address1": "12 Quarry Road", "address2": "Flat 3", "city": "Lowell", "state": "MA", "country": "USA", "zip": "01852"})
}

/// A correct draft for the user the schema allows: identify by email, then move the default
/// address. `instruction` may name the user (unique tasks) or not (duplicates).
pub(crate) fn good_draft(seen: &Seen, unique: bool) -> String {
    let schema = seen.schema.expect("the generator is constrained");
    let email = allowed(schema, "email").expect("email enum");
    let user = allowed(schema, "user_id").expect("user_id enum");
    let mut kwargs = address();
    kwargs["user_id"] = json!(user);
    let who = if unique { format!("You are {user} with email {email}. ") } else { String::new() };
    json!({
        "thought": "identify then change the default address",
        "instruction": format!("{who}You moved and want your default address changed to 12 Quarry Road Flat 3 Lowell MA 01852 USA."),
        "actions": [{"name": "find_user_id_by_email", "kwargs": {"email": email}}, {"name": "modify_user_address", "kwargs": kwargs}],
        "outputs": []
    })
    .to_string()
}

pub(crate) fn review(yes: u8) -> String {
    json!({"reflection": "checked", "correctness": yes, "completeness": yes, "satisfaction": yes, "creativity": yes,
           "correction": if yes == 1 { "" } else { "say which address" }})
    .to_string()
}

/// Test settings; recombination is off here (`recombine = 0`), its tests turn it on. The scripted
/// generator drafts whole blueprints, so the actions come from the model (`actions = 'model'`).
fn config(count: usize, max_attempts: usize, rounds: usize, reviewers: usize, concurrency: usize) -> Settings {
    let role = "temperature = 0.0\nmax_tokens = 64\n";
    let text = format!(
        "domain = 'retail'\nmodel = 'scripted'\nseed = 5\ntasks = {count}\nmax_attempts = {max_attempts}\nrounds = {rounds}\n\
         reviewers = {reviewers}\nconcurrency = {concurrency}\nrecombine = 0\nactions = 'model'\n[generator]\n{role}[reviewer]\n{role}[summarizer]\n{role}"
    );
    toml::from_str::<SettingsFile>(&text).unwrap().resolve().unwrap()
}

/// Passes everything on but fails a checkpoint once `checkpoints_left` have passed: as if the
/// process died after writing a task's lines and before the manifest recorded them.
struct Crash<'a> {
    inner: &'a mut RunDir,
    checkpoints_left: usize,
}

impl Sink for Crash<'_> {
    fn validated(&mut self, line: &Value) -> anyhow::Result<()> {
        self.inner.validated(line)
    }
    fn rejected(&mut self, line: &Value) -> anyhow::Result<()> {
        Sink::rejected(self.inner, line)
    }
    fn trace(&mut self, entries: &[Value]) -> anyhow::Result<()> {
        self.inner.trace(entries)
    }
    fn committed(&mut self, progress: &Progress) -> anyhow::Result<()> {
        if self.checkpoints_left == 0 {
            anyhow::bail!("simulated crash");
        }
        self.checkpoints_left -= 1;
        Sink::committed(self.inner, progress)
    }
}

/// Runs (or resumes) Phase 1 into `dir` as the `blueprints` command does, with a trace.
fn run_into(engine: &EngineHandle, settings: &Settings, dir: &Path) -> anyhow::Result<Value> {
    run_crashing(engine, settings, dir, None)
}

/// [`run_into`], dying at checkpoint `crash_at` (counted from 0) when given.
fn run_crashing(engine: &EngineHandle, settings: &Settings, dir: &Path, crash_at: Option<usize>) -> anyhow::Result<Value> {
    let prompts = Prompts::load(None)?;
    let pool = fewshot::pool("retail", &[] as &[&Path])?;
    let mut config = apigen_mt::blueprint::run::RunConfig::from_settings(settings, true)?;
    config.progress = false;
    let mut out = RunDir::open(dir, "blueprints", settings, json!({"trace": true}), &[BLUEPRINTS, BLUEPRINTS_REJECTED, TRACE])?;
    let models = Models::single(engine.clone());
    let (progress, accepted) = (out.blueprint_progress(), out.accepted()?);
    let slots = Slots::new(settings.concurrency.unwrap_or(1));
    let job = Run { models: &models, prompts: &prompts, config: &config, pool: &pool, slots: &slots };
    match crash_at {
        Some(n) => {
            run(job, &mut Crash { inner: &mut out, checkpoints_left: n }, progress, accepted)?;
            anyhow::bail!("the crash did not happen")
        }
        None => {
            run(job, &mut out, progress, accepted)?;
            out.finish(&[], &Default::default())
        }
    }
}

fn lines(dir: &Path, name: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
        .collect()
}

fn go(engine: &EngineHandle, config: &Settings, dir: &Path) -> Value {
    let stats = run_into(engine, config, dir).unwrap();
    let attempted = stats["blueprints"]["attempted"].as_u64().unwrap() as usize;
    let validated = stats["blueprints"]["validated"].as_u64().unwrap() as usize;
    assert_eq!(lines(dir, "blueprints.jsonl").len(), validated, "stats and blueprints.jsonl disagree");
    assert_eq!(lines(dir, "blueprints.rejected.jsonl").len(), attempted - validated, "stats and rejected.jsonl disagree");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap();
    assert_eq!(written, stats);
    stats
}

#[test]
fn feedback_turns_a_failed_draft_into_a_validated_blueprint() {
    let engine = Scripted::handle(|seen| match seen.role {
        "reviewer" => review(1),
        "summarizer" => "Drop the comma from the output.".into(),
        _ if seen.prompt.contains("Your previous draft") => {
            assert!(seen.prompt.contains("format check failed"), "feedback names the stage: {}", seen.prompt);
            assert!(seen.prompt.contains("Drop the comma"), "the summary reaches the generator");
            good_draft(seen, true)
        }
        _ => json!({"thought": "t", "instruction": "You want to know your total.", "actions": [], "outputs": ["1,250.00"]}).to_string(),
    });
    let dir = tempfile::tempdir().unwrap();
    let stats = go(&engine, &config(1, 1, 1, 3, 1), dir.path());
    let bps = lines(dir.path(), "blueprints.jsonl");
    let bp = &bps[0];
    assert_eq!(bp["rounds"], 1);
    assert_eq!(bp["recombined"], false);
    assert_eq!(bp["actions"].as_array().unwrap().len(), 2);
    assert!(bp["diff"].as_array().unwrap().iter().any(|op| op["path"].as_str().unwrap().ends_with("/address/city")));
    assert_eq!(bp["votes"]["voted"], json!([1, 1, 1, 1]));
    assert_eq!(bp["votes"]["reviews"].as_array().unwrap().len(), 3);
    assert_eq!(bp["data_hash"].as_str().unwrap().len(), 64);
    assert_eq!(stats["blueprints"]["pass_rate"]["without_feedback"]["format"]["rate"], 0.0);
    assert_eq!(stats["blueprints"]["pass_rate"]["with_feedback"]["committee"]["passed"], 1);
    let trace = lines(dir.path(), "trace.jsonl");
    let roles: Vec<&str> = trace.iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["generator", "summarizer", "generator", "reviewer", "reviewer", "reviewer"]);
    // Reviewers are seeded apart.
    assert!(trace[3]["call"] != trace[4]["call"]);
}

#[test]
fn every_failing_stage_is_recorded_with_its_reason() {
    type Case = (&'static str, fn(&Seen) -> String, &'static str);
    let cases: [Case; 5] = [
        ("generation", |_| "I cannot do that".into(), "not a blueprint"),
        (
            "execution",
            |_| {
                json!({"thought": "t", "instruction": "You want order #W0000000 cancelled.",
                       "actions": [{"name": "cancel_pending_order", "kwargs": {"order_id": "#W0000000", "reason": "no longer needed"}}],
                       "outputs": []})
                .to_string()
            },
            "cancel_pending_order",
        ),
        (
            "policy",
            |seen| {
                let mut kwargs = address();
                kwargs["user_id"] = json!(allowed(seen.schema.unwrap(), "user_id").unwrap());
                json!({"thought": "t", "instruction": "You want your address changed.",
                       "actions": [{"name": "modify_user_address", "kwargs": kwargs}], "outputs": []})
                .to_string()
            },
            "retail.not_authenticated",
        ),
        ("committee", |seen| if seen.role == "reviewer" { review(0) } else { good_draft(seen, true) }, "0 of 2 said yes"),
        ("committee", |seen| if seen.role == "reviewer" { "garbage".into() } else { good_draft(seen, true) }, "unreadable"),
    ];
    for (stage, script, needle) in cases {
        let engine = Scripted::handle(script);
        let dir = tempfile::tempdir().unwrap();
        let stats = go(&engine, &config(1, 2, 0, 2, 1), dir.path());
        assert_eq!(stats["blueprints"]["validated"], 0);
        assert_eq!(stats["blueprints"]["rejected_by_stage"][stage], 2, "{stage}: {stats}");
        let rejected = lines(dir.path(), "blueprints.rejected.jsonl");
        let text = rejected[0].to_string();
        assert_eq!(rejected[0]["stage"], stage);
        assert!(text.contains(needle), "{stage}: {needle:?} not in {text}");
        if stage == "policy" {
            assert_eq!(rejected[0]["violations"], json!(["retail.not_authenticated"]));
        }
        if stage != "generation" {
            assert!(rejected[0]["draft"]["instruction"].is_string(), "the last draft is kept");
        }
    }
}

#[test]
fn duplicates_are_rejected_and_concurrency_does_not_change_the_files() {
    let script = |seen: &Seen| if seen.role == "reviewer" { review(1) } else { good_draft(seen, false) };
    let read = |dir: &Path| {
        let mut stats: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap();
        stats.as_object_mut().unwrap().remove("timing");
        let files: Vec<String> = ["blueprints.jsonl", "blueprints.rejected.jsonl", "trace.jsonl"]
            .iter()
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
            .collect();
        (files, stats)
    };
    let (one, three) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let stats = go(&Scripted::handle(script), &config(2, 4, 0, 1, 1), one.path());
    go(&Scripted::handle(script), &config(2, 4, 0, 1, 3), three.path());
    assert_eq!(stats["blueprints"]["validated"], 1, "{stats}");
    assert_eq!(stats["blueprints"]["rejected_by_stage"]["duplicate"], 3);
    assert!(lines(one.path(), "blueprints.rejected.jsonl")[0]["reason"].as_str().unwrap().contains("similar to retail-5-0"));
    assert_eq!(read(one.path()), read(three.path()));

    // The same command again resumes a finished run and adds nothing; another config is refused.
    let before = read(one.path());
    run_into(&Scripted::handle(script), &config(2, 4, 0, 1, 1), one.path()).unwrap();
    assert_eq!(read(one.path()), before);
    let err = run_into(&Scripted::handle(script), &config(1, 4, 0, 1, 1), one.path()).unwrap_err();
    assert!(format!("{err:#}").contains("config differs at `tasks`"), "{err:#}");
}

/// With eight slots and a count of two, a run whose drafts all pass asks for two blueprints, not
/// eight: the attempts past the count would be discarded, and they would slow the ones that count.
#[test]
fn a_small_run_starts_only_the_attempts_its_count_needs() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let drafts = Arc::new(AtomicUsize::new(0));
    let counted = drafts.clone();
    let engine = Scripted::handle(move |seen| {
        if seen.role == "reviewer" {
            return review(1);
        }
        counted.fetch_add(1, Ordering::SeqCst);
        good_draft(seen, true)
    });
    let dir = tempfile::tempdir().unwrap();
    let stats = go(&engine, &config(2, 8, 0, 1, 8), dir.path());
    assert_eq!(stats["blueprints"]["validated"], 2);
    assert_eq!(drafts.load(Ordering::SeqCst), 2, "generator requests");
}

/// The sampling seed of task `task`'s first draft (seed 5, as `config` sets).
fn first_draft_seed(task: usize) -> u64 {
    apigen_mt::seeds::derive(5, &["blueprint", &task.to_string(), "generator", "round-0"])
}

/// An attempt still running when the count is reached is discarded, so the run cancels it rather
/// than letting it share the engine to the end. Task 0's draft fails, which widens the pace to
/// tasks 1 and 2 at once; task 1 validates (once task 2's draft has been asked for) and completes
/// the count of one, while task 2's draft is still being written. Its request must see the
/// cancellation: without it, the script gives up after a minute and the assertion fails.
#[test]
fn attempts_still_running_at_the_count_are_cancelled() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let wait_for = |done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !done() {
            std::thread::sleep(Duration::from_millis(5));
        }
        done()
    };
    let (asked, saw_cancel) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (asked_in, saw_in) = (asked.clone(), saw_cancel.clone());
    let engine = Scripted::handle(move |seen| {
        if seen.role == "reviewer" {
            return review(1);
        }
        if seen.seed == first_draft_seed(0) {
            return "not a blueprint".into();
        }
        if seen.seed == first_draft_seed(1) {
            wait_for(&|| asked_in.load(Ordering::SeqCst));
        }
        if seen.seed == first_draft_seed(2) {
            asked_in.store(true, Ordering::SeqCst);
            saw_in.store(wait_for(seen.cancelled), Ordering::SeqCst);
        }
        good_draft(seen, true)
    });
    let dir = tempfile::tempdir().unwrap();
    let stats = go(&engine, &config(1, 8, 0, 1, 8), dir.path());
    assert!(asked.load(Ordering::SeqCst), "task 2 never started beside task 1");
    assert!(saw_cancel.load(Ordering::SeqCst), "task 2's request was never cancelled");
    assert_eq!(stats["blueprints"]["validated"], 1);
    assert_eq!(stats["blueprints"]["attempted"], 2);
    let ids: Vec<Value> = lines(dir.path(), "blueprints.jsonl").iter().map(|b| b["id"].clone()).collect();
    assert_eq!(ids, [json!("retail-5-1")]);
}

#[test]
fn a_run_stops_at_the_count_in_task_order() {
    let engine = Scripted::handle(|seen| if seen.role == "reviewer" { review(1) } else { good_draft(seen, true) });
    let dir = tempfile::tempdir().unwrap();
    let stats = go(&engine, &config(2, 8, 0, 1, 3), dir.path());
    assert_eq!(stats["blueprints"]["attempted"], 2);
    let ids: Vec<Value> = lines(dir.path(), "blueprints.jsonl").iter().map(|b| b["id"].clone()).collect();
    assert_eq!(ids, [json!("retail-5-0"), json!("retail-5-1")]);
}
