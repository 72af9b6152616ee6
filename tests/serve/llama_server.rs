//! The backend against llama.cpp's real `llama-server` (built by `scripts/build-llama-server.sh`,
//! found through `LLAMA_SERVER=PATH` or on `PATH`; skipped with a notice where absent): a Phase 2
//! run with its agent and user on it completes with every record, the server is recognised as
//! llama-server, and no request fails.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{fixture, server_entries, RECORDS};

/// The llama-server binary, or `None` after a notice.
fn binary() -> Option<PathBuf> {
    let found = std::env::var_os("LLAMA_SERVER").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).map(|d| d.join("llama-server")).find(|p| p.is_file()))
    });
    if found.is_none() {
        eprintln!("notice: llama-server not found (LLAMA_SERVER=PATH, or on PATH; scripts/build-llama-server.sh builds it); skipping the llama-server test");
    }
    found
}

/// llama-server on a free loopback port, killed when dropped.
struct LlamaServer(Child);

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_run_on_llama_server_records_every_attempt_without_a_failed_request() {
    let Some(bin) = binary() else { return };
    let Some(fixture) = fixture() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
    let log = fixture.dir.join("llama-server.log");
    // Two slots of SmolLM2's whole 8,192-token context each (llama-server splits -c among them).
    let child = Command::new(&bin)
        .arg("-m")
        .arg(&fixture.gguf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-c", "16384", "-np", "2", "-t", "2"])
        .env("LD_LIBRARY_PATH", bin.parent().expect("a folder"))
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("a log file"))
        .spawn()
        .expect("llama-server runs");
    let mut process = LlamaServer(child);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while ureq::get(&format!("{base}/health")).call().is_err() {
        if let Some(status) = process.0.try_wait().expect("wait") {
            panic!("llama-server exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "llama-server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let out = fixture.scratch("llama-server");
    let url = format!("{base}/v1");
    let gguf = fixture.gguf.to_str().expect("a UTF-8 path");
    let template = fixture.gguf.parent().expect("the model folder").to_str().expect("a UTF-8 path");
    let args = ["--model", gguf, "--agent-model", &url, "--user-model", &url, "--server-template", template];
    let output = fixture.trajectories(&out, &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // Every attempt has its line: one per blueprint, verified or not.
    let lines: usize = RECORDS.iter().map(|name| std::fs::read_to_string(out.join(name)).unwrap_or_default().lines().count()).sum();
    let blueprints = std::fs::read_to_string(&fixture.blueprints).expect("blueprints").lines().count();
    assert_eq!(lines, blueprints, "one record per attempt");
    let servers = server_entries(&out);
    assert_eq!(servers.len(), 1, "{servers:?}");
    let server = &servers[0]["server"];
    assert_eq!(server["flavor"], "llama-server", "{server}");
    assert_eq!(server["failures"], 0, "{server}");
    assert!(server["requests"].as_u64() >= Some(blueprints as u64 * 2), "{server}");
    assert!(server["completion_tokens"].as_u64() > Some(0), "{server}");
}
