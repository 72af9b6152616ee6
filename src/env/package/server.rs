//! One tool-server process and the JSON-RPC 2.0 exchange with it, as MCP's stdio transport
//! frames it: one JSON message per line on the server's stdin and stdout, requests answered
//! in order, stderr free for the server's own logging (kept in a log file).
//!
//! Why framing of our own instead of an MCP client crate: the exchange is synchronous (a
//! session is driven from one pipeline thread, one request at a time), it needs methods beyond
//! MCP (`env/reset`, `env/state`, `env/check`), and it must put a deadline on every answer and
//! kill the process that misses it. serde_json reads and writes the messages; what remains is
//! a line per message and a reader thread, so the deadline is a channel's `recv_timeout`.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The MCP protocol version the client asks for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// JSON-RPC's "method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// The command, then its arguments.
    pub command: Vec<String>,
    /// The package folder: the server's working directory.
    pub dir: PathBuf,
    pub timeout: Duration,
    /// The file the server's stderr is appended to; `None`: this process's stderr.
    pub log: Option<PathBuf>,
}

/// Why a request got no usable answer. Every fault but [`Fault::Rpc`] leaves the server in an
/// unknown state: the caller drops it (which kills it) and starts another.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The server exited, or closed its output.
    Died(String),
    /// No answer within the timeout.
    Timeout(Duration),
    /// An answer that is not a JSON-RPC response to the request.
    Garbage(String),
    /// A JSON-RPC error response: the server is fine, the request was refused.
    Rpc { code: i64, message: String },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Died(how) => write!(f, "the tool server died ({how})"),
            Fault::Timeout(t) => write!(f, "the tool server did not answer within {:.1}s", t.as_secs_f64()),
            Fault::Garbage(what) => write!(f, "the tool server answered garbage: {what}"),
            Fault::Rpc { code, message } => write!(f, "the tool server refused the request ({code}): {message}"),
        }
    }
}

/// A running server, initialized.
pub struct Server {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<std::io::Result<String>>,
    next_id: u64,
    timeout: Duration,
    /// What `initialize` returned.
    pub info: Value,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("pid", &self.child.id()).finish()
    }
}

impl Server {
    /// Starts the server and runs MCP's handshake (`initialize`, then the `initialized`
    /// notification). The error says what went wrong, for a message that stops the run.
    pub fn start(spec: &Spawn) -> Result<Server, String> {
        let program = resolve_program(&spec.command[0], &spec.dir);
        let stderr = match &spec.log {
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("opening the server log {}: {e}", path.display()))?;
                Stdio::from(file)
            }
            None => Stdio::inherit(),
        };
        let mut child = Command::new(&program)
            .args(&spec.command[1..])
            .current_dir(&spec.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting `{}` in {}: {e}", spec.command.join(" "), spec.dir.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the server's stdin or stdout could not be opened".into());
        };
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if sender.send(line).is_err() || end {
                    break;
                }
            }
        });
        let mut server = Server { child, stdin, lines, next_id: 0, timeout: spec.timeout, info: Value::Null };
        let hello = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "apigen-mt", "version": env!("CARGO_PKG_VERSION")},
        });
        let info = server.request("initialize", hello).map_err(|e| format!("`initialize`: {e}"))?;
        if !info.is_object() {
            return Err(format!("`initialize` must return an object, got {info}"));
        }
        server.notify("notifications/initialized").map_err(|e| format!("`notifications/initialized`: {e}"))?;
        server.info = info;
        Ok(server)
    }

    /// Sends a request and waits for its answer, at most the timeout.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Fault> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(Ok(line)) => line,
                Ok(Err(e)) => return Err(Fault::Died(format!("reading its output: {e}"))),
                Err(RecvTimeoutError::Timeout) => return Err(Fault::Timeout(self.timeout)),
                Err(RecvTimeoutError::Disconnected) => return Err(Fault::Died(self.exit_status())),
            };
            if line.trim().is_empty() {
                continue;
            }
            let message: Value = serde_json::from_str(&line).map_err(|_| Fault::Garbage(format!("not JSON: {}", excerpt(&line))))?;
            // A notification (no id) from the server, such as a log message, is not the answer.
            if message.get("id").is_none() && message.get("method").is_some() {
                continue;
            }
            if message.get("jsonrpc") != Some(&json!("2.0")) || message.get("id") != Some(&json!(id)) {
                return Err(Fault::Garbage(format!("not the JSON-RPC 2.0 response to request {id}: {}", excerpt(&line))));
            }
            if let Some(error) = message.get("error") {
                let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
                let text = error.get("message").and_then(Value::as_str).unwrap_or("").to_string();
                return Err(Fault::Rpc { code, message: text });
            }
            return match message.get("result") {
                Some(result) => Ok(result.clone()),
                None => Err(Fault::Garbage(format!("a response with neither result nor error: {}", excerpt(&line)))),
            };
        }
    }

    fn notify(&mut self, method: &str) -> Result<(), Fault> {
        self.send(&json!({"jsonrpc": "2.0", "method": method}))
    }

    fn send(&mut self, message: &Value) -> Result<(), Fault> {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).and_then(|()| self.stdin.flush()).map_err(|_| Fault::Died(self.exit_status()))
    }

    /// How the process ended, waiting a moment for it to finish dying.
    fn exit_status(&mut self) -> String {
        for _ in 0..20 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.to_string();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        "it closed its output".into()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relative program path with a `/` (`./server`, `bin/serve`) is the package's; a bare name is
/// looked up on `PATH`.
fn resolve_program(program: &str, dir: &Path) -> PathBuf {
    let path = Path::new(program);
    if path.is_relative() && program.contains('/') {
        dir.join(path)
    } else {
        path.to_path_buf()
    }
}

/// The start of a line, for error messages.
fn excerpt(line: &str) -> String {
    let cut: String = line.chars().take(120).collect();
    if cut.len() < line.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}
