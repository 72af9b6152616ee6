//! What a run leaves for people and hubs: report.html opened in headless Chromium, the Parquet
//! files read back against the JSONL, the dataset card's YAML and numbers, `--formats`, and
//! `apigen-mt report` on directories of other shapes (a rewritten run, eval results, no records).
//!
//! Most tests share one run directory that holds every kind of record (see [`fixture`]), made
//! once with scripted models in well under a second.

mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use apigen_mt::blueprint::run::{self as blueprint_run, Run};
use apigen_mt::config::{Settings, SettingsFile};
use apigen_mt::dataset::rundir::{RunDir, BLUEPRINTS, BLUEPRINTS_REJECTED, OPENAI, SHAREGPT, TRACE, TRAJECTORIES, TRAJECTORIES_REJECTED};
use apigen_mt::dataset::{jsonl, parquet, publish};
use apigen_mt::engine::{EngineHandle, ModelInfo};
use apigen_mt::env::Action;
use apigen_mt::prompts::Prompts;
use apigen_mt::roles::Models as BlueprintModels;
use apigen_mt::samplers::fewshot;
use apigen_mt::schedule::Slots;
use apigen_mt::trajectory::agent::Models as TrajectoryModels;
use apigen_mt::trajectory::runner::{self, World};
use apigen_mt::trajectory::Task;
use serde_json::{json, Value};

use crate::dataset::{address, blueprints, first_user, Parallel};
use crate::phase1::{good_draft, review, Scripted};

fn settings() -> Settings {
    let role = "temperature = 0.0\nmax_tokens = 64\n";
    let text = format!(
        "domain = 'retail'\nmodel = 'scripted'\nseed = 5\ntasks = 2\nmax_attempts = 3\nrounds = 1\nreviewers = 2\n\
         concurrency = 1\nrecombine = 0\nactions = 'model'\nattempts = 2\nbest_of = 2\nmax_turns = 4\n\
         [generator]\n{role}[reviewer]\n{role}[summarizer]\n{role}"
    );
    toml::from_str::<SettingsFile>(&text).unwrap().resolve().unwrap()
}

/// Phase 1 with a generator whose first draft fails the format check and whose revision, the
/// same task for every user, passes: the first task validates after one round of feedback and
/// the later ones are rejected as its duplicates.
fn phase1(out: &mut RunDir, settings: &Settings) -> anyhow::Result<()> {
    let engine = Scripted::handle(|seen| match seen.role {
        "reviewer" => review(1),
        "summarizer" => "Drop the comma from the output.".into(),
        _ if seen.prompt.contains("Your previous draft") => good_draft(seen, false),
        _ => json!({"thought": "t", "instruction": "You want to know your total.", "actions": [], "outputs": ["1,250.00"]}).to_string(),
    });
    let prompts = Prompts::load(None)?;
    let pool = fewshot::pool("retail", &[] as &[&Path])?;
    let mut config = blueprint_run::RunConfig::from_settings(settings, true)?;
    config.progress = false;
    let models = BlueprintModels::single(engine);
    let (progress, accepted) = (out.blueprint_progress(), out.accepted()?);
    let slots = Slots::new(1);
    blueprint_run::run(Run { models: &models, prompts: &prompts, config: &config, pool: &pool, slots: &slots }, out, progress, accepted)?;
    Ok(())
}

