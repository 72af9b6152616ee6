//! The source layout keeps the promises the README's "Layout" section makes: data flows one way
//! between the crate's top-level modules (no two of them import each other, directly or through
//! others), and no code outside `env/` names a built-in domain's module.
//!
//! The test reads the sources: every `crate::<module>` a line of code names (comments and
//! `#[cfg(test)]` modules left out, since tests may reach anywhere) is an edge from the file's
//! top-level module to that module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of code of `text` before its test module, with their numbers.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end].lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.starts_with("//"))
}

/// Names of top-level modules that `line` reaches through `crate::`.
fn named_modules(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .map(|(at, _)| line[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The module graph: for each top-level module, the modules it names and one place it does so.
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in sources(src) {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in code_lines(&text) {
            for target in named_modules(line) {
                if target != top {
                    edges.entry(top.clone()).or_default().entry(target).or_insert_with(|| format!("{}:{number}", rel.display()));
                }
            }
        }
    }
    edges
}

/// A path of modules from `from` back to `to`, if there is one.
fn path_to(edges: &BTreeMap<String, BTreeMap<String, String>>, from: &str, to: &str, seen: &mut BTreeSet<String>) -> Option<Vec<String>> {
    for next in edges.get(from).into_iter().flat_map(|e| e.keys()) {
        if next == to {
            return Some(vec![from.to_string(), next.clone()]);
        }
        if seen.insert(next.clone()) {
            if let Some(mut rest) = path_to(edges, next, to, seen) {
                rest.insert(0, from.to_string());
                return Some(rest);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_one_way_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    // The reader must see the imports it checks: the engine names the model, a phase the engine.
    assert!(edges["engine"].contains_key("model"), "the scan found no engine → model import: {edges:?}");
    assert!(edges["blueprint"].contains_key("validate"), "the scan found no blueprint → validate import");
    for (module, targets) in &edges {
        for target in targets.keys() {
            if let Some(cycle) = path_to(&edges, target, module, &mut BTreeSet::new()) {
                let steps: Vec<String> = std::iter::once(module.clone())
                    .chain(cycle.iter().cloned())
                    .collect::<Vec<_>>()
                    .windows(2)
                    .map(|w| format!("{} → {} ({})", w[0], w[1], edges[&w[0]][&w[1]]))
                    .collect();
                panic!("the modules import each other in a loop:\n  {}", steps.join("\n  "));
            }
        }
    }
}

#[test]
fn only_the_environment_names_its_domains() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let domains: Vec<String> = std::fs::read_dir(src.join("env"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.join("policy.md").exists())
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert!(domains.contains(&"retail".to_string()) && domains.contains(&"airline".to_string()), "domains found: {domains:?}");
    for file in sources(&src).into_iter().filter(|f| !f.starts_with(src.join("env"))) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in code_lines(&text) {
            for domain in &domains {
                assert!(!line.contains(&format!("env::{domain}")), "{}:{number} names the {domain} domain's module", file.display());
            }
        }
    }
}
