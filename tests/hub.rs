//! Hub downloads against a small local server that speaks the part of the Hugging Face Hub
//! protocol hf-hub uses: the repo listing (`/api/models/<repo>/revision/<rev>`), file resolution
//! (`/<repo>/resolve/<rev>/<file>`) answered with `etag`/`x-linked-etag` and `x-repo-commit`,
//! range requests, and the redirect of large files to a content server. The HF environment is
//! passed to `HubConfig::from_vars`, never set on the process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use apigen_mt::engine::loaded::{LoadOptions, LoadedModel};
use apigen_mt::engine::EngineConfig;
use apigen_mt::engine::{FinishReason, Prompt, Request, SamplingParams};
use apigen_mt::model::source::{resolve, HubConfig};
use apigen_mt::model::WeightsSource;
use sha2::{Digest, Sha256};

/// A repo the server holds: its files at one commit, and the token it demands, if gated.
struct Repo {
    commit: String,
    files: Vec<(String, Vec<u8>)>,
    token: Option<String>,
}

impl Repo {
    /// Every file of a local folder.
    fn from_dir(dir: &Path, commit: &str, token: Option<&str>) -> Self {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_str().unwrap().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        Repo { commit: commit.into(), files, token: token.map(String::from) }
    }

    fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, bytes)| bytes.as_slice())
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
}

/// The hub at `http://127.0.0.1:<port>`, serving until dropped.
struct FakeHub {
    address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl FakeHub {
    fn start(repos: HashMap<String, Repo>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let hub = FakeHub { address: address.clone(), seen: seen.clone(), stop: stop.clone() };
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream, &repos, &address, &seen);
                }
            }
        });
        hub
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.address.trim_start_matches("http://"));
    }
}

/// Answers one request, then closes the connection.
fn serve(stream: TcpStream, repos: &HashMap<String, Repo>, address: &str, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    seen.lock().unwrap().push(Seen { path: path.clone(), authorization: headers.get("authorization").cloned() });
    let response = route(&path, &headers, repos, address);
    let _ = respond(stream, response);
}

struct Response {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn response(status: &'static str, body: impl Into<Vec<u8>>) -> Response {
    Response { status, headers: Vec::new(), body: body.into() }
}

fn respond(mut stream: TcpStream, r: Response) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n", r.status, r.body.len());
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&r.body)?;
    stream.flush()
}

/// The bytes a `Range: bytes=a-` or `bytes=a-b` header asks for, as a 206 answer.
fn ranged(bytes: &[u8], headers: &HashMap<String, String>) -> Response {
    let Some(range) = headers.get("range").and_then(|r| r.strip_prefix("bytes=")) else {
        return response("200 OK", bytes);
    };
    let (start, end) = range.split_once('-').unwrap();
    let start: usize = start.parse().unwrap();
    let end: usize = if end.is_empty() { bytes.len() - 1 } else { end.parse::<usize>().unwrap().min(bytes.len() - 1) };
    let mut r = response("206 Partial Content", &bytes[start..=end]);
    r.headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{}", bytes.len())));
    r
}

/// Large files go through the content server, as the Hub sends LFS files to its CDN.
fn is_large(name: &str) -> bool {
    name.ends_with(".safetensors") || name.ends_with(".gguf")
}

