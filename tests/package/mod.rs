//! Environment packages (`--domain PATH`): the example package through `env check`, `env
//! replay` and `env init`; broken packages refused by `env check` with exit 2, naming the
//! problem; a run against a tool server that crashes, hangs and answers garbage, which finishes
//! with those attempts rejected as `env_error` and nothing else lost; a server that cannot
//! start, which stops the run; resuming with a moved or an edited package; and a small `run`
//! on SmolLM2. The tool servers are real subprocesses (python3), and the tests skip with a
//! notice where python3 is missing.

mod run;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example package of the README.
pub(crate) fn library() -> PathBuf {
    root().join("examples/envs/library")
}

/// The package whose server fails on purpose.
pub(crate) fn faulty() -> PathBuf {
    root().join("tests/fixtures/envs/faulty")
}

/// Whether python3 runs here; prints why a test is skipped when not.
pub(crate) fn python() -> bool {
    let ok = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: python3 is not installed, and the example tool servers need it");
    }
    ok
}

pub(crate) fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apigen-mt")).args(args).output().expect("the binary runs")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// A copy of the package in `from` at `to`, every file, without what Python left behind.
pub(crate) fn copy_package(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" || name == "started" {
            continue;
        }
        let target = to.join(&name);
        if entry.path().is_dir() {
            copy_package(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replaces `from` by `to` in the package file `file`.
pub(crate) fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn the_example_package_checks_replays_and_env_init_writes_a_working_copy() {
    if !python() {
        return;
    }
    let dir = library();
    let out = bin(&["env", "check", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = &lines(&out)[0];
    assert_eq!(report["ok"], true);
    assert_eq!(report["name"], "library");
    assert_eq!(report["tables"], json!(["books", "loans", "members"]));
    assert!(report["tools"].as_array().unwrap().contains(&json!("renew_loan")), "{report}");
    assert!(report["edges"].as_u64().unwrap() > 5, "the graph is derived from the outputs: {report}");

    // The graph: a member lookup yields the loan ids that renewals need.
    let out = bin(&["env", "graph", dir.to_str().unwrap()]);
    let graph = String::from_utf8_lossy(&out.stdout);
    assert!(graph.contains("get_member_details  needs [member_id]  yields [email, loan_id, member_id]"), "{graph}");

    let tmp = tempfile::tempdir().unwrap();
    let actions = tmp.path().join("actions.json");
    let list = json!([
        {"name": "find_member_by_email", "kwargs": {"email": "ada.brooks@example.org"}},
        {"name": "renew_loan", "kwargs": {"loan_id": "L0001"}},
        {"name": "renew_loan", "kwargs": {"loan_id": "L0003"}},
        {"name": "borrow_book", "kwargs": {"member_id": "M001", "book_id": "B004", "date": "2026-12-06"}},
        {"name": "renew_loan", "kwargs": {}},
        {"name": "no_such_tool", "kwargs": {}}
    ]);
    std::fs::write(&actions, list.to_string()).unwrap();
    let replay = || bin(&["env", "replay", dir.to_str().unwrap(), "--actions", actions.to_str().unwrap()]);
    let out = replay();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = lines(&out);
    assert_eq!(got[0]["output"], "M001");
    assert!(got[1]["output"].as_str().unwrap().contains("\"due_date\": \"2027-01-03\""), "{}", got[1]);
    assert_eq!(got[2]["output"], "Error: loan L0003 was already renewed 2 times", "a refusal reads like a built-in tool's");
    assert!(got[3]["output"].as_str().unwrap().contains("\"loan_id\": \"L0010\""), "{}", got[3]);
    assert_eq!(got[4]["output"], "Error: renew_loan() missing required argument 'loan_id'");
    assert_eq!(got[5]["output"], "Error: unknown tool 'no_such_tool'");
    let diff = got[6]["diff"].as_array().unwrap();
    assert!(diff.iter().any(|op| op["path"] == "/loans/L0001/due_date"), "{diff:?}");
    assert!(diff.iter().any(|op| op["op"] == "add" && op["path"] == "/loans/L0010"), "{diff:?}");
    assert_eq!(lines(&replay())[7]["hash"], got[7]["hash"], "the same calls give the same state hash");

    // The rules come from the server's env/check, with stable ids.
    let out = bin(&["env", "check", dir.to_str().unwrap(), "--actions", actions.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let found = lines(&out);
    assert_eq!(found[0]["id"], "library.wrong_member", "{found:?}");
    assert_eq!(found[0]["step"], 2);
    assert_eq!(found.last().unwrap()["violations"], 1);

    // env init writes a package that passes the checks, named after its folder.
    let fresh = tmp.path().join("front-desk");
    let out = bin(&["env", "init", fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin(&["env", "check", fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&out)[0]["name"], "front-desk");
    let out = bin(&["env", "init", fresh.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}

#[test]
fn env_check_refuses_broken_packages_with_exit_2_naming_the_problem() {
    if !python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    type Break = fn(&Path);
    let cases: [(&str, Break, &[&str]); 10] = [
        ("bad toml", |d| edit(d, "env.toml", "name = \"faulty\"", "name = faulty\""), &["env.toml", "line 3"]),
        ("no server", |d| edit(d, "env.toml", "server = [\"python3\", \"server.py\"]", ""), &["env.toml", "missing field `server`"]),
        (
            "table not an object",
            |d| std::fs::write(d.join("data/items.json"), "[1, 2]").unwrap(),
            &["items.json", "must hold a JSON object"],
        ),
        ("record not an object", |d| std::fs::write(d.join("data/items.json"), "{\"i1\": 3}").unwrap(), &["items.json", "record 'i1'"]),
        (
            "invalid schema",
            |d| edit(d, "env.toml", "\"server.py\"", "\"server.py\", \"--bad-schema\""),
            &["tool 'bump'", "not valid JSON Schema"],
        ),
        ("server does not start", |d| edit(d, "env.toml", "\"server.py\"", "\"server.py\", \"--no-start\""), &["`server`", "cannot start"]),
        (
            "no such program",
            |d| edit(d, "env.toml", "\"python3\"", "\"./no-such-server\""),
            &["`server`", "cannot start", "no-such-server"],
        ),
        (
            "state does not round-trip",
            |d| edit(d, "env.toml", "\"server.py\"", "\"server.py\", \"--lossy-state\""),
            &["env/state", "back exactly", "/items/i1a"],
        ),
        (
            "example calling no tool",
            |d| {
                std::fs::write(d.join("examples.jsonl"), "{\"instruction\": \"x\", \"actions\": [{\"name\": \"nope\"}], \"outputs\": []}\n")
                    .unwrap()
            },
            &["examples.jsonl:1", "'nope'"],
        ),
        (
            "unknown tool in hints",
            |d| {
                std::fs::write(
                    d.join("env.toml"),
                    std::fs::read_to_string(d.join("env.toml")).unwrap() + "\n[hints]\nwrite = [\"bumpp\"]\n",
                )
                .unwrap()
            },
            &["hints.write", "bumpp"],
        ),
    ];
    for (i, (what, broken, needles)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("case-{i}"));
        copy_package(&faulty(), &dir);
        broken(&dir);
        let out = bin(&["env", "check", dir.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{what}: no {needle:?} in {stderr}");
        }
    }
    // A server whose state changes by itself fails the replay check.
    let dir = tmp.path().join("random");
    copy_package(&faulty(), &dir);
    edit(&dir, "env.toml", "\"server.py\"", "\"server.py\", \"--random-state\"");
    let out = bin(&["env", "check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not deterministic"));
    // And a folder that is no package at all.
    let out = bin(&["env", "check", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no env.toml"));
}
