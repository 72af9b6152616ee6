//! The source layout keeps the promise the README's "Layout" section makes: data flows one way
//! between the crate's top-level modules, so no two of them import each other, directly or
//! through others. (That no code outside `env/` names a built-in domain is checked beside the
//! domains, in `env/builtin.rs`.)
//!
//! The test reads the sources: every `crate::<module>` a line of code names, grouped imports
//! (`crate::{a, b}`) included, is an edge from the file's top-level module to that module. Test
//! code is left out (tests may reach anywhere): the item after each `#[cfg(test)]`, and the
//! files of modules declared under it.

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

/// The file's code lines with their numbers, without comment lines and without the items marked
/// `#[cfg(test)]`; and the names of the file modules declared under that mark.
fn code_lines(text: &str) -> (Vec<(usize, &str)>, Vec<String>) {
    let mut lines = Vec::new();
    let mut test_modules = Vec::new();
    let mut iter = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    while let Some((number, line)) = iter.next() {
        if line.starts_with("//") {
            continue;
        }
        let Some(marked) = line.strip_prefix("#[cfg(test)]") else {
            lines.push((number, line));
            continue;
        };
        // Skip the marked item (which may start on the attribute's line): one line ending in
        // `;`, or up to the close of its braces.
        let first = Some(marked.trim()).filter(|l| !l.is_empty());
        let mut depth = 0i64;
        for line in first.into_iter().chain(iter.by_ref().map(|(_, l)| l)) {
            if line.starts_with("#[") || line.starts_with("//") {
                continue;
            }
            if let Some(name) = line.strip_prefix("mod ").or_else(|| line.strip_prefix("pub mod ")).and_then(|r| r.strip_suffix(';')) {
                test_modules.push(name.trim().to_string());
            }
            depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
            if depth <= 0 && (line.ends_with(';') || line.ends_with('}')) {
                break;
            }
        }
    }
    (lines, test_modules)
}

/// Names of top-level modules that `line` reaches through `crate::`, grouped imports included.
fn named_modules(line: &str) -> Vec<String> {
    let ident =
        |text: &str| text.trim().chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect::<String>();
    let mut names = Vec::new();
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}}`: the first name of each top-level member.
            Some(group) => {
                let mut depth = 0;
                let mut member = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => names.push(ident(&std::mem::take(&mut member))),
                        _ if depth == 0 => member.push(c),
                        _ => {}
                    }
                }
                names.push(ident(&member));
            }
            None => names.push(ident(rest)),
        }
    }
    names.retain(|n| !n.is_empty() && n != "self");
    names
}

/// The files of the modules `file` declares under `#[cfg(test)]`, and everything below them.
fn test_module_paths(file: &Path, names: &[String]) -> Vec<PathBuf> {
    let stem = file.file_stem().unwrap().to_string_lossy();
    let dir = match stem.as_ref() {
        "mod" | "lib" | "main" => file.parent().unwrap().to_path_buf(),
        _ => file.with_extension(""),
    };
    names.iter().flat_map(|n| [dir.join(format!("{n}.rs")), dir.join(n)]).collect()
}

/// The module graph: for each top-level module, the modules it names and one place it does so.
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let files = sources(src);
    let mut test_only: Vec<PathBuf> = Vec::new();
    let mut code = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let (lines, test_modules) = code_lines(&text);
        test_only.extend(test_module_paths(file, &test_modules));
        code.push((file, lines.into_iter().map(|(n, l)| (n, l.to_string())).collect::<Vec<_>>()));
    }
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (file, lines) in code {
        if test_only.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        let rel = file.strip_prefix(src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        for (number, line) in lines {
            for target in named_modules(&line) {
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

/// The scanner sees grouped imports and code after a test module, and skips test code.
#[test]
fn the_scan_reads_grouped_imports_and_skips_only_test_code() {
    assert_eq!(named_modules("use crate::{env::{Db, Action}, seeds, self};"), ["env", "seeds"]);
    assert_eq!(named_modules("let x = crate::model::f(crate::chat::g());"), ["model", "chat"]);
    let text = "use crate::a;\n#[cfg(test)]\nmod fixture;\n#[cfg(test)]\nmod tests {\n    use crate::b;\n    fn f() {}\n}\n\
                use crate::c;\n#[cfg(test)] fn g() {\n    crate::d::h();\n}\nuse crate::e;\n";
    let (lines, test_modules) = code_lines(text);
    let names: Vec<String> = lines.iter().flat_map(|(_, l)| named_modules(l)).collect();
    assert_eq!(names, ["a", "c", "e"]);
    assert_eq!(test_modules, ["fixture"]);
}
