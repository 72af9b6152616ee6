//! Reverse recombination driven by the scripted model: a recombination that validates, one
//! that the replay rejects (its parts conflict), one the committee rejects, the share setting,
//! and determinism across concurrency and a crash.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use apigen_mt::blueprint::attempt;
use apigen_mt::config::Settings;
use apigen_mt::samplers;
use apigen_mt::seeds::derive;
use serde_json::{json, Value};

use super::{allowed, config, go, lines, review, run_crashing, Scripted, Seen};

/// Places a user can move to; far enough apart in wording that two moves are not duplicates.
const PLACES: [(&str, &str, &str, &str); 8] = [
    ("12 Quarry Road", "Lowell", "MA", "01852"),
    ("7 Birch Lane", "Denton", "TX", "76201"),
    ("40 Harbor View", "Eureka", "CA", "95501"),
    ("3 Mill Street", "Keene", "NH", "03431"),
    ("88 Prairie Court", "Salina", "KS", "67401"),
    ("5 Cedar Hollow", "Bend", "OR", "97701"),
    ("19 Lakeshore Drive", "Duluth", "MN", "55802"),
    ("2 Orchard Way", "Yakima", "WA", "98901"),
];

/// What the recombination writer answers; reviewers can tell a recombined task by it.
const COMBINED: &str = "You are moving twice and want every change above made in order.";

fn kwargs_at(place: usize) -> Value {
    let (street, city, state, zip) = PLACES[place % PLACES.len()];
    json!({"address1": street, "address2": "", "city": city, "state": state, "country": "USA", "zip": zip})
}

/// The allowed user and email of the prompt's schema, and the identification action.
fn identify(seen: &Seen) -> (String, String, Value) {
    let schema = seen.schema.expect("the generator is constrained");
    let email = allowed(schema, "email").expect("email enum");
    let user = allowed(schema, "user_id").expect("user_id enum");
    let find = json!({"name": "find_user_id_by_email", "kwargs": {"email": email}});
    (user, email, find)
}

/// A valid draft: identify, then move the default address to `PLACES[place]`.
fn moving(seen: &Seen, place: usize) -> String {
    let (user, email, find) = identify(seen);
    let mut kwargs = kwargs_at(place);
    let (street, city, ..) = PLACES[place % PLACES.len()];
    kwargs["user_id"] = json!(user);
    json!({
        "thought": format!("move to {city}"),
        "instruction": format!("You are {user} ({email}). You moved to {street} in {city} and want that as your default address."),
        "actions": [find, {"name": "modify_user_address", "kwargs": kwargs}],
        "outputs": []
    })
    .to_string()
}

/// The orders in the generator prompt's records, with their statuses.
fn orders(prompt: &str) -> Vec<(String, String)> {
    let records = prompt.split_once("Their records:\n").expect("the prompt shows records").1;
    let records: Value = serde_json::from_str(records.lines().next().unwrap()).expect("records are JSON on one line");
    let orders = records["orders"].as_object().expect("the records hold orders");
    orders.iter().map(|(id, o)| (id.clone(), o["status"].as_str().unwrap_or_default().to_string())).collect()
}

/// The script most tests share: generator call `n` (in task order when run with one worker)
/// moves to place n, the writer answers [`COMBINED`], and every reviewer says `yes`.
fn movers() -> impl Fn(&Seen) -> String + Send + Sync + 'static {
    let calls = Arc::new(AtomicUsize::new(0));
    move |seen| match seen.role {
        "reviewer" => review(1),
        "recombiner" => json!({"instruction": COMBINED}).to_string(),
        _ => moving(seen, calls.fetch_add(1, Ordering::SeqCst)),
    }
}

fn with_share(mut settings: Settings, share: f64) -> Settings {
    settings.recombine = share;
    settings
}

fn roles(dir: &Path) -> Vec<(String, Value)> {
    lines(dir, "trace.jsonl").iter().map(|t| (t["role"].as_str().unwrap().to_string(), t["call"].clone())).collect()
}

