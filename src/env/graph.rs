//! The API dependency graph: which tool's output can fill which tool's required arguments.
//!
//! Each tool declares the fields its output yields (`get_user_details` yields order ids and
//! payment method ids) and where each of its required arguments comes from: a field some
//! earlier output yielded, or something the user says (an email, a reason, a date). There is
//! an edge A→B when A yields a field that a required argument of B needs and the policy lets
//! B follow A. Seeded random walks over the graph give candidate action sequences in which
//! every required argument can be filled, the raw material for task blueprints.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Environment;

/// Where a required argument's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A field that an earlier tool's output yields.
    Field(String),
    /// Something the user tells the agent (or the agent writes itself: a thought, a summary).
    Said,
}

pub use Source::Said;

/// A [`Source::Field`].
pub fn field(name: &str) -> Source {
    Source::Field(name.to_string())
}

/// One tool's place in the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataflow {
    pub name: String,
    /// Every required argument and where its value comes from.
    pub needs: Vec<(String, Source)>,
    /// The fields its output makes available to later calls.
    pub yields: Vec<String>,
}

impl Dataflow {
    pub fn new(name: &str, needs: Vec<(&str, Source)>, yields: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            needs: needs.into_iter().map(|(arg, source)| (arg.to_string(), source)).collect(),
            yields: yields.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// The fields this tool's required arguments need from earlier outputs.
    pub fn needed_fields(&self) -> impl Iterator<Item = &str> + '_ {
        self.needs.iter().filter_map(|(_, source)| match source {
            Source::Field(f) => Some(f.as_str()),
            Said => None,
        })
    }
}

/// What an environment tells the graph: each tool's dataflow, and the pairs of calls its policy
/// forbids on one record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphHints {
    pub dataflow: Vec<Dataflow>,
    /// `(first, second)`: the policy does not let `second` follow `first` when both act on the
    /// same record (the same order or reservation).
    pub forbidden: Vec<(String, String)>,
}

impl GraphHints {
    /// Whether the policy lets `second` follow `first`. The graph keeps only allowed pairs.
    pub fn allows(&self, first: &str, second: &str) -> bool {
        !self.forbidden.iter().any(|(a, b)| a == first && b == second)
    }
}

/// A→B: `from`'s output fills `fields` among the required arguments of `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub fields: Vec<&'a str>,
}

/// The dependency graph of one environment.
#[derive(Debug)]
pub struct Graph<'a> {
    pub domain: &'a str,
    pub tools: &'a [Dataflow],
    pub edges: Vec<Edge<'a>>,
    hints: &'a GraphHints,
}

impl Graph<'static> {
    /// The graph of the environment called `name`.
    pub fn build(name: &str) -> anyhow::Result<Self> {
        Ok(Self::new(super::resolve(name)?))
    }
}

impl<'a> Graph<'a> {
    pub fn new(env: &'a dyn Environment) -> Self {
        let hints = env.graph();
        let tools = &hints.dataflow[..];
        let mut edges = Vec::new();
        for a in tools {
            for b in tools {
                let mut fields: Vec<&str> = b.needed_fields().filter(|f| a.yields.iter().any(|y| y == f)).collect();
                fields.dedup();
                if !fields.is_empty() && hints.allows(&a.name, &b.name) {
                    edges.push(Edge { from: &a.name, to: &b.name, fields });
                }
            }
        }
        Self { domain: env.name(), tools, edges, hints }
    }

    /// Whether the policy lets `second` follow `first` on one record.
    pub fn allows(&self, first: &str, second: &str) -> bool {
        self.hints.allows(first, second)
    }

    /// A seeded random walk of at most `max_len` calls. Each step is either an entry point (a
    /// tool that needs nothing from earlier outputs and whose output leads somewhere new, such
    /// as a user lookup or a flight search) or a tool that some earlier call has an edge to; in both
    /// cases all its needed fields must be available by now, it must differ from the previous
    /// call, and the policy must allow it after every earlier call. It stops early when no tool
    /// qualifies.
    pub fn walk(&self, seed: u64, max_len: usize) -> Vec<&'a str> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut walk: Vec<&'a str> = Vec::new();
        let mut available: BTreeSet<&'a str> = BTreeSet::new();
        while walk.len() < max_len {
            let candidates: Vec<&'a Dataflow> = self
                .tools
                .iter()
                .filter(|t| !t.yields.is_empty() || t.needed_fields().next().is_some())
                .filter(|t| walk.last() != Some(&t.name.as_str()))
                .filter(|t| t.needed_fields().all(|f| available.contains(f)))
                .filter(|t| {
                    let entry = t.needed_fields().next().is_none()
                        && self.edges.iter().any(|e| e.from == t.name)
                        && t.yields.iter().any(|f| !available.contains(f.as_str()));
                    entry || self.edges.iter().any(|e| e.to == t.name && walk.contains(&e.from))
                })
                .filter(|t| walk.iter().all(|prev| self.allows(prev, &t.name)))
                .collect();
            if candidates.is_empty() {
                break;
            }
            let next = candidates[rng.random_range(0..candidates.len())];
            walk.push(&next.name);
            available.extend(next.yields.iter().map(String::as_str));
        }
        walk
    }

    /// Graphviz source: one node per tool, one labelled arrow per edge.
    pub fn to_dot(&self) -> String {
        let mut out = format!("digraph {} {{\n  rankdir=LR;\n  node [shape=box];\n", self.domain);
        for t in self.tools {
            let _ = writeln!(out, "  \"{}\";", t.name);
        }
        for e in &self.edges {
            let _ = writeln!(out, "  \"{}\" -> \"{}\" [label=\"{}\"];", e.from, e.to, e.fields.join(", "));
        }
        out.push_str("}\n");
        out
    }
}

