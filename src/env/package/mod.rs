//! Environment packages: a folder a user writes (`env.toml`, `data/`, a policy document,
//! optionally `examples.jsonl`) and a tool server, any program speaking JSON-RPC 2.0 over stdio
//! (README, "Writing an environment"). [`Package`] implements [`Environment`] through it.
//!
//! - **Tools** come from the server's `tools/list`; their kind from `[hints]` in `env.toml`, else
//!   from MCP's `readOnlyHint` annotation (a tool without it is a write, as MCP assumes).
//! - **Data**: `generate(seed)` returns the tables of `data/` whatever the seed: a package's world
//!   is the one its author wrote, and a seed only picks users and tasks in it.
//! - **Graph**: each read tool is called once on the package's data (with the first value the
//!   data holds for each required argument). A read tool yields an argument when its output has
//!   a key of that name, or a string that the data holds under that name (an output listing
//!   `"L0001"` yields `loan_id`). A required argument some other tool yields comes from an
//!   earlier output; otherwise the user says it. `hints.dataflow` overrides this per tool.
//! - **Policy rules** come from the server's optional `env/check`.
//! - **Servers**: a pool. A session takes an idle server (or starts one), resets it to its
//!   tables and gives it back when it ends, so there are as many processes as sessions open at
//!   once (the run's concurrency, plus one for rule checks). A server that crashes, hangs past
//!   `timeout_secs` or answers garbage fails that one call with an `env_error` naming it, and is
//!   killed; the next session starts a fresh one. A server that cannot start is fatal: the run
//!   stops. Servers' stderr goes to `env-server.log` in the run directory ([`Environment::log_to`]).

pub mod manifest;
pub mod server;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::environment::{EnvError, Environment, Session, ToolInfo};
use super::graph::{Dataflow, GraphHints, Source};
use super::policy::Violation;
use super::{check_args, Action, Db, Subjects, ToolKind, ToolResult};
use crate::seeds::sha256_hex;
use manifest::{Manifest, FILE};
use server::{Fault, Server, Spawn, METHOD_NOT_FOUND};

/// The name of the tool servers' log in a run directory.
pub const LOG: &str = "env-server.log";

/// What a run records of the package it used: its content, by file, and (unhashed) where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageRef {
    /// Where the package was; a moved package is the same package.
    pub path: String,
    /// SHA-256 of each file, by its path in the package: a resumed run that finds one changed
    /// names it.
    pub files: BTreeMap<String, String>,
    /// SHA-256 of `files`.
    pub hash: String,
}

/// An environment package, loaded: its description, data and tools, and its idle servers.
pub struct Package {
    dir: PathBuf,
    manifest: Manifest,
    tables: Vec<String>,
    data: Db,
    tools: Vec<ToolInfo>,
    policy: String,
    examples: String,
    graph: GraphHints,
    subjects: Subjects,
    content: PackageRef,
    idle: Mutex<Vec<Server>>,
    log: Mutex<Option<PathBuf>>,
    /// The server answered `env/check` with "method not found": the package has no rules.
    no_rules: AtomicBool,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package").field("name", &self.manifest.name).field("dir", &self.dir).finish()
    }
}