#[test]
fn a_group_of_validated_blueprints_is_recombined_replayed_and_reviewed() {
    let dir = tempfile::tempdir().unwrap();
    let stats = go(&Scripted::handle(movers()), &with_share(config(10, 3, 0, 1, 1), 1.0), dir.path());
    let bps = lines(dir.path(), "blueprints.jsonl");
    assert_eq!(bps.len(), 4, "three generated and one recombined: {bps:?}");
    let (sources, combined) = (&bps[..3], &bps[3]);
    for bp in sources {
        assert_eq!(bp["recombined"], false);
        assert_eq!(bp["recombined_from"], json!([]));
        assert_eq!((&bp["data_seed"], &bp["user_id"]), (&bps[0]["data_seed"], &bps[0]["user_id"]), "a group shares a user and a world");
    }
    assert_eq!(combined["id"], "retail-5-0-recombined");
    assert_eq!(combined["recombined"], true);
    assert_eq!(combined["recombined_from"], json!(["retail-5-0", "retail-5-1", "retail-5-2"]));
    assert_eq!(combined["instruction"], COMBINED);
    assert_eq!((&combined["data_seed"], &combined["user_id"]), (&bps[0]["data_seed"], &bps[0]["user_id"]));
    // One identification, then the three moves in task order.
    let actions = combined["actions"].as_array().unwrap();
    let names: Vec<&str> = actions.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["find_user_id_by_email", "modify_user_address", "modify_user_address", "modify_user_address"]);
    for (k, source) in sources.iter().enumerate() {
        assert_eq!(actions[k + 1], source["actions"][1]);
    }
    // The diff is that of the whole sequence: the last move wins.
    let city = combined["diff"].as_array().unwrap().iter().find(|op| op["path"].as_str().unwrap().ends_with("/address/city")).unwrap();
    assert_eq!(city["value"], sources[2]["actions"][1]["kwargs"]["city"]);
    assert_eq!(combined["rounds"], 0);
    assert_eq!(combined["votes"]["voted"], json!([1, 1, 1, 1]));

    let b = &stats["blueprints"];
    assert_eq!((b["attempted"].as_u64(), b["validated"].as_u64(), b["recombined"].as_u64()), (Some(4), Some(4), Some(1)));
    let r = &b["recombination"];
    assert_eq!((r["attempted"].as_u64(), r["validated"].as_u64(), r["rejected"].as_u64()), (Some(1), Some(1), Some(0)));
    for stage in ["execution", "policy", "generation", "format", "committee", "duplicate"] {
        assert_eq!(r["pass_rate"][stage]["passed"], 1, "{stage}: {r}");
    }
    assert_eq!(b["pass_rate"]["with_feedback"]["generation"]["entered"], 3, "the feedback tables cover generated blueprints only");

    // The writer saw every part's instruction; writer and reviewer are seeded under the group.
    let trace = lines(dir.path(), "trace.jsonl");
    let writer = trace.iter().find(|t| t["role"] == "recombiner").expect("the writer was asked");
    assert_eq!((&writer["task"], &writer["call"]), (&json!(0), &json!(["recombination"])));
    for source in sources {
        assert!(writer["prompt"].as_str().unwrap().contains(source["instruction"].as_str().unwrap()));
    }
    assert!(roles(dir.path()).contains(&("reviewer".into(), json!(["recombination", "reviewer-0"]))));
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("Reverse recombination: 1 attempted, 1 validated, 0 rejected."), "{report}");
}