impl std::fmt::Display for Graph<'_> {
    /// One line per tool: what it needs, what it yields, and where its output can go next.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {} tools, {} edges", self.domain, self.tools.len(), self.edges.len())?;
        for t in self.tools {
            let needs: Vec<&str> = t.needed_fields().collect();
            writeln!(f, "{}  needs [{}]  yields [{}]", t.name, needs.join(", "), t.yields.join(", "))?;
            for e in self.edges.iter().filter(|e| e.from == t.name) {
                writeln!(f, "  -> {} ({})", e.to, e.fields.join(", "))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_follow_fields_and_respect_the_policy() {
        let g = Graph::build("retail").unwrap();
        let has = |a: &str, b: &str| g.edges.iter().any(|e| e.from == a && e.to == b);
        assert!(has("find_user_id_by_email", "get_user_details"));
        assert!(has("get_user_details", "get_order_details"));
        assert!(has("get_order_details", "get_product_details"));
        assert!(has("get_product_details", "exchange_delivered_order_items"));
        assert!(!has("get_product_details", "get_user_details"), "nothing there yields a user id");
        // get_order_details fills item ids for a modification, but a second modification is forbidden.
        assert!(has("get_order_details", "modify_pending_order_items"));
        assert!(!has("modify_pending_order_items", "modify_pending_order_items"));
        assert!(!has("cancel_pending_order", "return_delivered_order_items"));
        let a = Graph::build("airline").unwrap();
        assert!(a.edges.iter().any(|e| e.from == "search_direct_flight" && e.to == "book_reservation"));
        assert!(!a.edges.iter().any(|e| e.from == "cancel_reservation" && e.to == "update_reservation_flights"));
    }

    #[test]
    fn walks_only_call_tools_whose_arguments_can_be_filled() {
        for domain in ["retail", "airline"] {
            let g = Graph::build(domain).unwrap();
            let mut lengths = BTreeSet::new();
            let mut called = BTreeSet::new();
            for seed in 0..200 {
                let walk = g.walk(seed, 8);
                assert!(!walk.is_empty());
                lengths.insert(walk.len());
                called.extend(walk.iter().copied());
                let mut available: BTreeSet<&str> = BTreeSet::new();
                for (i, name) in walk.iter().enumerate() {
                    let t = g.tools.iter().find(|t| t.name == *name).unwrap();
                    for f in t.needed_fields() {
                        assert!(available.contains(f), "{domain} seed {seed}: {name} needs {f} at step {i}: {walk:?}");
                    }
                    for prev in &walk[..i] {
                        assert!(g.allows(prev, name), "{domain}: {name} after {prev}");
                    }
                    available.extend(t.yields.iter().map(String::as_str));
                }
            }
            assert!(lengths.contains(&8), "{domain}: walks reach the length limit, {lengths:?}");
            // Every tool with a job in a sequence shows up in some walk (writes that need
            // fields from several tools included, like a booking).
            for t in g.tools.iter().filter(|t| g.edges.iter().any(|e| e.from == t.name || e.to == t.name)) {
                assert!(called.contains(t.name.as_str()), "{domain}: no walk calls {}", t.name);
            }
            assert_eq!(g.walk(5, 8), g.walk(5, 8), "walks are seeded");
            assert_ne!(g.walk(5, 8), g.walk(6, 8), "other seeds walk elsewhere");
        }
    }

    #[test]
    fn declarations_match_the_registered_tools() {
        for domain in crate::env::builtins() {
            let declared = &domain.graph.dataflow;
            assert_eq!(declared.len(), domain.tools.len(), "{}: one declaration per tool", domain.name);
            for tool in &domain.tools {
                let spec = declared.iter().find(|s| s.name == tool.name);
                let spec = spec.unwrap_or_else(|| panic!("{}: {} is not declared", domain.name, tool.name));
                let schema = (tool.parameters)();
                let mut required: Vec<&str> =
                    schema["required"].as_array().map(|r| r.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
                let mut needs: Vec<&str> = spec.needs.iter().map(|(arg, _)| arg.as_str()).collect();
                required.sort_unstable();
                needs.sort_unstable();
                assert_eq!(needs, required, "{}: {} required arguments", domain.name, tool.name);
            }
        }
    }

    #[test]
    fn dot_output_lists_every_edge() {
        let g = Graph::build("airline").unwrap();
        let dot = g.to_dot();
        assert!(dot.starts_with("digraph airline {"));
        assert_eq!(dot.matches(" -> ").count(), g.edges.len());
        assert!(Graph::build("bank").is_err());
    }
}