impl Package {
    /// Loads the package in `dir`: reads and checks `env.toml`, the tables and the policy,
    /// starts a server, reads its tools and derives the graph. Errors name the file and field.
    pub fn load(dir: &Path) -> anyhow::Result<Package> {
        let dir = dir.canonicalize().with_context(|| format!("environment package {}", dir.display()))?;
        let manifest = Manifest::load(&dir)?;
        let toml = dir.join(FILE);
        if super::builtins().iter().any(|b| b.name == manifest.name) {
            bail!("{}: `name` = '{}' is a built-in domain's; choose another", toml.display(), manifest.name);
        }
        let data_dir = dir.join(&manifest.data);
        let tables = table_names(&data_dir)?;
        let table_refs: Vec<&str> = tables.iter().map(String::as_str).collect();
        let data = super::data::load_tables(&table_refs, &data_dir)?;
        let subjects = manifest.subjects.clone();
        for (key, table) in [("subjects.table", &subjects.table), ("subjects.records.table", &subjects.records.table)] {
            if !tables.contains(table) {
                bail!("{}: `{key}` = '{table}', but {} has no {table}.json", toml.display(), data_dir.display());
            }
        }
        let policy_path = dir.join(&manifest.policy);
        let policy = std::fs::read_to_string(&policy_path)
            .with_context(|| format!("{}: `policy`: reading {}", toml.display(), policy_path.display()))?;
        let examples_path = dir.join("examples.jsonl");
        let examples = match examples_path.exists() {
            true => std::fs::read_to_string(&examples_path).with_context(|| format!("reading {}", examples_path.display()))?,
            false => String::new(),
        };
        let files = manifest::fingerprint(&dir)?;
        let hash = sha256_hex(serde_json::to_string(&files)?.as_bytes());
        let content = PackageRef { path: dir.display().to_string(), hash, files };

        let mut package = Package {
            dir,
            manifest,
            tables,
            data,
            tools: Vec::new(),
            policy,
            examples,
            graph: GraphHints::default(),
            subjects,
            content,
            idle: Mutex::new(Vec::new()),
            log: Mutex::new(None),
            no_rules: AtomicBool::new(false),
        };
        let mut server = package.start().map_err(|e| anyhow::anyhow!("{}: `server`: {}", toml.display(), e.message))?;
        let listed = server.request("tools/list", json!({})).map_err(|e| anyhow::anyhow!("tools/list: {e}"))?;
        package.tools = read_tools(&listed, &package.manifest)?;
        package.graph = package.derive_graph(&mut server).map_err(|e| anyhow::anyhow!("deriving the API graph from the data: {e}"))?;
        package.give_back(server);
        Ok(package)
    }

    /// The package's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The package's data, as its `data/` holds it.
    pub fn data(&self) -> &Db {
        &self.data
    }

    fn spawn(&self) -> Spawn {
        Spawn {
            command: self.manifest.server.clone(),
            dir: self.dir.clone(),
            timeout: Duration::from_secs_f64(self.manifest.timeout_secs),
            log: self.log.lock().ok().and_then(|l| l.clone()),
        }
    }

    /// Starts a server; one that cannot start makes the environment unusable.
    fn start(&self) -> Result<Server, EnvError> {
        Server::start(&self.spawn()).map_err(|e| EnvError::fatal(format!("the tool server of {} cannot start: {e}", self.manifest.name)))
    }