#[test]
fn parts_that_conflict_are_rejected_by_the_replay_before_the_writer_is_asked() {
    // One part cancels a pending order, the next changes that order's address: each is valid
    // alone, together the second fails on a cancelled order.
    let calls = Arc::new(AtomicUsize::new(0));
    let script = move |seen: &Seen| match seen.role {
        "reviewer" => review(1),
        "recombiner" => json!({"instruction": COMBINED}).to_string(),
        _ => {
            let (user, email, find) = identify(seen);
            let pending = orders(seen.prompt).into_iter().find(|(_, status)| status == "pending").map(|(id, _)| id);
            let order = pending.expect("the seed was chosen for a user with a pending order");
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => json!({"thought": "cancel", "instruction": format!("You are {user} ({email}) and no longer need order {order}; cancel it."),
                            "actions": [find, {"name": "cancel_pending_order", "kwargs": {"order_id": order, "reason": "no longer needed"}}],
                            "outputs": []}).to_string(),
                1 => {
                    let mut kwargs = kwargs_at(1);
                    kwargs["order_id"] = json!(order);
                    json!({"thought": "reroute", "instruction": format!("You are {user}: ship {order} to your office in Denton Texas instead."),
                           "actions": [find, {"name": "modify_pending_order_address", "kwargs": kwargs}],
                           "outputs": []}).to_string()
                }
                _ => "no blueprint today".into(),
            }
        }
    };
    // The first run seed whose first group's user has a pending order, found as the run finds it.
    let settings = (0..)
        .map(|seed| Settings { seed, ..with_share(config(10, 3, 0, 1, 1), 1.0) })
        .find(|s| {
            let a = apigen_mt::blueprint::run::RunConfig::from_settings(s, false).unwrap().attempt;
            let (_, db) = attempt::world(&a, 0).unwrap();
            let context = samplers::sample(a.domain, &db, s.seed, 0, 0, &[]).unwrap();
            context.data.records["orders"].as_object().unwrap().values().any(|o| o["status"] == "pending")
        })
        .unwrap();
    let id = |task: usize| format!("retail-{}-{task}", settings.seed);
    let dir = tempfile::tempdir().unwrap();
    let stats = go(&Scripted::handle(script), &settings, dir.path());
    assert_eq!(lines(dir.path(), "blueprints.jsonl").len(), 2, "both parts validate alone");
    let rejected = lines(dir.path(), "blueprints.rejected.jsonl");
    let line = rejected.iter().find(|r| r["recombined"] == true).expect("the recombination is recorded");
    assert_eq!(line["stage"], "execution");
    assert_eq!(line["recombined_from"], json!([id(0), id(1)]));
    assert!(line["reason"].as_str().unwrap().contains("modify_pending_order_address"), "{line}");
    assert!(line["reason"].as_str().unwrap().contains("non-pending"), "{line}");
    assert_eq!(line["draft"]["actions"].as_array().unwrap().len(), 3);
    assert!(!roles(dir.path()).iter().any(|(role, _)| role == "recombiner"), "the writer is not asked about a conflict");
    let r = &stats["blueprints"]["recombination"];
    assert_eq!(r["rejected_by_stage"], json!({"execution": 1}));
    assert_eq!((r["pass_rate"]["execution"]["entered"].as_u64(), r["pass_rate"]["execution"]["passed"].as_u64()), (Some(1), Some(0)));
    assert!(r["pass_rate"].get("committee").is_none(), "no later stage was entered: {r}");
    assert_eq!(stats["blueprints"]["rejected_by_stage"], json!({"execution": 1, "generation": 1}));
}

