//! The built-in environments, compiled in: each domain's folder (`env/<domain>/`) holds its
//! tools, data generator, policy document and rules, graph hints and sampler description, and
//! describes itself with one [`Builtin`]. The registry here lists them.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{LazyLock, Mutex};

use anyhow::{bail, Context};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::environment::{EnvError, Environment, Session, ToolInfo};
use super::graph::GraphHints;
use super::package::Package;
use super::policy::Violation;
use super::subjects::Subjects;
use super::{Action, Db, Env, Tool, ToolResult};

/// What a built-in domain is made of, as its folder writes it down.
pub struct Parts {
    pub name: &'static str,
    pub description: &'static str,
    /// Table names, in the order τ-bench loads them; each is one `<table>.json` file.
    pub tables: &'static [&'static str],
    /// Tools in the order they are offered to the model.
    pub tools: Vec<Tool>,
    /// The policy document (markdown).
    pub policy: &'static str,
    /// The policy's rules over an action trace.
    pub rules: fn(&Db, &[Action]) -> Vec<Violation>,
    /// Builds a fresh world from a seeded generator.
    pub generator: fn(&mut ChaCha8Rng) -> Db,
    /// Computes the arguments a sampled action cannot take from the data
    /// ([`Environment::complete`]).
    pub complete: fn(&Db, &mut Action),
    pub graph: GraphHints,
    pub subjects: Subjects,
    /// Revision rounds after a failed draft, unless the run sets them.
    pub rounds: usize,
    /// Few-shot example blueprints, JSONL.
    pub examples: &'static str,
}

/// A built-in domain: its [`Parts`], and the tools' descriptions computed once.
pub struct Builtin {
    pub name: &'static str,
    pub description: &'static str,
    pub tables: &'static [&'static str],
    /// The tools as functions, run in-process by [`Env`].
    pub tools: Vec<Tool>,
    pub policy: &'static str,
    pub rules: fn(&Db, &[Action]) -> Vec<Violation>,
    pub generator: fn(&mut ChaCha8Rng) -> Db,
    pub complete: fn(&Db, &mut Action),
    pub graph: GraphHints,
    pub subjects: Subjects,
    pub rounds: usize,
    pub examples: &'static str,
    infos: Vec<ToolInfo>,
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builtin").field("name", &self.name).field("tools", &self.tools).finish()
    }
}

impl Builtin {
    pub fn new(parts: Parts) -> Self {
        let Parts { name, description, tables, tools, policy, rules, generator, complete, graph, subjects, rounds, examples } = parts;
        let infos = tools
            .iter()
            .map(|t| ToolInfo {
                name: t.name.to_string(),
                kind: t.kind,
                description: t.description.to_string(),
                parameters: (t.parameters)(),
            })
            .collect();
        Self { name, description, tables, tools, policy, rules, generator, complete, graph, subjects, rounds, examples, infos }
    }

    /// The tool called `name`, as a function to run (the [`Environment::tool`] of a built-in
    /// domain is its description).
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }
}

impl Environment for Builtin {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        self.description
    }

    fn tables(&self) -> Vec<&str> {
        self.tables.to_vec()
    }

    fn tools(&self) -> &[ToolInfo] {
        &self.infos
    }

    fn load(&self, dir: &Path) -> anyhow::Result<Db> {
        super::data::load_tables(self.tables, dir)
    }

    fn generate(&self, seed: u64) -> anyhow::Result<Db> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Ok((self.generator)(&mut rng))
    }

    fn policy(&self) -> &str {
        self.policy
    }

    fn check(&self, initial: &Db, trace: &[Action]) -> anyhow::Result<Vec<Violation>> {
        let mut found = (self.rules)(initial, trace);
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
        self.rounds
    }

    fn examples(&self) -> &str {
        self.examples
    }

    fn open(&self, tables: Db) -> Result<Box<dyn Session + '_>, EnvError> {
        Ok(Box::new(Env::new(self, tables)))
    }

    fn complete(&self, state: &Db, action: &mut Action) {
        (self.complete)(state, action)
    }
}

impl Session for Env<'_> {
    fn reset(&mut self, tables: Db) -> Result<(), EnvError> {
        self.db = tables;
        Ok(())
    }

    fn call(&mut self, action: &Action) -> Result<ToolResult, EnvError> {
        Ok(self.step(action))
    }

    fn state(&mut self) -> Result<Cow<'_, Db>, EnvError> {
        Ok(Cow::Borrowed(&self.db))
    }
}