fn route(path: &str, headers: &HashMap<String, String>, repos: &HashMap<String, Repo>, address: &str) -> Response {
    // The content server: addressed by hash, no token needed (the Hub signs these URLs).
    if let Some(hash) = path.strip_prefix("/cdn/") {
        let file = repos.values().flat_map(|r| &r.files).find(|(_, bytes)| sha256(bytes) == hash);
        return match file {
            Some((_, bytes)) => ranged(bytes, headers),
            None => response("404 Not Found", "no such blob"),
        };
    }
    let (repo_name, rest, listing) = match path.strip_prefix("/api/models/") {
        Some(rest) => match rest.split_once("/revision/") {
            Some((repo, revision)) => (repo, revision, true),
            None => return response("404 Not Found", "bad api path"),
        },
        None => match path[1..].split_once("/resolve/") {
            Some((repo, rest)) => (repo, rest, false),
            None => return response("404 Not Found", "bad path"),
        },
    };
    let Some(repo) = repos.get(repo_name) else {
        // The Hub does not tell a missing repo from a private one.
        return response("401 Unauthorized", r#"{"error":"Repository not found"}"#);
    };
    if let Some(token) = &repo.token {
        if headers.get("authorization") != Some(&format!("Bearer {token}")) {
            return response("401 Unauthorized", r#"{"error":"Access to this model is restricted"}"#);
        }
    }
    if listing {
        let siblings: Vec<_> = repo.files.iter().map(|(name, _)| serde_json::json!({"rfilename": name})).collect();
        let body = serde_json::json!({"id": repo_name, "sha": repo.commit, "siblings": siblings});
        return response("200 OK", body.to_string());
    }
    let file_name = rest.split_once('/').map_or("", |(_, f)| f);
    let Some(bytes) = repo.file(file_name) else {
        return response("404 Not Found", "Entry not found");
    };
    let hash = sha256(bytes);
    let mut r = if is_large(file_name) {
        let mut r = response("302 Found", "");
        r.headers.push(("Location".into(), format!("{address}/cdn/{hash}")));
        r.headers.push(("X-Linked-Etag".into(), format!("\"{hash}\"")));
        r.headers.push(("ETag".into(), "\"git-pointer-etag\"".into()));
        r
    } else {
        let mut r = ranged(bytes, headers);
        r.headers.push(("ETag".into(), format!("\"{hash}\"")));
        r
    };
    r.headers.push(("X-Repo-Commit".into(), repo.commit.clone()));
    r
}

/// The HF environment of a test, as `HubConfig::from_vars` reads it.
fn hub_config(vars: &[(&str, &str)], offline: bool) -> HubConfig {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    HubConfig::from_vars(offline, |name| vars.get(name).cloned()).unwrap()
}

/// ureq sends even 127.0.0.1 through a proxy named in the environment (it has no NO_PROXY).
fn proxy_in_the_way() -> bool {
    let proxied = ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()));
    if proxied {
        eprintln!("skipped: a proxy is set in the environment and would receive the local hub's requests");
    }
    proxied
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn a_hub_model_downloads_into_the_cache_loads_and_then_resolves_offline() {
    if proxy_in_the_way() {
        return;
    }
    let model_dir = tempfile::tempdir().unwrap();
    crate::engine::tiny_model(model_dir.path());
    let repo = Repo::from_dir(model_dir.path(), COMMIT, None);
    let hub = FakeHub::start(HashMap::from([("tiny-org/tiny-llama".to_string(), repo)]));
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().to_str().unwrap();
    let online = hub_config(&[("HF_HOME", home_path), ("HF_ENDPOINT", &format!("{}/", hub.address))], false);
    assert_eq!(online.cache_dir, home.path().join("hub"));
    assert!(online.token.is_none() && !online.offline);

    // Download through the whole loader, then generate: the files arrived intact.
    let options = LoadOptions { hub: online, ..LoadOptions::from_env(true).unwrap() };
    let model = LoadedModel::load("tiny-org/tiny-llama", &options).unwrap_or_else(|e| panic!("{e:#}"));
    let engine = apigen_mt::engine::start(model, EngineConfig::default()).unwrap();
    let request = Request::new(Prompt::Text("hello".into())).sampling(SamplingParams::greedy()).max_tokens(4);
    let completion = engine.generate(request).unwrap();
    assert_ne!(completion.finish_reason, FinishReason::Error, "{completion:?}");
    let requests = hub.requests();
    assert!(requests.iter().any(|r| r.path.starts_with("/cdn/")), "the weights came through the redirect: {requests:?}");
    assert!(requests.iter().all(|r| r.authorization.is_none()), "no token, no header");

    // The standard cache layout: refs/main names the commit; snapshot files link to blobs
    // named by their etag.
    let repo_dir = home.path().join("hub").join("models--tiny-org--tiny-llama");
    assert_eq!(std::fs::read_to_string(repo_dir.join("refs").join("main")).unwrap(), COMMIT);
    let snapshot = repo_dir.join("snapshots").join(COMMIT);
    for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        let original = std::fs::read(model_dir.path().join(name)).unwrap();
        let cached = snapshot.join(name);
        assert_eq!(std::fs::read(&cached).unwrap(), original, "{name}");
        let blob = repo_dir.join("blobs").join(sha256(&original));
        assert_eq!(std::fs::read(&blob).unwrap(), original, "{name} is stored as its blob");
    }

    // Offline, from the cache alone: the same files, and not one request more.
    let before = hub.requests().len();
    let offline = hub_config(&[("HF_HOME", home_path), ("HF_HUB_OFFLINE", "1"), ("HF_ENDPOINT", &hub.address)], false);
    assert!(offline.offline);
    let resolved = resolve("tiny-org/tiny-llama", &offline).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        resolved.files.weights,
        WeightsSource::Safetensors { config: snapshot.join("config.json"), files: vec![snapshot.join("model.safetensors")] }
    );
    assert_eq!(resolved.files.tokenizer, Some(snapshot.join("tokenizer.json")));
    assert_eq!(hub.requests().len(), before, "offline mode must not touch the network");

    // Offline misses name the repo and the file.
    let err = format!("{:#}", resolve("tiny-org/never-downloaded:model-q4.gguf", &offline).unwrap_err());
    assert!(err.contains("tiny-org/never-downloaded") && err.contains("model-q4.gguf") && err.contains("offline"), "{err}");
    let err = format!("{:#}", resolve("tiny-org/tiny-llama:model-q4.gguf", &offline).unwrap_err());
    assert!(err.contains("tiny-org/tiny-llama") && err.contains("no file model-q4.gguf") && err.contains("offline"), "{err}");
    assert_eq!(hub.requests().len(), before);

    // Online, a file the repo does not have is named with the files it does have.
    let online = hub_config(&[("HF_HOME", home_path), ("HF_ENDPOINT", &hub.address)], false);
    let err = format!("{:#}", resolve("tiny-org/tiny-llama:model-q4.gguf", &online).unwrap_err());
    assert!(err.contains("hub repo tiny-org/tiny-llama") && err.contains("no file model-q4.gguf"), "{err}");
}

