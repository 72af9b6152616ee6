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

use anyhow::bail;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::policy;

/// Where a required argument's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A field that an earlier tool's output yields.
    Field(&'static str),
    /// Something the user tells the agent (or the agent writes itself: a thought, a summary).
    Said,
}

/// One tool's place in the graph.
#[derive(Debug)]
pub struct ToolSpec {
    pub name: &'static str,
    /// Every required argument and where its value comes from.
    pub needs: &'static [(&'static str, Source)],
    /// The fields its output makes available to later calls.
    pub yields: &'static [&'static str],
}

use Source::{Field, Said};

const fn spec(
    name: &'static str,
    needs: &'static [(&'static str, Source)],
    yields: &'static [&'static str],
) -> ToolSpec {
    ToolSpec { name, needs, yields }
}

const ADDRESS: [(&str, Source); 6] = [
    ("address1", Said),
    ("address2", Said),
    ("city", Said),
    ("state", Said),
    ("country", Said),
    ("zip", Said),
];
/// What a call that returns an order makes available.
const ORDER_FIELDS: &[&str] = &["item_id", "product_id", "payment_method_id"];

const RETAIL: &[ToolSpec] = &[
    spec("find_user_id_by_email", &[("email", Said)], &["user_id"]),
    spec(
        "find_user_id_by_name_zip",
        &[("first_name", Said), ("last_name", Said), ("zip", Said)],
        &["user_id"],
    ),
    spec(
        "get_user_details",
        &[("user_id", Field("user_id"))],
        &["order_id", "payment_method_id"],
    ),
    spec("get_order_details", &[("order_id", Field("order_id"))], ORDER_FIELDS),
    spec(
        "get_product_details",
        &[("product_id", Field("product_id"))],
        &["new_item_id"],
    ),
    spec("list_all_product_types", &[], &["product_id"]),
    spec(
        "cancel_pending_order",
        &[("order_id", Field("order_id")), ("reason", Said)],
        ORDER_FIELDS,
    ),
    spec(
        "modify_pending_order_address",
        &[
            ("order_id", Field("order_id")),
            ADDRESS[0],
            ADDRESS[1],
            ADDRESS[2],
            ADDRESS[3],
            ADDRESS[4],
            ADDRESS[5],
        ],
        ORDER_FIELDS,
    ),
    spec(
        "modify_pending_order_items",
        &[
            ("order_id", Field("order_id")),
            ("item_ids", Field("item_id")),
            ("new_item_ids", Field("new_item_id")),
            ("payment_method_id", Field("payment_method_id")),
        ],
        ORDER_FIELDS,
    ),
    spec(
        "modify_pending_order_payment",
        &[
            ("order_id", Field("order_id")),
            ("payment_method_id", Field("payment_method_id")),
        ],
        ORDER_FIELDS,
    ),
    spec(
        "modify_user_address",
        &[
            ("user_id", Field("user_id")),
            ADDRESS[0],
            ADDRESS[1],
            ADDRESS[2],
            ADDRESS[3],
            ADDRESS[4],
            ADDRESS[5],
        ],
        &["order_id", "payment_method_id"],
    ),
    spec(
        "return_delivered_order_items",
        &[
            ("order_id", Field("order_id")),
            ("item_ids", Field("item_id")),
            ("payment_method_id", Field("payment_method_id")),
        ],
        ORDER_FIELDS,
    ),
    spec(
        "exchange_delivered_order_items",
        &[
            ("order_id", Field("order_id")),
            ("item_ids", Field("item_id")),
            ("new_item_ids", Field("new_item_id")),
            ("payment_method_id", Field("payment_method_id")),
        ],
        ORDER_FIELDS,
    ),
    spec("calculate", &[("expression", Said)], &[]),
    spec("think", &[("thought", Said)], &[]),
    spec("transfer_to_human_agents", &[("summary", Said)], &[]),
];

