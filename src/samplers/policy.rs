//! The policy sampler: the sections of the environment's policy that speak about the sampled
//! tools.
//!
//! The policy documents are markdown; a section is a heading and the text under it. A section
//! is relevant when it names one of the sampled tools or one of the words in the tool's name
//! that carries meaning (cancel, exchange, baggage, ...). The preamble (text before the first
//! `##` heading) always goes along, because it holds the rules on authentication.

/// Words in tool names too generic to pick a section by.
const GENERIC: &[&str] = &["get", "details", "find", "by", "id", "user", "list", "all", "pending", "order", "items"];

/// The relevant excerpt of the policy document `doc` for `tools`.
pub fn excerpt(doc: &str, tools: &[&str]) -> String {
    let mut keys: Vec<String> = tools.iter().map(|t| t.to_string()).collect();
    for tool in tools {
        for word in tool.split('_').filter(|w| w.len() > 3 && !GENERIC.contains(w)) {
            // "baggages" -> "baggage", "reservations" -> "reservation".
            keys.push(word.trim_end_matches('s').to_string());
        }
    }
    let mut out = String::new();
    for (i, section) in sections(doc).into_iter().enumerate() {
        let lower = section.to_lowercase();
        if i == 0 || keys.iter().any(|k| lower.contains(k.as_str())) {
            out.push_str(section.trim_end());
            out.push_str("\n\n");
        }
    }
    out.trim_end().to_string()
}

/// The document split before every `## ` heading; the first piece is the preamble.
fn sections(doc: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = vec![0];
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        if line.starts_with("## ") && offset > 0 {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts.push(doc.len());
    starts.windows(2).map(|w| &doc[w[0]..w[1]]).filter(|s| !s.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::policy::document;

    #[test]
    fn excerpt_keeps_relevant_sections_only() {
        let full = document("retail").unwrap();
        let cancel = excerpt(full, &["cancel_pending_order"]);
        let ret = excerpt(full, &["return_delivered_order_items"]);
        assert!(cancel.len() < full.len(), "the excerpt should drop unrelated sections");
        assert!(cancel.to_lowercase().contains("cancel"));
        assert!(ret.to_lowercase().contains("return"));
        assert_ne!(cancel, ret);
    }
}
