//! Domains (retail, airline): their tables and tools, and the registry that names them.

use std::sync::LazyLock;

use anyhow::bail;
use serde_json::Value;

use super::Tool;

/// One environment domain: the tables its database holds and the tools an agent may call.
#[derive(Debug)]
pub struct Domain {
    pub name: &'static str,
    /// Table names, in the order τ-bench loads them; each is one `<table>.json` file.
    pub tables: &'static [&'static str],
    /// Tools in the order they are offered to the model.
    pub tools: Vec<Tool>,
}

impl Domain {
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// The tools as an OpenAI `tools` list.
    pub fn openai_tools(&self) -> Vec<Value> {
        self.tools.iter().map(Tool::openai_schema).collect()
    }
}

/// Every domain, built once. Adding a domain is one line here.
static DOMAINS: LazyLock<Vec<Domain>> = LazyLock::new(|| vec![super::retail::domain(), super::airline::domain()]);

/// All registered domains, in a fixed order.
pub fn domains() -> &'static [Domain] {
    &DOMAINS
}

/// The domain called `name`, or an error listing the known ones.
pub fn domain(name: &str) -> anyhow::Result<&'static Domain> {
    match domains().iter().find(|d| d.name == name) {
        Some(d) => Ok(d),
        None => {
            let known: Vec<&str> = domains().iter().map(|d| d.name).collect();
            bail!("unknown domain '{name}' (known: {})", known.join(", "))
        }
    }
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

    #[test]
    fn tool_names_are_unique_and_schemas_are_objects() {
        for d in domains() {
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