#[test]
fn a_recombination_the_committee_turns_down_is_rejected() {
    let calls = Arc::new(AtomicUsize::new(0));
    let script = move |seen: &Seen| match seen.role {
        "reviewer" => review(!seen.prompt.contains(COMBINED) as u8),
        "recombiner" => json!({"instruction": COMBINED}).to_string(),
        _ => moving(seen, calls.fetch_add(1, Ordering::SeqCst)),
    };
    let dir = tempfile::tempdir().unwrap();
    let stats = go(&Scripted::handle(script), &with_share(config(10, 2, 0, 3, 1), 1.0), dir.path());
    assert!(lines(dir.path(), "blueprints.jsonl").iter().all(|b| b["recombined"] == false));
    let rejected = lines(dir.path(), "blueprints.rejected.jsonl");
    assert_eq!(rejected.len(), 1);
    assert_eq!((&rejected[0]["stage"], &rejected[0]["recombined"]), (&json!("committee"), &json!(true)));
    assert_eq!(rejected[0]["draft"]["instruction"], COMBINED);
    assert_eq!(rejected[0]["recombined_from"], json!(["retail-5-0", "retail-5-1"]), "a run's last attempt closes its group");
    assert!(rejected[0]["reason"].as_str().unwrap().contains("0 of 3 said yes"));
    let r = &stats["blueprints"]["recombination"];
    assert_eq!(
        (r["attempted"].as_u64(), r["validated"].as_u64(), r["rejected_by_stage"].clone()),
        (Some(1), Some(0), json!({"committee": 1}))
    );
    assert_eq!(stats["blueprints"]["recombined"], 0);
}

#[test]
fn a_share_of_zero_turns_recombination_and_grouping_off() {
    let dir = tempfile::tempdir().unwrap();
    let stats = go(&Scripted::handle(movers()), &with_share(config(10, 3, 0, 1, 1), 0.0), dir.path());
    let bps = lines(dir.path(), "blueprints.jsonl");
    assert_eq!(bps.len(), 3);
    assert!(bps.iter().all(|b| b["recombined"] == false));
    assert!(bps[0]["data_seed"] != bps[1]["data_seed"] && bps[1]["data_seed"] != bps[2]["data_seed"], "no shared worlds");
    assert!(!roles(dir.path()).iter().any(|(role, _)| role == "recombiner"));
    assert_eq!(stats["blueprints"]["recombination"]["attempted"], 0);
    assert_eq!(stats["blueprints"]["recombined"], 0);
}

#[test]
fn recombination_gives_the_same_files_whatever_the_concurrency_and_after_a_crash() {
    // Replies depend on the prompt alone, so any schedule gives the same answers.
    let script = |seen: &Seen| match seen.role {
        "reviewer" => review(1),
        "recombiner" => json!({"instruction": COMBINED}).to_string(),
        _ => moving(seen, derive(0, &[seen.prompt]) as usize),
    };
    // The manifest records the concurrency, so it is compared between runs with the same one.
    let read =
        |dir: &Path, files: &[&str]| -> Vec<String> { files.iter().map(|f| std::fs::read_to_string(dir.join(f)).unwrap()).collect() };
    let outputs = ["blueprints.jsonl", "blueprints.rejected.jsonl", "trace.jsonl"];
    let with_manifest = ["blueprints.jsonl", "blueprints.rejected.jsonl", "trace.jsonl", "manifest.json"];
    let (one, three, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let stats = go(&Scripted::handle(script), &with_share(config(20, 6, 0, 1, 1), 0.5), one.path());
    assert!(stats["blueprints"]["recombined"].as_u64().unwrap() >= 1, "{stats}");
    go(&Scripted::handle(script), &with_share(config(20, 6, 0, 1, 3), 0.5), three.path());
    assert_eq!(read(one.path(), &outputs), read(three.path(), &outputs));

    // Dies at task 2's checkpoint, after its lines and its group's recombination were written;
    // the resumed run takes the group's first two blueprints from blueprints.jsonl.
    let err = run_crashing(&Scripted::handle(script), &with_share(config(20, 6, 0, 1, 1), 0.5), crashed.path(), Some(2)).unwrap_err();
    assert!(format!("{err:#}").contains("simulated crash"), "{err:#}");
    assert!(lines(crashed.path(), "blueprints.jsonl").iter().any(|b| b["recombined"] == true), "the crash came after the recombination");
    go(&Scripted::handle(script), &with_share(config(20, 6, 0, 1, 1), 0.5), crashed.path());
    assert_eq!(read(crashed.path(), &with_manifest), read(one.path(), &with_manifest));
}