const AIRLINE: &[ToolSpec] = &[
    spec(
        "get_user_details",
        &[("user_id", Said)],
        &["user_id", "reservation_id", "payment_id"],
    ),
    spec(
        "get_reservation_details",
        &[("reservation_id", Field("reservation_id"))],
        &["user_id", "flight", "payment_id"],
    ),
    spec("list_all_airports", &[], &["airport"]),
    spec(
        "search_direct_flight",
        &[("origin", Said), ("destination", Said), ("date", Said)],
        &["flight"],
    ),
    spec(
        "search_onestop_flight",
        &[("origin", Said), ("destination", Said), ("date", Said)],
        &["flight"],
    ),
    spec(
        "book_reservation",
        &[
            ("user_id", Field("user_id")),
            ("origin", Said),
            ("destination", Said),
            ("flight_type", Said),
            ("cabin", Said),
            ("flights", Field("flight")),
            ("passengers", Said),
            ("payment_methods", Field("payment_id")),
            ("total_baggages", Said),
            ("nonfree_baggages", Said),
            ("insurance", Said),
        ],
        &["reservation_id"],
    ),
    spec(
        "cancel_reservation",
        &[("reservation_id", Field("reservation_id"))],
        &["reservation_id"],
    ),
    spec(
        "update_reservation_baggages",
        &[
            ("reservation_id", Field("reservation_id")),
            ("total_baggages", Said),
            ("nonfree_baggages", Said),
            ("payment_id", Field("payment_id")),
        ],
        &["reservation_id"],
    ),
    spec(
        "update_reservation_flights",
        &[
            ("reservation_id", Field("reservation_id")),
            ("cabin", Said),
            ("flights", Field("flight")),
            ("payment_id", Field("payment_id")),
        ],
        &["reservation_id"],
    ),
    spec(
        "update_reservation_passengers",
        &[("reservation_id", Field("reservation_id")), ("passengers", Said)],
        &["reservation_id"],
    ),
    spec(
        "send_certificate",
        &[("user_id", Field("user_id")), ("amount", Said)],
        &["payment_id"],
    ),
    spec("calculate", &[("expression", Said)], &[]),
    spec("think", &[("thought", Said)], &[]),
    spec("transfer_to_human_agents", &[("summary", Said)], &[]),
];

/// The tool declarations of `domain`.
pub fn specs(domain: &str) -> anyhow::Result<&'static [ToolSpec]> {
    match domain {
        "retail" => Ok(RETAIL),
        "airline" => Ok(AIRLINE),
        other => bail!("no dependency graph for domain '{other}' (known: retail, airline)"),
    }
}

/// A→B: `from`'s output fills `fields` among the required arguments of `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: &'static str,
    pub to: &'static str,
    pub fields: Vec<&'static str>,
}

/// The dependency graph of one domain.
#[derive(Debug)]
pub struct Graph {
    pub domain: String,
    pub tools: &'static [ToolSpec],
    pub edges: Vec<Edge>,
}

impl ToolSpec {
    /// The fields this tool's required arguments need from earlier outputs.
    pub fn needed_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.needs.iter().filter_map(|(_, source)| match source {
            Field(f) => Some(*f),
            Said => None,
        })
    }
}

impl Graph {
    pub fn build(domain: &str) -> anyhow::Result<Self> {
        let tools = specs(domain)?;
        let mut edges = Vec::new();
        for a in tools {
            for b in tools {
                let mut fields: Vec<&'static str> = b.needed_fields().filter(|f| a.yields.contains(f)).collect();
                fields.dedup();
                if !fields.is_empty() && policy::allows_pair(domain, a.name, b.name) {
                    edges.push(Edge {
                        from: a.name,
                        to: b.name,
                        fields,
                    });
                }
            }
        }
        Ok(Self {
            domain: domain.to_string(),
            tools,
            edges,
        })
    }