/// Phase 2 with the scripted agent of tests/dataset on its three blueprints, plus one whose
/// actions expect another zip code than its instruction asks for: a state mismatch.
fn phase2(out: &mut RunDir, settings: &Settings) -> anyhow::Result<()> {
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
    let models = TrajectoryModels { agent: engine.clone(), user: engine.clone(), judge: engine };
    let prompts = Prompts::load(None)?;
    let config = apigen_mt::trajectory::TrajectoryConfig::from_settings(settings);
    let policy = apigen_mt::env::policy::document("retail")?;
    let domain = apigen_mt::env::domain("retail")?;
    let slots = Slots::new(1);
    let run = runner::Run {
        models: &models,
        prompts: &prompts,
        config: &config,
        policy,
        domain,
        world: World::Generated(0),
        slots: &slots,
        expected: 4,
        show: false,
    };
    let mut bps = blueprints(&user);
    let kwargs = |v: Value| v.as_object().cloned().unwrap_or_default();
    bps.push(Task {
        id: Some("move-19904".into()),
        instruction: format!("You are {user}. Move your default address to 12 Quarry Lane, Unit 4, Dover DE, zip 19904."),
        actions: vec![
            Action { name: "get_user_details".into(), kwargs: kwargs(json!({"user_id": user})) },
            Action { name: "modify_user_address".into(), kwargs: kwargs(address(&user, "19905")) },
        ],
        outputs: vec![],
        user_id: Some(user.clone()),
        persona: None,
        data_seed: Some(0),
    });
    let progress = out.trajectory_progress();
    runner::run(run, runner::tasks_of(bps.into_iter().skip(progress.next_blueprint)), out, progress)?;
    Ok(())
}

/// Writes a whole run (both phases, with a trace) into `dir` with the given options and
/// dataset files, and finishes it.
fn whole_run(dir: &Path, options: Value, dataset_files: &[&'static str]) -> anyhow::Result<Value> {
    let settings = settings();
    let mut files = vec![BLUEPRINTS, BLUEPRINTS_REJECTED, TRAJECTORIES, TRAJECTORIES_REJECTED, TRACE];
    files.extend_from_slice(dataset_files);
    let mut out = RunDir::open(dir, "run", &settings, options, &files)?;
    phase1(&mut out, &settings)?;
    phase2(&mut out, &settings)?;
    out.finish(&[], &Default::default())
}

/// The shared run directory: validated and rejected blueprints, verified and rejected
/// trajectories, every file `run` writes.
fn fixture() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        whole_run(dir.path(), json!({"trace": true}), &[SHAREGPT, OPENAI]).unwrap();
        dir
    })
    .path()
}

fn lines(path: &Path) -> Vec<Value> {
    jsonl::read_values(path).unwrap()
}

fn stats(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap()
}

/// Every record of the directory as (id, outcome, reason), read from the files themselves.
fn expected_records(dir: &Path) -> Vec<(String, String, String)> {
    let conversation_id = |l: &Value| format!("{}/attempt-{}", l["blueprint_id"].as_str().unwrap(), l["attempt"]);
    let mut out = Vec::new();
    for l in lines(&dir.join(TRAJECTORIES)) {
        out.push((conversation_id(&l), "verified trajectory".into(), String::new()));
    }
    for l in lines(&dir.join(BLUEPRINTS)) {
        out.push((l["id"].as_str().unwrap().to_string(), "validated blueprint".into(), String::new()));
    }
    for l in lines(&dir.join(BLUEPRINTS_REJECTED)) {
        out.push((l["id"].as_str().unwrap().to_string(), "rejected blueprint".into(), l["stage"].as_str().unwrap().into()));
    }
    for l in lines(&dir.join(TRAJECTORIES_REJECTED)) {
        out.push((conversation_id(&l), "rejected trajectory".into(), l["reason"].as_str().unwrap().into()));
    }
    out
}

#[test]
fn the_fixture_holds_every_kind_of_record() {
    let dir = fixture();
    let records = expected_records(dir);
    let kinds: BTreeSet<&str> = records.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(kinds.len(), 4, "{records:?}");
    let bp = &lines(&dir.join(BLUEPRINTS))[0];
    assert_eq!(bp["rounds"], 1);
    let feedback = &bp["feedback"][0];
    assert_eq!((feedback["round"].as_u64(), feedback["stage"].as_str()), (Some(0), Some("format")), "{bp}");
    assert!(feedback["feedback"].as_str().unwrap().contains("Drop the comma"), "{feedback}");
    let mismatch = lines(&dir.join(TRAJECTORIES_REJECTED)).into_iter().find(|l| l["reason"] == "state_mismatch").expect("a state mismatch");
    assert!(!mismatch["diff"].as_array().unwrap().is_empty());
    for name in ["report.html", "README.md", "dataset.sharegpt.parquet", "dataset.openai.parquet", "report.md"] {
        assert!(dir.join(name).is_file(), "{name} was not written");
    }
}