    /// An idle server, or a new one.
    fn take(&self) -> Result<Server, EnvError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(server) => Ok(server),
            None => self.start(),
        }
    }

    fn give_back(&self, server: Server) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(server);
        }
    }

    /// The graph hints: `[hints]` in `env.toml`, and for every tool they leave out, the
    /// dataflow read off the outputs of the read tools called on the package's data.
    fn derive_graph(&self, server: &mut Server) -> Result<GraphHints, Fault> {
        let hints = &self.manifest.hints;
        let required = |t: &ToolInfo| -> Vec<String> {
            t.parameters
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let wanted: BTreeSet<String> = self.tools.iter().flat_map(required).collect();
        let mut seen = BTreeMap::new();
        first_values(&Value::Object(self.data.clone()), &wanted, &mut seen);
        // Which arguments each string of the data is a value of (`"L0001"` → `loan_id`).
        let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        values_of(&Value::Object(self.data.clone()), None, &wanted, &mut named);
        server.request("env/reset", json!({"tables": self.data}))?;
        let mut yields: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for tool in self.tools.iter().filter(|t| t.kind == ToolKind::Read && !hints.dataflow.contains_key(&t.name)) {
            let args: Option<Map<String, Value>> = required(tool).into_iter().map(|a| seen.get(&a).cloned().map(|v| (a, v))).collect();
            let Some(args) = args else { continue };
            let result = server.request("tools/call", json!({"name": tool.name, "arguments": args}))?;
            let (text, refused) = call_text(&result).map_err(Fault::Garbage)?;
            if refused {
                continue;
            }
            let found = yields.entry(&tool.name).or_default();
            let output = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text.trim().to_string()));
            keys_in(&output, &wanted, found);
            let mut strings = BTreeSet::new();
            leaves(&output, &mut strings);
            for value in strings {
                found.extend(named.get(&value).into_iter().flatten().cloned());
            }
        }
        let mut dataflow = Vec::new();
        for tool in &self.tools {
            if let Some(hinted) = hints.dataflow.get(&tool.name) {
                dataflow.push(hinted.to_dataflow(&tool.name));
                continue;
            }
            let needs = required(tool)
                .into_iter()
                .map(|arg| {
                    let from_output = yields.iter().any(|(other, fields)| *other != tool.name && fields.contains(&arg))
                        || hints.dataflow.values().any(|d| d.yields.contains(&arg));
                    let source = if from_output { Source::Field(arg.clone()) } else { Source::Said };
                    (arg, source)
                })
                .collect();
            let yielded = yields.get(tool.name.as_str()).map(|f| f.iter().cloned().collect()).unwrap_or_default();
            dataflow.push(Dataflow { name: tool.name.clone(), needs, yields: yielded });
        }
        let forbidden = hints.forbidden.iter().map(|[a, b]| (a.clone(), b.clone())).collect();
        Ok(GraphHints { dataflow, forbidden })
    }

    /// Runs `method` on an idle server; a server that faults is dropped (killed).
    fn ask(&self, method: &str, params: Value) -> Result<Value, (Fault, EnvError)> {
        let mut server = self.take().map_err(|e| (Fault::Died(e.message.clone()), e))?;
        match server.request(method, params) {
            Ok(value) => {
                self.give_back(server);
                Ok(value)
            }
            Err(fault @ Fault::Rpc { .. }) => {
                self.give_back(server);
                Err((fault.clone(), EnvError::call(format!("{method}: {fault}"))))
            }
            Err(fault) => Err((fault.clone(), EnvError::call(format!("{method}: {fault}; the server was stopped and will be restarted")))),
        }
    }
}

/// The `<table>.json` files of `dir`, by name.
fn table_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("the data directory {} (`data` in {FILE})", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("reading {}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("{} holds no <table>.json files", dir.display());
    }
    Ok(names)
}

