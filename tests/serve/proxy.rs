//! A small fault-injecting TCP proxy between a run and a real `apigen-mt serve`: it forwards
//! each HTTP request on its own upstream connection, except those it is told to answer with a 500
//! or to hold without answering (so the client times out). Requests that reach no upstream (the
//! server was killed) lose their connection, as they would without the proxy.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to do with one generation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer `500 Internal Server Error` without forwarding.
    Status500,
    /// Read the request and never answer, until the client gives up.
    Stall,
}

type Condition = Box<dyn Fn() -> bool + Send>;

struct State {
    upstream: Mutex<String>,
    /// Faults by the number of the generation request (`POST .../completions`) they hit, from 1.
    faults: Mutex<HashMap<usize, Fault>>,
    generations: AtomicUsize,
    injected: AtomicUsize,
    stop: AtomicBool,
    /// Generation requests made while this says so wait until `release` (see `hold_when`).
    hold: Mutex<Option<Condition>>,
    held: AtomicUsize,
    released: AtomicBool,
}

pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
}

impl Proxy {
    /// A proxy on a free loopback port, forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str, faults: &[(usize, Fault)]) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(State {
            upstream: Mutex::new(upstream.to_string()),
            faults: Mutex::new(faults.iter().copied().collect()),
            generations: AtomicUsize::new(0),
            injected: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            hold: Mutex::new(None),
            held: AtomicUsize::new(0),
            released: AtomicBool::new(false),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = handle(client, &shared);
                });
            }
        });
        Proxy { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Points the proxy at another server (a restarted one).
    pub fn set_upstream(&self, upstream: &str) {
        *self.state.upstream.lock().unwrap() = upstream.to_string();
    }

    /// Holds every generation request made while `condition` is true until [`Proxy::release`]:
    /// a test can then act at a known point of a run, whatever the machine's speed.
    pub fn hold_when(&self, condition: impl Fn() -> bool + Send + 'static) {
        *self.state.hold.lock().unwrap() = Some(Box::new(condition));
    }

    /// Requests held so far.
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Lets held requests go on (to whatever upstream is set then), and holds no more.
    pub fn release(&self) {
        self.state.released.store(true, Ordering::SeqCst);
    }

    /// Faults actually injected.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One request: read it, then fault, or forward it with `Connection: close` and relay the answer.
fn handle(client: TcpStream, state: &State) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.push(line);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request_line = head.first().cloned().unwrap_or_default();
    let generation = request_line.starts_with("POST") && request_line.contains("completions");
    if generation {
        let number = state.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = state.faults.lock().unwrap().remove(&number);
        match fault {
            Some(Fault::Status500) => {
                state.injected.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"error": {"message": "injected by the test proxy", "type": "server_error"}}"#;
                let answer = format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut client = client;
                client.write_all(answer.as_bytes())?;
                return client.shutdown(Shutdown::Both);
            }
            Some(Fault::Stall) => {
                state.injected.fetch_add(1, Ordering::SeqCst);
                // Hold the connection until the client closes it (its timeout), or two minutes.
                let started = Instant::now();
                client.set_read_timeout(Some(Duration::from_millis(200)))?;
                let mut scratch = [0u8; 64];
                while started.elapsed() < Duration::from_secs(120) {
                    match (&client).read(&mut scratch) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                        Err(_) => break,
                    }
                }
                return Ok(());
            }
            None => {}
        }
    }
    let holding =
        generation && !state.released.load(Ordering::SeqCst) && state.hold.lock().unwrap().as_ref().is_some_and(|condition| condition());
    if holding {
        state.held.fetch_add(1, Ordering::SeqCst);
        while !state.released.load(Ordering::SeqCst) && !state.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let upstream_address = state.upstream.lock().unwrap().clone();
    // No server: the client's connection just closes, as a refused connection would fail.
    let Ok(mut upstream) = TcpStream::connect(&upstream_address) else { return client.shutdown(Shutdown::Both) };
    let mut forwarded = head.concat();
    forwarded.push_str("Connection: close\r\n\r\n");
    upstream.write_all(forwarded.as_bytes())?;
    upstream.write_all(&body)?;
    let mut client = client;
    std::io::copy(&mut upstream, &mut client)?;
    client.shutdown(Shutdown::Both)
}