/// Node with playwright-core (installed by .ci/run into tests/browser) and Debian's Chromium,
/// or `None` with a printed notice.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        eprintln!("skipped: no Chromium at {} (apt-get install chromium, or set CHROMIUM)", chromium.display());
        return None;
    }
    if !root.join("node_modules/playwright-core").is_dir() || Command::new("node").arg("--version").output().is_err() {
        eprintln!("skipped: node or playwright-core is missing (npm ci --prefix tests/browser)");
        return None;
    }
    Some((root.join("check-report.js"), chromium))
}

#[test]
fn the_report_page_in_headless_chromium_shows_the_stats_and_every_record() {
    let dir = fixture();
    let Some((script, chromium)) = browser() else { return };
    let output = Command::new("node")
        .arg(&script)
        .arg(dir.join("report.html"))
        .arg(&chromium)
        .env("REPORT_SEARCH", "19904")
        .output()
        .expect("node runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["errors"], json!([]), "console errors");
    assert_eq!(seen["requests"], json!([]), "the page reached for the network");

    // The funnel shows stats.json's stages and counts.
    let stats = stats(dir);
    let want: Vec<(String, String)> =
        stats["funnel"].as_array().unwrap().iter().map(|s| (s["stage"].as_str().unwrap().to_string(), s["count"].to_string())).collect();
    let shown: Vec<(String, String)> = seen["funnel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap().to_string(), s["count"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(shown, want);
    assert_eq!(shown.len(), 5, "both phases' stages");

    // Every record is listed, and a run this small shows every kind on the first page.
    let expected = expected_records(dir);
    let ids =
        |rows: &Value| -> BTreeSet<String> { rows.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect() };
    let all: BTreeSet<String> = expected.iter().map(|r| r.0.clone()).collect();
    assert_eq!(seen["all"].as_array().unwrap().len(), expected.len());
    assert_eq!(ids(&seen["all"]), all);
    assert_eq!(ids(&seen["first_view"]), all);

    // Each reason filter leaves exactly the records with that reason.
    let mut by_reason: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, _, reason) in expected.iter().filter(|r| !r.2.is_empty()) {
        by_reason.entry(reason.clone()).or_default().insert(id.clone());
    }
    let filtered = seen["reasons"].as_object().unwrap();
    assert_eq!(filtered.keys().cloned().collect::<BTreeSet<_>>(), by_reason.keys().cloned().collect(), "{filtered:?}");
    for (reason, want) in &by_reason {
        assert_eq!(&ids(&filtered[reason]), want, "filter {reason}");
    }
    assert!(by_reason.contains_key("state_mismatch") && by_reason.contains_key("duplicate"), "{by_reason:?}");

    // The text search finds the mismatched blueprint's attempts only.
    let found = ids(&seen["search"]);
    assert!(!found.is_empty() && found.iter().all(|id| id.starts_with("move-19904/")), "{found:?}");

    // Details: a rejected conversation shows its state diff; a blueprint its committee and feedback.
    let rejected = seen["details"]["rejected trajectory"].as_str().unwrap();
    assert!(rejected.contains("State diff") && rejected.contains("/zip"), "{rejected}");
    let blueprint = seen["details"]["validated blueprint"].as_str().unwrap();
    for needle in ["Committee", "correctness", "Feedback, round by round", "Drop the comma", "modify_user_address"] {
        assert!(blueprint.contains(needle), "{needle:?} not in {blueprint}");
    }
}

#[test]
fn every_record_id_is_in_the_page_text_not_only_in_scripts() {
    let dir = fixture();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let body = html.split("<script type=\"application/json\"").next().unwrap();
    for (id, _, _) in expected_records(dir) {
        assert!(body.contains(&format!(">{id}</a>")), "{id} is not in the list");
    }
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains(" src="), "the page is self-contained");
}