/// Every built-in domain, built once. Adding a domain is one line here.
static BUILTINS: LazyLock<Vec<Builtin>> = LazyLock::new(|| vec![super::retail::domain(), super::airline::domain()]);

/// The built-in domains, in a fixed order.
pub fn builtins() -> &'static [Builtin] {
    &BUILTINS
}

/// The built-in domain called `name`, or an error listing the known ones.
pub fn domain(name: &str) -> anyhow::Result<&'static Builtin> {
    match builtins().iter().find(|d| d.name == name) {
        Some(d) => Ok(d),
        None => {
            let known: Vec<&str> = builtins().iter().map(|d| d.name).collect();
            bail!("unknown domain '{name}' (known: {})", known.join(", "))
        }
    }
}

/// The packages this process loaded, each once; they live as long as the process.
static PACKAGES: Mutex<Vec<&'static Package>> = Mutex::new(Vec::new());

/// The environment a run names: every command's `--domain` goes through here. A folder holding
/// an `env.toml` is an environment package (loaded once per process, and known by its name
/// afterwards, the last loaded when several share one); anything else is a built-in domain's name, or the name of a package loaded
/// before.
pub fn resolve(name: &str) -> anyhow::Result<&'static dyn Environment> {
    let path = Path::new(name);
    let builtin = domain(name);
    if path.is_dir() && (path.join(super::package::manifest::FILE).exists() || builtin.is_err()) {
        return Ok(package(path)?);
    }
    if let Ok(d) = builtin {
        return Ok(d);
    }
    let loaded = PACKAGES.lock().map_err(|_| anyhow::anyhow!("a thread panicked while loading a package"))?;
    match loaded.iter().find(|p| p.name() == name) {
        Some(p) => Ok(*p),
        None => {
            bail!("{:#}, and it is not a folder holding an environment package ({})", builtin.unwrap_err(), super::package::manifest::FILE)
        }
    }
}

/// The package in `dir`, loaded on first use.
pub fn package(dir: &Path) -> anyhow::Result<&'static Package> {
    let canonical = dir.canonicalize().with_context(|| format!("environment package {}", dir.display()))?;
    let mut loaded = PACKAGES.lock().map_err(|_| anyhow::anyhow!("a thread panicked while loading a package"))?;
    if let Some(p) = loaded.iter().find(|p| p.dir() == canonical) {
        return Ok(p);
    }
    let package: &'static Package = Box::leak(Box::new(Package::load(&canonical)?));
    // By name, the package loaded last is found (a run loads one; tests load copies).
    loaded.insert(0, package);
    Ok(package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_finds_domains_and_names_the_known_ones() {
        assert_eq!(domain("retail").unwrap().name, "retail");
        let err = domain("bakery").unwrap_err().to_string();
        assert!(err.contains("unknown domain 'bakery'") && err.contains("retail"), "{err}");
    }

    /// Everything outside a domain's folder reaches it through the interface: no other code
    /// (tests aside, and usage examples in `--help`) names a domain.
    #[test]
    fn no_code_outside_a_domain_folder_names_a_domain() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let registry = [src.join("env/builtin.rs"), src.join("env/mod.rs")];
        let mut files = vec![src.clone()];
        let mut found = Vec::new();
        while let Some(path) = files.pop() {
            if builtins().iter().any(|d| path == src.join("env").join(d.name)) || registry.contains(&path) {
                continue;
            }
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (i, line) in code.lines().enumerate() {
                let mut words = line.split(|c: char| !c.is_alphanumeric() && c != '_');
                let named = words.any(|w| builtins().iter().any(|d| w.eq_ignore_ascii_case(d.name)));
                if named && !line.trim_start().starts_with("apigen-mt ") {
                    found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
        assert!(found.is_empty(), "domain names outside their folders:\n{}", found.join("\n"));
    }

    #[test]
    fn tool_names_are_unique_and_schemas_are_objects() {
        for d in builtins() {
            let mut names: Vec<&str> = d.tools.iter().map(|t| t.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), d.tools.len(), "duplicate tool in {}", d.name);
            for schema in d.openai_tools() {
                assert_eq!(schema["function"]["parameters"]["type"], "object");
                assert!(!schema["function"]["description"].as_str().unwrap_or("").is_empty());
            }
        }
    }
}
