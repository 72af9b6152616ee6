//! JSON over HTTP to one server, with the fault rule every process a run depends on follows:
//! timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter a
//! bounded number of times, then the server counts as unavailable; any other 4xx is an answer
//! about the request itself and is not retried.
//!
//! Generations are streamed (server-sent events), so the timeout bounds the silence between two
//! pieces of an answer, not the answer's length: a long generation on a busy server goes on as
//! long as tokens (or keep-alive comments) arrive, while a server that hangs is given up on after
//! the timeout. The events are collected and handed over whole, so a retry never leaves half an
//! answer behind.
//!
//! The client also bounds the requests in flight (a server has its own queue; ours must not flood
//! it) and keeps the counts `stats.json` reports.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use serde_json::Value;

use crate::engine::EngineError;

/// How much of an error body goes into a message.
const BODY_HEAD: usize = 400;
/// The first retry waits about this long; each further one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A failed call.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The server answered with a status that is about the request (4xx but 408 and 429).
    Request { status: u16, body: String },
    /// Every try ended in a timeout, a connection error, a 408, a 429 or a 5xx.
    Unavailable(String),
}

impl Failure {
    /// As an engine error: the request's own fault fails its attempt, an unreachable server stops
    /// the run. `what` names the server and call.
    pub fn into_engine_error(self, what: &str) -> EngineError {
        match self {
            Failure::Request { status, body } => EngineError::Backend(format!("backend_error: {what}: HTTP {status}: {body}")),
            Failure::Unavailable(reason) => EngineError::Unavailable(format!("{what}: {reason}")),
        }
    }
}

/// What one server has been asked, for `stats.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ClientMetrics {
    /// Calls made (each counted once however often it was retried).
    pub requests: u64,
    /// Extra tries after a retryable fault.
    pub retries: u64,
    /// Calls that failed for good: refused (4xx) or unavailable.
    pub failures: u64,
    /// Mean and longest time of a successful call, retries included.
    pub latency_mean_seconds: f64,
    pub latency_max_seconds: f64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
    succeeded: AtomicU64,
    latency_nanos: AtomicU64,
    latency_max_nanos: AtomicU64,
}

/// A counting semaphore: the requests in flight to one server.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// A client of one server's base URL.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    api_key: Option<String>,
    retries: usize,
    slots: Slots,
    counters: Counters,
}