/// The rows of a Parquet file as JSON: through pyarrow where it is installed, else through
/// this crate's own reader.
fn parquet_rows(path: &Path) -> Vec<Value> {
    let script = "import sys, json, pyarrow.parquet as pq\nprint(json.dumps(pq.read_table(sys.argv[1]).to_pylist()))";
    match Command::new("python3").args(["-c", script]).arg(path).output() {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).unwrap(),
        _ => {
            eprintln!("note: pyarrow is not installed; reading {} with the Rust reader", path.display());
            parquet::read(path).unwrap()
        }
    }
}

/// A Parquet row in the shape of its JSONL record: JSON columns parsed (the OpenAI `tools`
/// was a list), and null optional message fields dropped.
fn as_record(mut row: Value, openai: bool) -> Value {
    row["metadata"] = serde_json::from_str(row["metadata"].as_str().unwrap()).unwrap();
    if openai {
        row["tools"] = serde_json::from_str(row["tools"].as_str().unwrap()).unwrap();
        for m in row["messages"].as_array_mut().unwrap() {
            let m = m.as_object_mut().unwrap();
            m.retain(|_, v| !v.is_null());
        }
    }
    row
}

#[test]
fn the_parquet_files_read_back_to_the_jsonl_records() {
    let dir = fixture();
    for (jsonl, parquet, openai) in [(SHAREGPT, "dataset.sharegpt.parquet", false), (OPENAI, "dataset.openai.parquet", true)] {
        let records = lines(&dir.join(jsonl));
        assert_eq!(records.len(), 3);
        let rows: Vec<Value> = parquet_rows(&dir.join(parquet)).into_iter().map(|r| as_record(r, openai)).collect();
        assert_eq!(rows, records, "{parquet}");
        // The Rust reader agrees with whatever read them above.
        let ours: Vec<Value> = parquet::read(&dir.join(parquet)).unwrap().into_iter().map(|r| as_record(r, openai)).collect();
        assert_eq!(ours, records);
    }
}