/// The tools of a `tools/list` result, checked: a name, a description, an object schema that
/// is valid JSON Schema, and the kind `env.toml` gives or the annotations imply.
fn read_tools(listed: &Value, manifest: &Manifest) -> anyhow::Result<Vec<ToolInfo>> {
    let list = listed.get("tools").and_then(Value::as_array).context("tools/list: the result has no `tools` list")?;
    let mut tools: Vec<ToolInfo> = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        let name = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let Some(name) = name else { bail!("tools/list: tool {i} has no `name` string") };
        let at = |what: &str| anyhow::anyhow!("tools/list: tool '{name}': {what}");
        if tools.iter().any(|t| t.name == name) {
            return Err(at("listed twice"));
        }
        let description = tool.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(schema) = tool.get("inputSchema").filter(|s| s.is_object()) else {
            return Err(at("`inputSchema` must be a JSON Schema object"));
        };
        if schema.get("type") != Some(&json!("object")) {
            return Err(at("`inputSchema` must have \"type\": \"object\" (tool arguments are keyword arguments)"));
        }
        if let Err(e) = jsonschema::meta::validate(schema) {
            return Err(at(&format!("`inputSchema` is not valid JSON Schema: {e} (at {})", e.instance_path)));
        }
        let h = &manifest.hints;
        let listed_in = |list: &[String]| list.iter().any(|n| n == name);
        let kind = if listed_in(&h.terminate) {
            ToolKind::Terminate
        } else if listed_in(&h.think) {
            ToolKind::Think
        } else if listed_in(&h.write) {
            ToolKind::Write
        } else if listed_in(&h.read) || tool.pointer("/annotations/readOnlyHint") == Some(&json!(true)) {
            ToolKind::Read
        } else if !h.write.is_empty() {
            // The author listed the writes: the rest only read.
            ToolKind::Read
        } else {
            ToolKind::Write
        };
        tools.push(ToolInfo { name: name.to_string(), kind, description, parameters: schema.clone() });
    }
    if tools.is_empty() {
        bail!("tools/list: the server offers no tools");
    }
    let h = &manifest.hints;
    let named = [
        ("hints.write", &h.write),
        ("hints.read", &h.read),
        ("hints.think", &h.think),
        ("hints.terminate", &h.terminate),
        ("subjects.identify", &manifest.subjects.identify),
    ];
    let pairs: Vec<String> = h.forbidden.iter().flat_map(|[a, b]| [a.clone(), b.clone()]).collect();
    let flows: Vec<String> = h.dataflow.keys().cloned().collect();
    for (key, names) in named.into_iter().chain([("hints.forbidden", &pairs), ("hints.dataflow", &flows)]) {
        if let Some(unknown) = names.iter().find(|n| !tools.iter().any(|t| &&t.name == n)) {
            bail!("{FILE}: `{key}` names '{unknown}', which the server's tools/list does not offer");
        }
    }
    Ok(tools)
}

/// The first string or number found under each wanted key, anywhere in `value`.
fn first_values(value: &Value, wanted: &BTreeSet<String>, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if wanted.contains(key) && !out.contains_key(key) && (child.is_string() || child.is_number()) {
                    out.insert(key.clone(), child.clone());
                }
                first_values(child, wanted, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| first_values(v, wanted, out)),
        _ => {}
    }
}

/// For every string under a wanted key (or in a list under one), the keys it is found under.
fn values_of(value: &Value, key: Option<&str>, wanted: &BTreeSet<String>, out: &mut BTreeMap<String, BTreeSet<String>>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| values_of(v, Some(k), wanted, out)),
        Value::Array(items) => items.iter().for_each(|v| values_of(v, key, wanted, out)),
        Value::String(s) => {
            if let Some(key) = key.filter(|k| wanted.contains(*k)) {
                out.entry(s.clone()).or_default().insert(key.to_string());
            }
        }
        _ => {}
    }
}

/// Every string in `value`.
fn leaves(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::String(s) => {
            out.insert(s.clone());
        }
        _ => {}
    }
}

/// The wanted keys that occur anywhere in `value`.
fn keys_in(value: &Value, wanted: &BTreeSet<String>, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if wanted.contains(key) {
                    out.insert(key.clone());
                }
                keys_in(child, wanted, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys_in(v, wanted, out)),
        _ => {}
    }
}

/// The text of a `tools/call` result (its text contents joined by newlines) and whether it is
/// MCP's `isError`.
fn call_text(result: &Value) -> Result<(String, bool), String> {
    let content =
        result.get("content").and_then(Value::as_array).ok_or_else(|| format!("a tools/call result without a `content` list: {result}"))?;
    let mut texts = Vec::new();
    for part in content {
        match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
            (Some("text"), Some(text)) => texts.push(text),
            _ => return Err(format!("a tools/call result whose content is not text: {part}")),
        }
    }
    let refused = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
    Ok((texts.join("\n"), refused))
}