impl Client {
    /// `base` is the URL requests' paths are appended to (`http://host:8000/v1`); `timeout` bounds
    /// connecting, sending, and each wait for more of the answer.
    pub fn new(base: &str, api_key: Option<String>, timeout: Duration, max_in_flight: usize, retries: usize) -> Self {
        let agent = ureq::AgentBuilder::new().timeout_connect(timeout).timeout_read(timeout).timeout_write(timeout).build();
        Self {
            base: base.trim_end_matches('/').to_string(),
            agent,
            api_key,
            retries,
            slots: Slots { free: Mutex::new(max_in_flight.max(1)), freed: Condvar::new() },
            counters: Counters::default(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `path`: relative to the base (`models`), or to the server's root (`/props`).
    pub fn url(&self, path: &str) -> String {
        match path.strip_prefix('/') {
            Some(root) => {
                let scheme_end = self.base.find("://").map_or(0, |i| i + 3);
                let host_end = self.base[scheme_end..].find('/').map_or(self.base.len(), |i| scheme_end + i);
                format!("{}/{root}", &self.base[..host_end])
            }
            None => format!("{}/{path}", self.base),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(path, None, self.retries).map(single)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(path, Some(body), self.retries).map(single)
    }

    /// A POST tried once, for probes whose failure is an answer: it is left out of the metrics,
    /// so that a server which answers a probe with 400 does not show a failed request.
    pub fn post_once(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call_as(path, Some(body), 0, false).map(single)
    }

    /// A POST whose answer may be a stream of server-sent events (`"stream": true`): the events'
    /// JSON payloads in order, or the one JSON answer of a server that does not stream.
    pub fn post_events(&self, path: &str, body: &Value) -> Result<Vec<Value>, Failure> {
        self.call(path, Some(body), self.retries)
    }

    /// One call, retried `retries` times under the fault rule; the answer parsed as JSON.
    fn call(&self, path: &str, body: Option<&Value>, retries: usize) -> Result<Vec<Value>, Failure> {
        self.call_as(path, body, retries, true)
    }

    /// [`Self::call`], counted in the metrics or not.
    fn call_as(&self, path: &str, body: Option<&Value>, retries: usize, counted: bool) -> Result<Vec<Value>, Failure> {
        let _slot = self.slots.acquire();
        let url = self.url(path);
        if counted {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
        }
        let start = Instant::now();
        let mut tries = 0;
        let result = loop {
            tries += 1;
            let fault = match self.send(&url, body) {
                Ok(value) => break Ok(value),
                Err(Attempt::Final(failure)) => break Err(failure),
                Err(Attempt::Retry { reason, wait }) => (reason, wait),
            };
            if tries > retries {
                let tries = if tries == 1 { "1 try".to_string() } else { format!("{tries} tries") };
                break Err(Failure::Unavailable(format!("{url}: {} (gave up after {tries})", fault.0)));
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let wait = fault.1.unwrap_or_else(|| backoff(tries));
            // Said on stderr as it happens: a server that keeps failing is the user's to look at.
            eprintln!("warning: {url}: {}; retry {tries} of {retries} in {:.1} s", fault.0, wait.as_secs_f64());
            std::thread::sleep(wait);
        };
        match &result {
            _ if !counted => {}
            Ok(_) => {
                let nanos = start.elapsed().as_nanos() as u64;
                self.counters.succeeded.fetch_add(1, Ordering::Relaxed);
                self.counters.latency_nanos.fetch_add(nanos, Ordering::Relaxed);
                self.counters.latency_max_nanos.fetch_max(nanos, Ordering::Relaxed);
            }
            Err(_) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// One try.
    fn send(&self, url: &str, body: Option<&Value>) -> Result<Vec<Value>, Attempt> {
        let request = match body {
            Some(_) => self.agent.post(url),
            None => self.agent.get(url),
        };
        let request = match &self.api_key {
            Some(key) => request.set("Authorization", &format!("Bearer {key}")),
            None => request,
        };
        let response = match body {
            Some(body) => request.set("Content-Type", "application/json").send_string(&body.to_string()),
            None => request.call(),
        };
        match response {
            Ok(response) if response.content_type() == "text/event-stream" => read_events(response),
            Ok(response) => {
                let text = response.into_string().map_err(|e| Attempt::Retry { reason: format!("reading the answer: {e}"), wait: None })?;
                serde_json::from_str(&text).map(|v| vec![v]).map_err(|e| {
                    // A 200 that is not JSON is a server fault, not the request's.
                    Attempt::Retry { reason: format!("the answer is not JSON ({e}): {}", head(&text)), wait: None }
                })
            }
            Err(ureq::Error::Status(status, response)) => {
                let wait = response
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                let body = head(&response.into_string().unwrap_or_default());
                if status == 408 || status == 429 || status >= 500 {
                    Err(Attempt::Retry { reason: format!("HTTP {status}: {body}"), wait })
                } else {
                    Err(Attempt::Final(Failure::Request { status, body }))
                }
            }
            Err(ureq::Error::Transport(error)) => Err(Attempt::Retry { reason: transport(&error), wait: None }),
        }
    }

    pub fn metrics(&self) -> ClientMetrics {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let succeeded = get(&c.succeeded);
        ClientMetrics {
            requests: get(&c.requests),
            retries: get(&c.retries),
            failures: get(&c.failures),
            latency_mean_seconds: if succeeded == 0 { 0.0 } else { get(&c.latency_nanos) as f64 / succeeded as f64 / 1e9 },
            latency_max_seconds: get(&c.latency_max_nanos) as f64 / 1e9,
        }
    }
}

/// The answer of a call that is one JSON value.
fn single(mut values: Vec<Value>) -> Value {
    values.pop().unwrap_or(Value::Null)
}

/// A transport error in a few words ("timed out reading response", "Connection refused"): the
/// URL is said once by the caller.
fn transport(error: &ureq::Transport) -> String {
    use std::error::Error as _;
    let io = error.source().and_then(|e| e.downcast_ref::<std::io::Error>());
    // A socket read or write that outlasts the timeout is an I/O error of kind TimedOut (or
    // WouldBlock, as Linux reports SO_RCVTIMEO); ureq calls it a network error.
    if io.is_some_and(|e| matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)) {
        return "timed out: the server sent nothing within the request timeout".into();
    }
    let kind = error.kind().to_string();
    match (error.message(), io) {
        (Some(message), _) => format!("{kind}: {message}"),
        (None, Some(io)) => format!("{kind}: {io}"),
        (None, None) => kind,
    }
}

/// The JSON payloads of a server-sent event stream, up to `data: [DONE]`. An event that carries
/// an `error` ends the call: as the request's fault when the server says the request was invalid,
/// else as a fault to retry. A stream that breaks off before `[DONE]` is retried.
fn read_events(response: ureq::Response) -> Result<Vec<Value>, Attempt> {
    let mut events = Vec::new();
    for line in BufReader::new(response.into_reader()).lines() {
        let line = line.map_err(|e| Attempt::Retry { reason: format!("reading the stream: {e}"), wait: None })?;
        let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
        if data == "[DONE]" {
            return Ok(events);
        }
        let event: Value = serde_json::from_str(data)
            .map_err(|e| Attempt::Retry { reason: format!("an event is not JSON ({e}): {}", head(data)), wait: None })?;
        if let Some(error) = event.get("error") {
            let body = head(&error.to_string());
            let invalid = error["type"] == "invalid_request_error" || error["code"].as_u64().is_some_and(|c| (400..500).contains(&c));
            return Err(if invalid {
                Attempt::Final(Failure::Request { status: error["code"].as_u64().unwrap_or(400) as u16, body })
            } else {
                Attempt::Retry { reason: format!("the stream ended in an error: {body}"), wait: None }
            });
        }
        events.push(event);
    }
    Err(Attempt::Retry { reason: "the stream ended before [DONE]".into(), wait: None })
}

/// How one try ended, when not with an answer.
enum Attempt {
    Retry { reason: String, wait: Option<Duration> },
    Final(Failure),
}

/// The wait before retry `n` (from 1): doubling from [`FIRST_BACKOFF`] up to [`MAX_BACKOFF`],
/// scaled by a random factor in [0.5, 1.5) so that many clients do not retry in step.
fn backoff(n: usize) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1u32 << (n - 1).min(16)).min(MAX_BACKOFF);
    base.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// The start of a body, on one line.
pub fn head(text: &str) -> String {
    let flat: String = text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match flat.char_indices().nth(BODY_HEAD) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        for n in 1..8 {
            let wait = backoff(n);
            let base = FIRST_BACKOFF.saturating_mul(1 << (n - 1)).min(MAX_BACKOFF);
            assert!(wait >= base.mul_f64(0.5) && wait < base.mul_f64(1.5), "{n}: {wait:?}");
        }
        assert!(backoff(40) < MAX_BACKOFF.mul_f64(1.5));
    }

    #[test]
    fn paths_resolve_against_the_base_or_the_root() {
        let client = Client::new("http://h:8/v1/", None, Duration::from_secs(1), 1, 0);
        assert_eq!(client.url("models"), "http://h:8/v1/models");
        assert_eq!(client.url("/props"), "http://h:8/props");
        assert_eq!(head(&"x".repeat(1000)).chars().count(), BODY_HEAD + 1);
    }

    #[test]
    fn a_closed_port_is_unavailable_after_the_retries() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = Client::new(&format!("http://127.0.0.1:{port}/v1"), None, Duration::from_secs(2), 1, 1);
        let err = client.get("models").unwrap_err();
        assert!(matches!(&err, Failure::Unavailable(m) if m.contains("2 tries")), "{err:?}");
        let m = client.metrics();
        assert_eq!((m.requests, m.retries, m.failures), (1, 1, 1));
        // A probe's failure is an answer, not a failed request of the run.
        assert!(client.post_once("completions", &serde_json::json!({})).is_err());
        assert_eq!(client.metrics(), m);
    }
}
