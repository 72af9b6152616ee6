//! Databases on disk, in τ-bench's layout: one `<table>.json` per table, each a JSON object
//! keyed by record id (`users.json`, `orders.json`, ...).

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

use super::{Db, Environment};
use crate::pyjson::{dumps_with, DumpOptions};

/// Loads the tables of `env` from `dir` (see [`Environment::load`]).
pub fn load_dir(env: &dyn Environment, dir: &Path) -> anyhow::Result<Db> {
    env.load(dir)
}

/// Loads `tables` from `dir`, in that order. Errors name the file and what is wrong with it:
/// missing, not JSON (with line and column), not an object at the top level, or a record that
/// is not an object.
pub fn load_tables(tables: &[&str], dir: &Path) -> anyhow::Result<Db> {
    if !dir.is_dir() {
        bail!("data directory {} does not exist or is not a directory", dir.display());
    }
    let mut db = Db::new();
    for table in tables {
        let path = dir.join(format!("{table}.json"));
        db.insert(table.to_string(), load_table(&path)?);
    }
    Ok(db)
}

fn load_table(path: &Path) -> anyhow::Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not valid JSON at line {}, column {}: {e}", path.display(), e.line(), e.column()))?;
    let Some(records) = value.as_object() else {
        bail!("{} must hold a JSON object keyed by id, but holds {}", path.display(), super::type_name(&value));
    };
    if let Some((id, record)) = records.iter().find(|(_, r)| !r.is_object()) {
        bail!("{}: record '{id}' must be an object, but is {}", path.display(), super::type_name(record));
    }
    Ok(value)
}

/// The database as one JSON object keyed by table, indented, keys in their stored order.
pub fn dump(db: &Db) -> String {
    let options = DumpOptions { ensure_ascii: false, indent: Some(2), sort_keys: false, separators: None };
    let mut text = dumps_with(&Value::Object(db.clone()), &options);
    text.push('\n');
    text
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over the target, so a reader never sees half a file.
pub fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("flushing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retail() -> &'static crate::env::Builtin {
        crate::env::domain("retail").unwrap()
    }

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn loads_tables_in_domain_order_and_dumps_them_back() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "users.json", r#"{"u1": {"name": "Ana", "balance": 1.50}}"#);
        write(dir.path(), "orders.json", r##"{"#O1": {"user_id": "u1"}}"##);
        write(dir.path(), "products.json", "{}");
        let db = load_dir(retail(), dir.path()).unwrap();
        assert_eq!(db.keys().collect::<Vec<_>>(), retail().tables);
        let out = dir.path().join("sub-dump.json");
        write_atomic(&out, &dump(&db)).unwrap();
        let back: Value = serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(back, Value::Object(db));
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", load_dir(retail(), dir.path()).unwrap_err());
        assert!(err.contains("orders.json"), "{err}");

        write(dir.path(), "orders.json", "{\n  \"#O1\": {,}\n}");
        let err = format!("{:#}", load_dir(retail(), dir.path()).unwrap_err());
        assert!(err.contains("orders.json is not valid JSON at line 2, column"), "{err}");

        write(dir.path(), "orders.json", "[1, 2]");
        let err = format!("{:#}", load_dir(retail(), dir.path()).unwrap_err());
        assert!(err.contains("orders.json must hold a JSON object keyed by id, but holds an array"), "{err}");

        write(dir.path(), "orders.json", r##"{"#O1": 5}"##);
        let err = format!("{:#}", load_dir(retail(), dir.path()).unwrap_err());
        assert!(err.contains("record '#O1' must be an object, but is an integer"), "{err}");

        let err = format!("{:#}", load_dir(retail(), &dir.path().join("nope")).unwrap_err());
        assert!(err.contains("does not exist"), "{err}");
    }
}
