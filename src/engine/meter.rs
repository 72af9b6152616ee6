//! Per-role tallies of what each role asked its model: requests, prompt tokens, how many of
//! those the prefix cache served, and tokens generated.
//!
//! One model often plays several roles, so the engine's own metrics cannot say which role's
//! prompts the cache serves well. A [`Meter`] wraps the handle a role is given: every request
//! through it is counted under that role. Cache hits depend on what else was running, so these
//! figures are timing, like the engine metrics: `stats.json` reports them under `timing`, never
//! in a record.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{Completion, EngineError, EngineHandle, EngineMetrics, LanguageModel, ModelInfo, Prompt, Request};

/// What one role asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RoleUsage {
    pub requests: u64,
    pub prompt_tokens: u64,
    /// Prompt tokens the prefix cache supplied.
    pub cached_tokens: u64,
    pub generated_tokens: u64,
}

impl RoleUsage {
    /// Share of prompt tokens served from the cache (0 with no prompts).
    pub fn cache_share(&self) -> f64 {
        if self.prompt_tokens == 0 {
            0.0
        } else {
            self.cached_tokens as f64 / self.prompt_tokens as f64
        }
    }
}

/// The tallies of every role, shared by the handles it wrapped.
#[derive(Debug, Default)]
pub struct Meter {
    roles: Mutex<BTreeMap<String, RoleUsage>>,
}

impl Meter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// `engine`, with every request it serves counted under `role`.
    pub fn wrap(self: &Arc<Self>, role: &str, engine: &EngineHandle) -> EngineHandle {
        EngineHandle::new(Arc::new(Metered { inner: engine.0.clone(), role: role.to_string(), meter: self.clone() }))
    }

    /// Every role's totals so far, by role name.
    pub fn snapshot(&self) -> BTreeMap<String, RoleUsage> {
        self.roles.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn count(&self, role: &str, completion: &Completion) {
        if let Ok(mut roles) = self.roles.lock() {
            let usage = roles.entry(role.to_string()).or_default();
            usage.requests += 1;
            usage.prompt_tokens += completion.prompt_tokens as u64;
            usage.cached_tokens += completion.cached_tokens as u64;
            usage.generated_tokens += completion.completion_tokens() as u64;
        }
    }
}

/// A model seen through one role.
struct Metered {
    inner: Arc<dyn LanguageModel>,
    role: String,
    meter: Arc<Meter>,
}

impl LanguageModel for Metered {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    fn generate_streaming(&self, request: Request, on_text: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
        let completion = self.inner.generate_streaming(request, on_text)?;
        self.meter.count(&self.role, &completion);
        Ok(completion)
    }

    fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError> {
        self.inner.count_tokens(prompt)
    }

    fn end_session(&self, session: &str) {
        self.inner.end_session(session)
    }

    fn opens_reasoning(&self, prompt: &Prompt) -> Result<bool, EngineError> {
        self.inner.opens_reasoning(prompt)
    }

    fn render_prompt(&self, prompt: &Prompt) -> Result<Option<String>, EngineError> {
        self.inner.render_prompt(prompt)
    }

    fn metrics(&self) -> EngineMetrics {
        self.inner.metrics()
    }

    fn capacity(&self, context_tokens: usize) -> Option<usize> {
        self.inner.capacity(context_tokens)
    }

    fn server_report(&self) -> Option<super::remote::ServerReport> {
        self.inner.server_report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FinishReason;

    /// Answers "ok" with two token ids, or, given a count, with none and that count (a server's
    /// chat answer without ids).
    struct Fixed(ModelInfo, Option<usize>);

    impl LanguageModel for Fixed {
        fn info(&self) -> &ModelInfo {
            &self.0
        }
        fn generate_streaming(&self, _: Request, _: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
            let tokens = if self.1.is_some() { Vec::new() } else { vec![1, 2] };
            Ok(Completion {
                text: "ok".into(),
                reasoning: None,
                tokens,
                prompt_tokens: 10,
                generated_count: self.1,
                cached_tokens: 6,
                finish_reason: FinishReason::Stop,
                error: None,
            })
        }
        fn count_tokens(&self, _: &Prompt) -> Result<usize, EngineError> {
            Ok(10)
        }
    }

    fn info() -> ModelInfo {
        ModelInfo {
            name: "m".into(),
            architecture: "x".into(),
            context_length: 64,
            tool_format: "generic".into(),
            template_supports_tools: false,
        }
    }

    #[test]
    fn each_role_counts_its_own_requests() {
        let engine = EngineHandle::new(Arc::new(Fixed(info(), None)));
        let meter = Meter::new();
        let (agent, user) = (meter.wrap("agent", &engine), meter.wrap("user", &engine));
        for _ in 0..2 {
            agent.generate(Request::new(Prompt::Text("a".into()))).unwrap();
        }
        user.generate(Request::new(Prompt::Text("u".into()))).unwrap();
        let roles = meter.snapshot();
        assert_eq!(roles["agent"], RoleUsage { requests: 2, prompt_tokens: 20, cached_tokens: 12, generated_tokens: 4 });
        assert_eq!(roles["user"].requests, 1);
        assert!((roles["agent"].cache_share() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn a_servers_count_stands_in_for_the_ids_it_did_not_return() {
        let engine = EngineHandle::new(Arc::new(Fixed(info(), Some(7))));
        let meter = Meter::new();
        let agent = meter.wrap("agent", &engine);
        let completion = agent.generate(Request::new(Prompt::Text("a".into()))).unwrap();
        assert_eq!((completion.tokens.len(), completion.completion_tokens()), (0, 7));
        assert_eq!(meter.snapshot()["agent"].generated_tokens, 7);
    }
}