/// The tables of an `env/state` result, checked to be objects of records.
fn read_state(result: &Value) -> Result<Db, String> {
    let Some(tables) = result.get("tables").and_then(Value::as_object) else {
        return Err(format!("env/state must return {{\"tables\": {{...}}}}, got {}", excerpt(result)));
    };
    if let Some((name, _)) = tables.iter().find(|(_, t)| !t.is_object()) {
        return Err(format!("env/state: table '{name}' is not an object keyed by id"));
    }
    Ok(tables.clone())
}

fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

impl Environment for Package {
    fn name(&self) -> &str {
        &self.manifest.name
    }

    fn description(&self) -> &str {
        &self.manifest.description
    }

    fn tables(&self) -> Vec<&str> {
        self.tables.iter().map(String::as_str).collect()
    }

    fn tools(&self) -> &[ToolInfo] {
        &self.tools
    }

    /// The tables of `data/`; the seed does not change them (see the module's documentation).
    fn generate(&self, _seed: u64) -> anyhow::Result<Db> {
        Ok(self.data.clone())
    }

    fn policy(&self) -> &str {
        &self.policy
    }

    fn check(&self, initial: &Db, trace: &[Action]) -> anyhow::Result<Vec<Violation>> {
        if self.no_rules.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let answer = match self.ask("env/check", json!({"tables": initial, "actions": trace})) {
            Ok(answer) => answer,
            Err((Fault::Rpc { code: METHOD_NOT_FOUND, .. }, _)) => {
                self.no_rules.store(true, Ordering::Relaxed);
                return Ok(Vec::new());
            }
            Err((_, e)) => return Err(e.into()),
        };
        #[derive(Deserialize)]
        struct Broken {
            violations: Vec<Rule>,
        }
        #[derive(Deserialize)]
        struct Rule {
            id: String,
            step: usize,
            #[serde(default)]
            message: String,
        }
        let broken: Broken = serde_json::from_value(answer.clone()).map_err(|e| {
            EnvError::call(format!(
                "env/check: the answer is not {{\"violations\": [{{\"id\", \"step\", \"message\"}}]}}: {e}: {}",
                excerpt(&answer)
            ))
        })?;
        let mut found: Vec<Violation> =
            broken.violations.into_iter().map(|r| Violation { id: r.id, step: r.step, message: r.message }).collect();
        found.sort_by_key(|v| v.step);
        Ok(found)
    }

    fn graph(&self) -> &GraphHints {
        &self.graph
    }

    fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    fn default_rounds(&self) -> usize {
        self.manifest.rounds
    }

    fn examples(&self) -> &str {
        &self.examples
    }

    fn open(&self, tables: Db) -> Result<Box<dyn Session + '_>, EnvError> {
        let mut session = PackageSession { package: self, server: Some(self.take()?) };
        session.reset(tables)?;
        Ok(Box::new(session))
    }

    fn package(&self) -> Option<PackageRef> {
        Some(self.content.clone())
    }

    fn log_to(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(LOG);
        std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("creating {}", path.display()))?;
        if let Ok(mut log) = self.log.lock() {
            *log = Some(path);
        }
        // Servers started before have their stderr elsewhere: new ones replace them.
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        Ok(())
    }
}

/// A live session: one server, holding this session's tables.
struct PackageSession<'a> {
    package: &'a Package,
    /// `None` once the server faulted: the session's state is lost with it.
    server: Option<Server>,
}

impl PackageSession<'_> {
    fn request(&mut self, what: &str, method: &str, params: Value) -> Result<Value, EnvError> {
        let Some(server) = self.server.as_mut() else {
            return Err(EnvError::call(format!("{what}: the tool server failed earlier in this session")));
        };
        server.request(method, params).map_err(|fault| {
            if !matches!(fault, Fault::Rpc { .. }) {
                // Killed on drop; the pool starts a fresh one for the next session.
                self.server = None;
            }
            // The log's name, not its path: records must not depend on where the run lies.
            let logged = self.package.log.lock().ok().is_some_and(|l| l.is_some());
            let log = if logged { format!(" (its stderr is in {LOG})") } else { String::new() };
            EnvError::call(format!("{what}: {fault}{log}"))
        })
    }
}

