//! `eval`: how often an agent model completes held-out tasks, as τ-bench scores agents.
//!
//! Each task runs K times on Phase 2's conversation machinery (a simulated user, the agent, the
//! live environment), with seeds derived per (task, trial); a trial succeeds when Phase 2 would
//! verify it (the final state equals the ground truth's, and every output is stated), so the
//! training data and the score use one definition of success. This module runs the trials and
//! writes one `results.jsonl` line per trial; the scores (τ-bench's pass^k) are computed from
//! those lines alone, in [`crate::dataset::scores`], which a merge of shards and `eval --compare`
//! use as well.

use anyhow::Result;
use serde_json::{json, Value};

use crate::dataset::rundir::{RunDir, RESULTS};
use crate::trajectory::runner::{self, AttemptRecord, Progress};
use crate::trajectory::Rejection;

/// Whether a trial succeeded: Phase 2 verified it (a conversation that repeats an earlier trial
/// of the same task is a success too: Phase 2 only drops it from the training files).
pub fn reward(record: &AttemptRecord) -> u8 {
    u8::from(record.verified || record.reason == Some(Rejection::Duplicate))
}

/// One line of `results.jsonl`: a trial and how it went, with no wall-clock values.
pub fn result_line(record: &AttemptRecord) -> Value {
    let reward = reward(record);
    json!({
        "task_id": record.blueprint_id,
        "trial": record.attempt,
        "reward": reward,
        "reason": if reward == 1 { Value::Null } else { json!(record.reason.map(|r| r.name())) },
        "end": record.end,
        "seed": record.seed,
        "missing_outputs": record.missing_outputs,
        "diff": record.diff,
        "agent_steps": record.agent_steps,
        "tool_calls": record.tool_calls,
        "tokens": record.tokens,
        "messages": record.messages,
    })
}

/// Where an eval's trials go: `results.jsonl` in task order, checkpointed per task.
pub struct Sink<'a> {
    pub out: &'a mut RunDir,
}

impl runner::Sink for Sink<'_> {
    fn verified(&mut self, record: &AttemptRecord) -> Result<()> {
        self.out.append(RESULTS, &result_line(record))
    }
    fn rejected(&mut self, record: &AttemptRecord) -> Result<()> {
        self.out.append(RESULTS, &result_line(record))
    }
    fn committed(&mut self, progress: &Progress) -> Result<()> {
        runner::Sink::committed(self.out, progress)
    }
}
