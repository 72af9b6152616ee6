//! Faults between a run and its server: answers of 500, a request that times out, and the
//! server killed mid-run then restarted. Each run must end with the files of the in-process run,
//! nothing lost and nothing written twice.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::proxy::{Fault, Proxy};
use super::{fixture, server_entries, Serve, RECORDS};

/// A run config with every role on the `agent` server URL but the user, on its own.
fn config(dir: &Path, name: &str, agent: &str, user: &str, user_timeout: u64) -> String {
    let path = dir.join(format!("{name}.toml"));
    let text = format!("[server]\nurl = \"{agent}\"\nretries = 3\n\n[user.server]\nurl = \"{user}\"\ntimeout_secs = {user_timeout}\n");
    std::fs::write(&path, text).expect("config");
    path.to_str().expect("a UTF-8 path").to_string()
}

/// Three answers of 500 to the agent's generations (two in a row for one request) and one user
/// request held past its timeout: every one is retried, and the records come out as without them.
#[test]
fn answers_of_500_and_a_timed_out_request_are_retried_to_the_same_records() {
    let Some(fixture) = fixture() else { return };
    let serve = Serve::start(fixture, "transient", &[]);
    let agent = Proxy::start(&serve.address, &[(2, Fault::Status500), (3, Fault::Status500), (6, Fault::Status500)]);
    let user = Proxy::start(&serve.address, &[(2, Fault::Stall)]);
    // The timeout bounds silence, not length: `serve` streams tokens, and keep-alive comments
    // every 5 s while a busy batch keeps it from sending any, so only the stall trips it.
    let config = config(&fixture.dir, "transient", &agent.url(), &user.url(), 12);
    let out = fixture.scratch("transient");
    let output = fixture.trajectories(&out, &["--config", &config, "--concurrency", "2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!((agent.injected(), user.injected()), (3, 1), "every fault was met");
    fixture.assert_same_records(&out);
    // stats.json counts the retries per server.
    let retries = |url: &str| -> u64 {
        let entries = server_entries(&out);
        let entry = entries.iter().find(|e| e["server"]["url"] == url).unwrap_or_else(|| panic!("no stats for {url}: {entries:?}"));
        entry["server"]["retries"].as_u64().unwrap_or(0)
    };
    assert_eq!(retries(&agent.url()), 3);
    assert_eq!(retries(&user.url()), 1);
    assert!(stderr.contains("HTTP 500") && stderr.contains("timed out"), "the retries are logged: {stderr}");
    // The completions API, with prompts rendered here from the served model's own files.
    let manifest = manifest(&out).expect("manifest");
    assert_eq!(manifest["config"]["agent"]["server"]["api"], "completions");
    assert_eq!(manifest["config"]["agent"]["server"]["template"], fixture.gguf.to_str().expect("a UTF-8 path"));
}

fn manifest(out: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).ok()?).ok()
}

fn committed_blueprints(out: &Path) -> u64 {
    manifest(out).and_then(|m| m["progress"]["trajectories"]["next_blueprint"].as_u64()).unwrap_or(0)
}

/// The server dies while blueprint 1 is in flight: the run stops with a clear error and exit
/// code 2, having committed blueprint 0 and nothing of blueprint 1; with the server back, the
/// same command resumes and finishes with the records of an uninterrupted run.
#[test]
fn a_server_killed_mid_run_stops_it_cleanly_and_the_rerun_resumes() {
    let Some(fixture) = fixture() else { return };
    let mut serve = Serve::start(fixture, "killed", &[]);
    let proxy = Proxy::start(&serve.address, &[]);
    let url = proxy.url();
    let out = fixture.scratch("killed");
    // Once blueprint 0 is committed, requests wait at the proxy: the server then dies while
    // blueprint 1 is in flight however fast the machine runs it (polling the manifest alone
    // once let the run finish first).
    let watched = out.clone();
    proxy.hold_when(move || committed_blueprints(&watched) >= 1);
    // One conversation at a time, so that blueprint 1 starts after blueprint 0 has ended.
    let args = ["--model", url.as_str(), "--concurrency", "1", "--server-retries", "2"];
    let mut run = fixture.command(&out, &args).spawn().expect("the binary runs");
    let started = Instant::now();
    while proxy.held() == 0 {
        if let Some(status) = run.try_wait().expect("wait") {
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(&mut run.stderr.take().expect("piped"), &mut stderr);
            panic!("the run ended ({status}) before the server could be killed: {stderr}");
        }
        assert!(started.elapsed() < Duration::from_secs(600), "no request came after blueprint 0 was committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    serve.kill();
    proxy.release();
    let output = run.wait_with_output().expect("the run ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{}", proxy.port)) && stderr.contains("gave up after 3 tries"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Blueprint 0 is committed, blueprint 1 is not: the files hold blueprint 0's records alone.
    assert_eq!(committed_blueprints(&out), 1);
    let records = |dir: &Path| -> Vec<String> {
        RECORDS
            .iter()
            .flat_map(|name| std::fs::read_to_string(dir.join(name)).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>())
            .filter(|line| serde_json::from_str::<Value>(line).is_ok_and(|v| v["blueprint_id"] == "lookup-0"))
            .collect()
    };
    let all: Vec<String> = RECORDS
        .iter()
        .flat_map(|name| std::fs::read_to_string(out.join(name)).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert_eq!(all, records(&fixture.reference), "only blueprint 0's records, as in the reference");

    let restarted = Serve::start(fixture, "restarted", &[]);
    proxy.set_upstream(&restarted.address);
    let output = fixture.trajectories(&out, &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    fixture.assert_same_records(&out);
    assert_eq!(committed_blueprints(&out), 3);
}