#[test]
fn a_gated_repo_needs_hf_token_and_receives_it_as_a_bearer_header() {
    if proxy_in_the_way() {
        return;
    }
    let model_dir = tempfile::tempdir().unwrap();
    crate::engine::tiny_model(model_dir.path());
    let token = "hf_test_not_a_real_token";
    let repo = Repo::from_dir(model_dir.path(), COMMIT, Some(token));
    let hub = FakeHub::start(HashMap::from([("gated-org/tiny".to_string(), repo)]));
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().to_str().unwrap();

    let anonymous = hub_config(&[("HF_HOME", home_path), ("HF_ENDPOINT", &hub.address)], false);
    let err = format!("{:#}", resolve("gated-org/tiny", &anonymous).unwrap_err());
    assert!(err.contains("gated-org/tiny") && err.contains("HF_TOKEN") && err.contains("status code 401"), "{err}");
    assert_eq!(err.matches("status code 401").count(), 1, "said once: {err}");

    let wrong = hub_config(&[("HF_HOME", home_path), ("HF_ENDPOINT", &hub.address), ("HF_TOKEN", "hf_wrong")], false);
    let err = format!("{:#}", resolve("gated-org/tiny", &wrong).unwrap_err());
    assert!(err.contains("refused the token in HF_TOKEN"), "{err}");

    let before = hub.requests().len();
    let authorized = hub_config(&[("HF_HOME", home_path), ("HF_ENDPOINT", &hub.address), ("HF_TOKEN", token)], false);
    assert_eq!(authorized.token.as_deref(), Some(token));
    let resolved = resolve("gated-org/tiny", &authorized).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(matches!(resolved.files.weights, WeightsSource::Safetensors { .. }));
    let hub_requests: Vec<Seen> = hub.requests()[before..].iter().filter(|r| !r.path.starts_with("/cdn/")).cloned().collect();
    assert!(hub_requests.iter().any(|r| r.path.contains("/resolve/main/model.safetensors")), "{hub_requests:?}");
    for r in &hub_requests {
        assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {token}").as_str()), "{}", r.path);
    }

    // The token file under HF_HOME serves when HF_TOKEN is unset.
    std::fs::write(home.path().join("token"), format!("{token}\n")).unwrap();
    let from_file = hub_config(&[("HF_HOME", home_path), ("HF_ENDPOINT", &hub.address)], false);
    assert_eq!(from_file.token.as_deref(), Some(token));
}
