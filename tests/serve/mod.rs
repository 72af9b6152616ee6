//! `apigen-mt serve`, and inference servers as backends, against the real thing: the server is
//! the binary, started on a free loopback port with the real SmolLM2 GGUF; faults come from a
//! TCP proxy between the run and that server, never from a fake server.
//!
//! One Phase 2 run in process is the reference every backend run must reproduce: three
//! blueprints, one attempt each, two agent steps, no judge.

mod api;
mod backend;
mod faults;
mod llama_server;
mod openai_client;
mod proxy;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The files of a Phase 2 run that hold its records: verified, and every other attempt.
pub const RECORDS: [&str; 2] = ["trajectories.jsonl", "trajectories.rejected.jsonl"];

/// What every test here shares: the model, the inputs, and the in-process reference run.
pub struct Fixture {
    pub gguf: PathBuf,
    pub dir: PathBuf,
    pub blueprints: PathBuf,
    pub policy: PathBuf,
    pub reference: PathBuf,
}

/// The fixture, built once per test process; `None` (with a notice) where the model is absent.
pub fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let gguf = crate::support::smollm2_dir()?.join("model-q4_1.gguf");
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a scratch folder");
            let db = apigen_mt::env::generate::generate("retail", 0).expect("retail generates");
            let users = db["users"].as_object().expect("users");
            let lines: Vec<String> = users
                .iter()
                .take(3)
                .enumerate()
                .map(|(i, (id, user))| {
                    json!({"id": format!("lookup-{i}"), "instruction": format!("You are {id} and want to know the email address on your account."),
                           "actions": [{"name": "get_user_details", "kwargs": {"user_id": id}}],
                           "outputs": [user["email"]], "data_seed": 0})
                    .to_string()
                })
                .collect();
            let blueprints = dir.join("blueprints.jsonl");
            std::fs::write(&blueprints, lines.join("\n") + "\n").expect("blueprints");
            let policy = dir.join("policy.md");
            std::fs::write(&policy, "Help the customer with their retail account.\n").expect("policy");
            let fixture = Fixture { gguf, reference: dir.join("reference"), dir, blueprints, policy };
            let gguf = fixture.gguf.to_str().expect("a UTF-8 path");
            let output = fixture.trajectories(&fixture.reference, &["--model", gguf, "--concurrency", "2"]);
            assert!(output.status.success(), "the in-process reference run failed: {}", String::from_utf8_lossy(&output.stderr));
            Some(fixture)
        })
        .as_ref()
}

impl Fixture {
    /// The `trajectories` command of every run here, with `extra` (the models, the concurrency)
    /// added.
    pub fn command(&self, out: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_apigen-mt"));
        cmd.args(["trajectories", "--domain", "retail", "--blueprints"]).arg(&self.blueprints);
        cmd.arg("--policy").arg(&self.policy).arg("--out").arg(out);
        cmd.args(["--seed", "3", "--attempts", "1", "--best-of", "1", "--max-turns", "2"]);
        cmd.args(["--agent-max-tokens", "24", "--user-max-tokens", "16", "--judge-max-tokens", "12"]);
        cmd.args(extra).env("HF_HUB_OFFLINE", "1").stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    }

    pub fn trajectories(&self, out: &Path, extra: &[&str]) -> Output {
        self.command(out, extra).output().expect("the binary runs")
    }

    /// A fresh folder under the fixture's.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&path);
        path
    }

    /// Asserts that `out` holds the reference run's records: the same `trajectories.jsonl` and
    /// `trajectories.rejected.jsonl` byte for byte, and the same dataset records but for the config hash,
    /// which covers the backend.
    pub fn assert_same_records(&self, out: &Path) {
        for name in RECORDS {
            let read = |dir: &Path| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()));
            assert_eq!(read(out), read(&self.reference), "{name} differs from the in-process run");
        }
        for name in ["dataset.openai.jsonl", "dataset.sharegpt.jsonl"] {
            let records = |dir: &Path| -> Vec<Value> {
                let text = std::fs::read_to_string(dir.join(name)).expect("dataset file");
                text.lines()
                    .map(|l| {
                        let mut v: Value = serde_json::from_str(l).expect("JSON line");
                        v["metadata"].as_object_mut().map(|m| m.remove("config_hash"));
                        v
                    })
                    .collect()
            };
            assert_eq!(records(out), records(&self.reference), "{name} differs from the in-process run");
        }
        let lines: usize = RECORDS.iter().map(|name| std::fs::read_to_string(out.join(name)).unwrap_or_default().lines().count()).sum();
        assert!(lines >= 1, "the run recorded nothing");
    }
}

/// `apigen-mt serve` on a free loopback port; killed when dropped.
pub struct Serve {
    child: Child,
    /// `127.0.0.1:PORT`
    pub address: String,
    pub log: PathBuf,
}

impl Serve {
    pub fn start(fixture: &Fixture, name: &str, extra: &[&str]) -> Serve {
        let log = fixture.dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_apigen-mt"))
            .args(["serve", "--port", "0", "--model"])
            .arg(&fixture.gguf)
            .args(extra)
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("a log file"))
            .spawn()
            .expect("the binary runs");
        let mut serve = Serve { child, address: String::new(), log };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&serve.log).unwrap_or_default();
            if let Some(at) = text.find(" on http://") {
                let rest = &text[at + " on http://".len()..];
                serve.address = rest.split('/').next().unwrap_or_default().to_string();
                return serve;
            }
            if let Some(status) = serve.child.try_wait().expect("wait") {
                panic!("serve exited ({status}) before listening: {text}");
            }
            assert!(started.elapsed() < Duration::from_secs(120), "serve did not start: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crashed server.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `timing.engines[]` entries of a run's stats.json that name a server.
pub fn server_entries(out: &Path) -> Vec<Value> {
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(out.join("stats.json")).expect("stats.json")).expect("JSON");
    stats["timing"]["engines"].as_array().into_iter().flatten().filter(|e| e.get("server").is_some()).cloned().collect()
}
