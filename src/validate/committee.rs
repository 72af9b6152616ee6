//! Stage 4, the reviewer committee: k reviewers score a blueprint on four criteria, each 0 or
//! 1, under a schema constraint; a majority vote per criterion decides it, and the blueprint
//! passes when the mean of the voted criteria reaches the threshold.
//!
//! Reviewers differ by seed (or by model). A review that cannot be read counts as 0 on every
//! criterion: a committee that cannot say yes has not said yes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::RoleConfig;
use crate::roles::{Call, Caller, Who};

use super::{Failure, Stage};

pub const CRITERIA: [&str; 4] = ["correctness", "completeness", "satisfaction", "creativity"];

/// One reviewer's scores (0 or 1 each), its reflection and its suggested correction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub reflection: String,
    pub correctness: u8,
    pub completeness: u8,
    pub satisfaction: u8,
    pub creativity: u8,
    pub correction: String,
}

impl Review {
    fn scores(&self) -> [u8; 4] {
        [self.correctness, self.completeness, self.satisfaction, self.creativity]
    }
    fn unreadable(why: String) -> Self {
        Self {
            reflection: format!("unreadable review: {why}"),
            correctness: 0,
            completeness: 0,
            satisfaction: 0,
            creativity: 0,
            correction: String::new(),
        }
    }
}

/// The schema a review is written under; the reflection comes first so that the scores follow
/// from it.
pub fn review_schema() -> Value {
    let score = json!({"type": "integer", "enum": [0, 1]});
    json!({
        "type": "object",
        "properties": {
            "reflection": {"type": "string", "maxLength": 300},
            "correctness": score, "completeness": score, "satisfaction": score, "creativity": score,
            "correction": {"type": "string", "maxLength": 300}
        },
        "required": ["reflection", "correctness", "completeness", "satisfaction", "creativity", "correction"],
        "additionalProperties": false
    })
}

/// The committee's outcome: every review, the voted score per criterion and their mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub reviews: Vec<Review>,
    pub voted: [u8; 4],
    pub mean: f64,
    pub passed: bool,
}

/// Majority vote per criterion (a tie is a no), then the mean against `threshold`.
pub fn vote(reviews: Vec<Review>, threshold: f64) -> Verdict {
    let mut voted = [0u8; 4];
    for (c, slot) in voted.iter_mut().enumerate() {
        let yes = reviews.iter().filter(|r| r.scores()[c] == 1).count();
        *slot = (2 * yes > reviews.len()) as u8;
    }
    let mean = voted.iter().map(|&v| v as f64).sum::<f64>() / voted.len() as f64;
    Verdict { reviews, voted, mean, passed: mean >= threshold }
}

impl Verdict {
    /// Where the reviewers agree and disagree, criterion by criterion, for the summarizer.
    pub fn agreement(&self) -> String {
        CRITERIA
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let yes = self.reviews.iter().filter(|r| r.scores()[c] == 1).count();
                format!("{name}: {yes} of {} said yes", self.reviews.len())
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The failure this verdict amounts to, if it failed.
    pub fn failure(&self) -> Option<Failure> {
        (!self.passed).then(|| {
            let said = |part: fn(&Review) -> &str| self.reviews.iter().map(part).filter(|c| !c.is_empty()).collect::<Vec<_>>().join(" | ");
            let reflections = said(|r| r.reflection.as_str());
            let corrections = said(|r| r.correction.as_str());
            Failure::new(
                Stage::Committee,
                format!("mean vote {:.2}; {}; reflections: {reflections}; corrections: {corrections}", self.mean, self.agreement()),
            )
        })
    }
}

/// The committee: how many reviewers, how they sample, and the pass threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committee {
    pub reviewers: usize,
    pub threshold: f64,
    pub role: RoleConfig,
}

impl Committee {
    /// Asks every reviewer about the blueprint described by `context` (instruction, tools,
    /// diff, policy excerpt), and votes; `label` ("round-1", "recombination") names the calls.
    pub fn review(&self, caller: &mut Caller, context: &Value, label: &str) -> Verdict {
        let names: Vec<String> = (0..self.reviewers).map(|k| format!("reviewer-{k}")).collect();
        let paths: Vec<[&str; 2]> = names.iter().map(|name| [label, name.as_str()]).collect();
        let calls = paths
            .iter()
            .enumerate()
            .map(|(k, path)| Call {
                who: Who::Reviewer(k),
                config: &self.role,
                template: "reviewer.jinja",
                context,
                path,
                schema: Some(review_schema()),
            })
            .collect();
        let reviews = caller
            .ask_all(calls)
            .into_iter()
            .map(|reply| match reply {
                Ok(r) => serde_json::from_str::<Review>(&r.text)
                    .map_err(|e| format!("{e}"))
                    .and_then(|r| match r.scores().iter().all(|&s| s <= 1) {
                        true => Ok(r),
                        false => Err("a score is not 0 or 1".into()),
                    })
                    .unwrap_or_else(Review::unreadable),
                Err(e) => Review::unreadable(format!("{e:#}")),
            })
            .collect();
        vote(reviews, self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(s: [u8; 4]) -> Review {
        Review {
            reflection: String::new(),
            correctness: s[0],
            completeness: s[1],
            satisfaction: s[2],
            creativity: s[3],
            correction: "fix".into(),
        }
    }

    #[test]
    fn majority_per_criterion_then_mean() {
        let v = vote(vec![review([1, 1, 1, 0]), review([1, 0, 1, 0]), review([1, 1, 0, 1])], 0.75);
        assert_eq!(v.voted, [1, 1, 1, 0]);
        assert_eq!(v.mean, 0.75);
        assert!(v.passed && v.failure().is_none());
        let v = vote(vec![review([1, 1, 0, 0]), review([1, 0, 1, 0])], 0.75);
        assert_eq!(v.voted, [1, 0, 0, 0], "a tie is a no");
        assert!(!v.passed);
        let f = v.failure().unwrap();
        assert_eq!(f.stage, Stage::Committee);
        assert!(f.reason.contains("completeness: 1 of 2 said yes"), "{}", f.reason);
    }

    #[test]
    fn schema_accepts_reviews_and_rejects_other_scores() {
        let validator = jsonschema::validator_for(&review_schema()).unwrap();
        assert!(validator.is_valid(&serde_json::to_value(review([1, 0, 1, 0])).unwrap()));
        let mut bad = serde_json::to_value(review([1, 0, 1, 0])).unwrap();
        bad["creativity"] = json!(2);
        assert!(!validator.is_valid(&bad));
    }
}