impl Session for PackageSession<'_> {
    fn reset(&mut self, tables: Db) -> Result<(), EnvError> {
        self.request("env/reset", "env/reset", json!({"tables": tables}))?;
        Ok(())
    }

    fn call(&mut self, action: &Action) -> Result<ToolResult, EnvError> {
        let Some(tool) = self.package.tool(&action.name) else {
            return Ok(Err(format!("Error: unknown tool '{}'", action.name)));
        };
        if let Err(refusal) = check_args(&tool.name, &tool.parameters, &action.kwargs) {
            return Ok(Err(refusal));
        }
        let what = format!("tools/call {}", action.name);
        let result = match self.request(&what, "tools/call", json!({"name": action.name, "arguments": action.kwargs})) {
            Ok(result) => result,
            Err(e) => return Err(e),
        };
        let (text, refused) = call_text(&result).map_err(|e| {
            self.server = None;
            EnvError::call(format!("{what}: the tool server answered garbage: {e}"))
        })?;
        Ok(match refused {
            true if text.starts_with("Error") => Err(text),
            true => Err(format!("Error: {text}")),
            false => Ok(text),
        })
    }

    fn state(&mut self) -> Result<Cow<'_, Db>, EnvError> {
        let result = self.request("env/state", "env/state", json!({}))?;
        let tables = read_state(&result).map_err(|e| {
            self.server = None;
            EnvError::call(format!("env/state: the tool server answered garbage: {e}"))
        })?;
        Ok(Cow::Owned(tables))
    }
}

impl Drop for PackageSession<'_> {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.package.give_back(server);
        }
    }
}

/// What `env check DIR` verifies beyond loading: reset then state gives the data back exactly,
/// and replaying the same calls twice from the same data gives the same state. Each problem
/// found is one line naming where.
pub fn self_check(package: &Package) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let data = package.data().clone();
    let mut session = package.open(data.clone())?;
    let state = session.state()?.into_owned();
    if super::state::hash(&state) != super::state::hash(&data) {
        let diff = super::state::diff(&data, &state);
        let first = diff.first().map(|op| serde_json::to_string(op).unwrap_or_default()).unwrap_or_default();
        problems.push(format!(
            "env/reset then env/state does not give the tables of {}/ back exactly ({} difference(s); first: {first})",
            package.manifest.data,
            diff.len()
        ));
    }
    drop(session);
    // The calls: every example's actions (without examples.jsonl, the empty replay).
    let mut calls: Vec<Action> = Vec::new();
    for (i, line) in package.examples.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let example = serde_json::from_str::<Value>(line).ok();
        let actions = example.as_ref().and_then(|e| serde_json::from_value::<Vec<Action>>(e["actions"].clone()).ok());
        match (example.as_ref().and_then(|e| e["instruction"].as_str()), actions) {
            (Some(_), Some(actions)) => {
                if let Some(unknown) = actions.iter().find(|a| package.tool(&a.name).is_none()) {
                    problems.push(format!("examples.jsonl:{}: the action '{}' is not a tool of the server", i + 1, unknown.name));
                }
                calls.extend(actions);
            }
            _ => problems.push(format!(
                "examples.jsonl:{}: not a JSON object with `instruction` (a string) and `actions` (a list of {{\"name\", \"kwargs\"}})",
                i + 1
            )),
        }
    }
    let mut hashes = Vec::new();
    for _ in 0..2 {
        let mut session = package.open(data.clone())?;
        for action in &calls {
            let _observation = session.call(action)?;
        }
        hashes.push(super::state::hash(&*session.state()?));
    }
    if hashes[0] != hashes[1] {
        problems.push(format!(
            "replaying the same {} calls twice from the same data gives different states: the server is not deterministic",
            calls.len()
        ));
    }
    Ok(problems)
}