/// The card's YAML front matter as JSON, through PyYAML where it is installed.
fn yaml(text: &str) -> Option<Value> {
    let script = "import sys, json, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        eprintln!("skipped the YAML parse: PyYAML is not installed (pip install pyyaml)");
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn the_dataset_card_parses_and_its_numbers_are_those_of_stats_json() {
    let dir = fixture();
    let stats = stats(dir);
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let front = card.strip_prefix("---\n").and_then(|rest| rest.split_once("\n---\n")).map(|(f, _)| f).expect("YAML front matter");
    assert!(front.contains("# license: choose"), "the licence is left to the user, with a comment");
    if let Some(meta) = yaml(front) {
        assert_eq!(meta["license"], "unknown");
        assert_eq!(meta["size_categories"], json!(["n<1K"]));
        assert_eq!(meta["task_categories"], json!(["text-generation"]));
        let configs: Vec<(&str, &str)> = meta["configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["config_name"].as_str().unwrap(), c["data_files"][0]["path"].as_str().unwrap()))
            .collect();
        assert_eq!(configs, [("sharegpt", "dataset.sharegpt.parquet"), ("openai", "dataset.openai.parquet")]);
        for info in meta["dataset_info"].as_array().unwrap() {
            assert_eq!(info["splits"][0]["num_examples"], stats["dataset"]["records"]);
        }
    }
    for stage in stats["funnel"].as_array().unwrap() {
        let row = format!("| {} | {} |", stage["stage"].as_str().unwrap(), stage["count"]);
        assert!(card.contains(&row), "{row} not in the card");
    }
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(card.contains(manifest["config_hash"].as_str().unwrap()), "the config hash");
    assert!(card.contains(&format!("apigen-mt {}", env!("CARGO_PKG_VERSION"))));
    assert!(card.contains("| generator | `scripted` | unknown (not a preset)"), "models per role with their licence");
    assert!(card.contains("`modify_user_address`"), "the environment's tools");
    assert!(card.contains("## Known limits"));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_apigen-mt"))
}

#[test]
fn the_report_command_rewrites_the_same_files() {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    let derived = ["report.html", "README.md", "dataset.sharegpt.parquet", "dataset.openai.parquet", "report.md"];
    for name in derived {
        std::fs::remove_file(copy.path().join(name)).unwrap();
    }
    let out = bin().arg("report").arg(copy.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |dir: &Path, name: &str| {
        let base = dir.file_name().unwrap().to_string_lossy().to_string();
        std::fs::read_to_string(dir.join(name)).unwrap().replace(&dir.display().to_string(), "DIR").replace(&base, "BASE")
    };
    for name in ["report.html", "README.md", "report.md"] {
        assert_eq!(read(copy.path(), name), read(fixture(), name), "{name}");
    }
    for name in ["dataset.sharegpt.parquet", "dataset.openai.parquet"] {
        assert_eq!(parquet::read(&copy.path().join(name)).unwrap(), parquet::read(&fixture().join(name)).unwrap());
    }
    // A directory that is not a run is refused by name, without a panic.
    let empty = tempfile::tempdir().unwrap();
    let out = bin().arg("report").arg(empty.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("stats.json") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn formats_choose_the_dataset_files_and_parquet_is_written_for_zero_records() {
    let dir = tempfile::tempdir().unwrap();
    let formats = apigen_mt::dataset::formats::parse(&["openai.parquet".into()]).unwrap();
    let options = json!({"formats": apigen_mt::dataset::formats::to_json(&formats)});
    whole_run(dir.path(), options, &apigen_mt::dataset::formats::jsonl_files(&formats)).unwrap();
    let exists = |name: &str| dir.path().join(name).is_file();
    assert!(exists("dataset.openai.jsonl") && exists("dataset.openai.parquet"));
    assert!(!exists("dataset.sharegpt.jsonl") && !exists("dataset.sharegpt.parquet"));
    assert_eq!(lines(&dir.path().join(OPENAI)), lines(&fixture().join(OPENAI)), "the records do not depend on the formats");
    let card = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(card.contains("config_name: openai") && !card.contains("config_name: sharegpt"), "{card}");

    // A directory whose dataset files are empty still gets both Parquet files, with the schema.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("stats.json"), "{\"funnel\": [], \"dataset\": {\"records\": 0}}").unwrap();
    for name in [SHAREGPT, OPENAI] {
        std::fs::write(empty.path().join(name), "").unwrap();
    }
    publish::write(empty.path()).unwrap();
    for (name, column) in [("dataset.sharegpt.parquet", "conversations"), ("dataset.openai.parquet", "messages")] {
        let path = empty.path().join(name);
        assert_eq!(parquet_rows(&path), Vec::<Value>::new());
        let schema = parquet::schema(if column == "messages" {
            apigen_mt::dataset::formats::Layout::OpenAi
        } else {
            apigen_mt::dataset::formats::Layout::ShareGpt
        });
        assert!(schema.field_with_name(column).is_ok());
    }
}

#[test]
fn eval_directories_are_browsed_from_their_results() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stats.json"), json!({"funnel": [], "pass_hat_k": {"1": 0.5}}).to_string()).unwrap();
    // results.jsonl as `eval` writes it (src/eval.rs: result_line).
    let trial = |task: u32, trial: u32, reward: u8| {
        json!({"task_id": task.to_string(), "trial": trial, "reward": reward, "reason": if reward == 0 { json!("state_mismatch") } else { Value::Null },
               "messages": [{"role": "user", "content": "Cancel order #W1."},
                            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "cancel_pending_order", "arguments": {"order_id": "#W1"}}]},
                            {"role": "tool", "content": "ok", "tool_call_id": "c1", "name": "cancel_pending_order"}, {"role": "assistant", "content": "Done."}]})
    };
    let text: String = [trial(0, 0, 1), trial(0, 1, 0), trial(7, 0, 1)].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("results.jsonl"), text).unwrap();
    let out = bin().arg("report").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for id in ["0/trial-0", "0/trial-1", "7/trial-0"] {
        assert!(html.contains(&format!(">{id}</a>")), "{id}");
    }
    assert!(html.contains("data-outcome=\"failed eval\" data-reason=\"state_mismatch\""), "the failed trial with its reason");
    assert!(html.contains("cancel_pending_order (3)"), "the tool filter counts every trial");
}