    /// A seeded random walk of at most `max_len` calls. Each step is either an entry point (a
    /// tool that needs nothing from earlier outputs and whose output leads somewhere new, such
    /// as a user lookup or a flight search) or a tool that some earlier call has an edge to; in both
    /// cases all its needed fields must be available by now, it must differ from the previous
    /// call, and the policy must allow it after every earlier call. It stops early when no tool
    /// qualifies.
    pub fn walk(&self, seed: u64, max_len: usize) -> Vec<&'static str> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut walk: Vec<&'static str> = Vec::new();
        let mut available: BTreeSet<&'static str> = BTreeSet::new();
        while walk.len() < max_len {
            let candidates: Vec<&'static ToolSpec> = self
                .tools
                .iter()
                .filter(|t| !t.yields.is_empty() || t.needed_fields().next().is_some())
                .filter(|t| walk.last() != Some(&t.name))
                .filter(|t| t.needed_fields().all(|f| available.contains(f)))
                .filter(|t| {
                    let entry = t.needed_fields().next().is_none()
                        && self.edges.iter().any(|e| e.from == t.name)
                        && t.yields.iter().any(|f| !available.contains(f));
                    entry || self.edges.iter().any(|e| e.to == t.name && walk.contains(&e.from))
                })
                .filter(|t| walk.iter().all(|prev| policy::allows_pair(&self.domain, prev, t.name)))
                .collect();
            if candidates.is_empty() {
                break;
            }
            let next = candidates[rng.random_range(0..candidates.len())];
            walk.push(next.name);
            available.extend(next.yields.iter().copied());
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
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{}\"];",
                e.from,
                e.to,
                e.fields.join(", ")
            );
        }
        out.push_str("}\n");
        out
    }
}

impl std::fmt::Display for Graph {
    /// One line per tool: what it needs, what it yields, and where its output can go next.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} tools, {} edges",
            self.domain,
            self.tools.len(),
            self.edges.len()
        )?;
        for t in self.tools {
            let needs: Vec<&str> = t.needed_fields().collect();
            writeln!(
                f,
                "{}  needs [{}]  yields [{}]",
                t.name,
                needs.join(", "),
                t.yields.join(", ")
            )?;
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
        assert!(
            !has("get_product_details", "get_user_details"),
            "nothing there yields a user id"
        );
        // get_order_details fills item ids for a modification, but a second modification is forbidden.
        assert!(has("get_order_details", "modify_pending_order_items"));
        assert!(!has("modify_pending_order_items", "modify_pending_order_items"));
        assert!(!has("cancel_pending_order", "return_delivered_order_items"));
        let a = Graph::build("airline").unwrap();
        assert!(a
            .edges
            .iter()
            .any(|e| e.from == "search_direct_flight" && e.to == "book_reservation"));
        assert!(!a
            .edges
            .iter()
            .any(|e| e.from == "cancel_reservation" && e.to == "update_reservation_flights"));
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
                        assert!(
                            available.contains(f),
                            "{domain} seed {seed}: {name} needs {f} at step {i}: {walk:?}"
                        );
                    }
                    for prev in &walk[..i] {
                        assert!(policy::allows_pair(domain, prev, name), "{domain}: {name} after {prev}");
                    }
                    available.extend(t.yields.iter().copied());
                }
            }
            assert!(
                lengths.contains(&8),
                "{domain}: walks reach the length limit, {lengths:?}"
            );
            // Every tool with a job in a sequence shows up in some walk (writes that need
            // fields from several tools included, like a booking).
            for t in g
                .tools
                .iter()
                .filter(|t| g.edges.iter().any(|e| e.from == t.name || e.to == t.name))
            {
                assert!(called.contains(t.name), "{domain}: no walk calls {}", t.name);
            }
            assert_eq!(g.walk(5, 8), g.walk(5, 8), "walks are seeded");
            assert_ne!(g.walk(5, 8), g.walk(6, 8), "other seeds walk elsewhere");
        }
    }

    #[test]
    fn declarations_match_the_registered_tools() {
        for domain in crate::env::domains() {
            let declared = specs(domain.name).unwrap();
            assert_eq!(
                declared.len(),
                domain.tools.len(),
                "{}: one declaration per tool",
                domain.name
            );
            for tool in &domain.tools {
                let spec = declared.iter().find(|s| s.name == tool.name);
                let spec = spec.unwrap_or_else(|| panic!("{}: {} is not declared", domain.name, tool.name));
                let schema = (tool.parameters)();
                let mut required: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                let mut needs: Vec<&str> = spec.needs.iter().map(|(arg, _)| *arg).collect();
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
