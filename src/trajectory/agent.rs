//! One conversation: the simulated user talks, the agent answers or calls tools, and every tool
//! call runs against the live environment.
//!
//! The agent sees the policy as its system prompt and the domain's tools through its own chat
//! template, in the tool-call format its model speaks. Whatever a real deployment would return
//! goes back into the conversation: tool results and tool errors as tool messages, and a
//! completion that is not a well-formed call as a message carrying the parser's error, so the
//! agent can correct itself. The conversation ends when the user says `###STOP###`, the agent
//! calls a terminating tool, the agent runs out of steps, a prompt no longer fits the context,
//! or the agent fails to produce a parseable answer too many times in a row.

use serde::{Deserialize, Serialize};

use super::user::{generate_in_context, UserSimulator, UserTurn, GREETING};
use super::{Task, TokenUsage, TrajectoryConfig};
use crate::chat::tools::{parse, tool_choice_constraint, CallContext, ToolFormat};
use crate::chat::Message;
use crate::engine::{EngineError, EngineHandle, Prompt, Request, SamplingParams};
use crate::env::{Action, Db, Environment, Session, ToolKind};
use crate::prompts::Prompts;
use crate::seeds::derive;

/// The models behind the three roles (often one model behind three handles).
#[derive(Debug, Clone)]
pub struct Models {
    pub agent: EngineHandle,
    pub user: EngineHandle,
    pub judge: EngineHandle,
}

/// How a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The simulated user wrote `###STOP###`.
    UserStop,
    /// The agent called a terminating tool (a transfer to a human).
    Terminate,
    MaxTurns,
    ContextExceeded,
    ParseErrors,
    /// A model server refused one of the conversation's requests.
    BackendError,
    /// The environment failed under a tool call (its server crashed, hung or answered garbage).
    EnvError,
}

/// Tokens per role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTokens {
    pub agent: TokenUsage,
    pub user: TokenUsage,
    pub judge: TokenUsage,
}

impl RoleTokens {
    pub fn total(&self) -> usize {
        [self.agent, self.user, self.judge].iter().map(|t| t.prompt + t.completion).sum()
    }
}

/// A finished conversation and the state it left the environment in.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The agent's view: system prompt, user messages, assistant messages with their calls,
    /// tool results.
    pub messages: Vec<Message>,
    pub user_turns: Vec<UserTurn>,
    pub end: End,
    pub agent_steps: usize,
    pub tool_calls: usize,
    pub parse_errors: usize,
    pub tokens: RoleTokens,
    pub state: Db,
    /// Why a model server refused a request, when one did (`End::BackendError`).
    pub error: Option<String>,
}

/// The reason of a model server's refusal, which fails the attempt rather than the run; other
/// errors (a server that stays unreachable) stop the run.
fn backend_error(error: anyhow::Error) -> anyhow::Result<String> {
    match EngineError::find(&error) {
        Some(EngineError::Backend(reason)) => Ok(reason.clone()),
        _ => Err(error),
    }
}

/// Everything one conversation needs.
pub struct Setup<'a> {
    pub models: &'a Models,
    pub prompts: &'a Prompts,
    pub config: &'a TrajectoryConfig,
    pub policy: &'a str,
    /// Whose tools the agent is offered.
    pub env: &'a dyn Environment,
    pub blueprint: &'a Task,
    /// Seed of this conversation (derived from run, blueprint and attempt); roles and turns
    /// derive theirs from it.
    pub seed: u64,
}

/// The engine session of a conversation's agent turns: each turn re-sends the growing
/// conversation, and the engine keeps its computed prefix while the session lives.
fn agent_session(seed: u64) -> String {
    format!("agent-{seed:016x}")
}

/// The engine session of a conversation's simulated-user turns.
fn user_session(seed: u64) -> String {
    format!("user-{seed:016x}")
}

/// Plays one conversation out on `session`. An environment that fails under a call (not a tool
/// that refuses, which the agent sees) ends it with [`End::EnvError`]; one that cannot run at
/// all is an error.
pub fn converse(setup: &Setup, session: &mut dyn Session) -> anyhow::Result<Conversation> {
    let config = setup.config;
    let format = ToolFormat::from_name(&setup.models.agent.info().tool_format)?;
    let tools = setup.env.openai_tools();
    // The agent may answer in text, but a call it starts is held to an offered tool's schema.
    let calls = tool_choice_constraint("auto", format, &tools)?;
    let conversation_seed = format!("{:016x}", setup.seed);
    let mut user = UserSimulator::new(
        &setup.models.user,
        &setup.models.judge,
        setup.prompts,
        setup.blueprint,
        &config.user,
        &config.judge,
        config.best_of,
    )?
    .with_session(user_session(setup.seed));
    let mut messages = vec![Message::system(setup.policy)];
    let mut user_turns = Vec::new();
    let (mut agent_steps, mut tool_calls, mut parse_errors, mut failures_in_a_row) = (0, 0, 0, 0);
    let mut agent_tokens = TokenUsage::default();
    let mut agent_said = GREETING.to_string();
    let mut error = None;
    let end = 'conversation: loop {
        let turn_seed = derive(setup.seed, &["user", &user_turns.len().to_string()]);
        let turn = match user.respond(&agent_said, turn_seed) {
            Ok(Ok(turn)) => turn,
            Ok(Err(_)) => break End::ContextExceeded,
            Err(e) => {
                error = Some(backend_error(e)?);
                break End::BackendError;
            }
        };
        let stop = turn.is_stop();
        if !stop {
            messages.push(Message::user(turn.text()));
        }
        user_turns.push(turn);
        if stop {
            break End::UserStop;
        }
        // The agent acts until it answers the user in text.
        loop {
            if agent_steps >= config.max_turns {
                break 'conversation End::MaxTurns;
            }
            let sampling =
                SamplingParams { seed: derive(setup.seed, &["agent", &agent_steps.to_string()]), ..config.agent.sampling.clone() };
            let prompt = Prompt::Chat { messages: messages.clone(), tools: tools.clone(), add_generation_prompt: true, thinking: None };
            let mut request =
                Request::new(prompt).sampling(sampling).max_tokens(config.agent.max_tokens).session(agent_session(setup.seed));
            request.constraint = calls.clone();
            let completion = match generate_in_context(&setup.models.agent, request, &mut agent_tokens) {
                Ok(Ok(completion)) => completion,
                Ok(Err(_)) => break 'conversation End::ContextExceeded,
                Err(e) => {
                    error = Some(backend_error(e)?);
                    break 'conversation End::BackendError;
                }
            };
            let context = CallContext { tools: &tools, parallel: true, conversation_seed: &conversation_seed, turn: agent_steps };
            agent_steps += 1;
            let parsed = match parse(format, &completion.text, &context) {
                Ok(parsed) => parsed,
                Err(error) => {
                    parse_errors += 1;
                    failures_in_a_row += 1;
                    messages.push(Message::assistant(completion.text.trim()));
                    messages.push(Message::user(format!(
                        "Error: your last message could not be read as a tool call: {error}. \
                         Answer the customer in plain text, or call one of the offered tools in the required format."
                    )));
                    if failures_in_a_row >= config.max_parse_errors {
                        break 'conversation End::ParseErrors;
                    }
                    continue;
                }
            };
            failures_in_a_row = 0;
            if parsed.calls.is_empty() {
                agent_said = parsed.text.clone();
                messages.push(parsed.into_message());
                break;
            }
            let calls = parsed.calls.clone();
            messages.push(parsed.into_message());
            let mut terminated = false;
            for call in &calls {
                tool_calls += 1;
                let action = Action { name: call.name.clone(), kwargs: call.arguments.clone() };
                let observation = match session.call(&action) {
                    Ok(result) => result.unwrap_or_else(|error| error),
                    Err(e) if e.fatal => return Err(e.into()),
                    Err(e) => {
                        error = Some(e.message);
                        break 'conversation End::EnvError;
                    }
                };
                messages.push(Message::tool_result(call, observation));
                terminated |= setup.env.tool(&call.name).is_some_and(|t| t.kind == ToolKind::Terminate);
            }
            if terminated {
                break 'conversation End::Terminate;
            }
        }
    };
    // The conversation's cached prompts need no longer be kept ahead of others'.
    setup.models.agent.end_session(&agent_session(setup.seed));
    setup.models.user.end_session(&user_session(setup.seed));
    let tokens = RoleTokens { agent: agent_tokens, user: user.user_tokens, judge: user.judge_tokens };
    // The state of an environment that failed is not asked for: its server was restarted.
    let (end, state) = match end {
        End::EnvError => (end, Db::new()),
        _ => match session.state() {
            Ok(state) => (end, state.into_owned()),
            Err(e) if e.fatal => return Err(e.into()),
            Err(e) => {
                error = Some(e.message);
                (End::EnvError, Db::new())
            }
        },
    };
    Ok(Conversation { messages, user_turns, end, agent_steps, tool_calls, parse_errors, tokens, state, error })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::chat::generic::call_text;
    use crate::chat::{Role, ToolCall};
    use crate::engine::{Completion, EngineError, FinishReason, LanguageModel, ModelInfo};
    use crate::env::Env;
    use crate::trajectory::user::STOP;

    /// Answers each role from its own queue: agent requests carry tools, judge requests a
    /// constraint, user requests neither. Tokens are counted as characters / 4.
    struct Scripted {
        info: ModelInfo,
        agent: Mutex<VecDeque<String>>,
        user: Mutex<VecDeque<String>>,
        judge: Mutex<VecDeque<String>>,
        /// Every request, in order.
        seen: Mutex<Vec<Request>>,
        /// Replies end with `FinishReason::Length` before `max_tokens`.
        out_of_context: bool,
        /// User and judge replies by request seed, taken before the queues: a turn's
        /// candidates and scores are asked for at once, in no fixed order.
        by_seed: std::collections::HashMap<u64, String>,
    }

    fn queue(items: &[&str]) -> Mutex<VecDeque<String>> {
        Mutex::new(items.iter().map(|s| s.to_string()).collect())
    }

    impl Scripted {
        fn new(agent: &[&str], user: &[&str], judge: &[&str]) -> Self {
            Self {
                info: ModelInfo {
                    name: "scripted".into(),
                    architecture: "script".into(),
                    context_length: 1_000_000,
                    tool_format: "generic".into(),
                    template_supports_tools: false,
                },
                agent: queue(agent),
                user: queue(user),
                judge: queue(judge),
                seen: Mutex::new(Vec::new()),
                out_of_context: false,
                by_seed: std::collections::HashMap::new(),
            }
        }

        fn chars(prompt: &Prompt) -> usize {
            match prompt {
                Prompt::Chat { messages, tools, .. } => {
                    messages.iter().map(|m| m.content.len()).sum::<usize>() + tools.iter().map(|t| t.to_string().len()).sum::<usize>()
                }
                Prompt::Text(text) => text.len(),
                Prompt::Tokens(tokens) => tokens.len() * 4,
            }
        }
    }

    impl LanguageModel for Scripted {
        fn info(&self) -> &ModelInfo {
            &self.info
        }

        fn generate_streaming(&self, request: Request, _: &mut dyn FnMut(&str)) -> Result<Completion, EngineError> {
            let is_agent = matches!(&request.prompt, Prompt::Chat { tools, .. } if !tools.is_empty());
            let source = if is_agent {
                &self.agent
            } else if request.constraint.is_some() {
                &self.judge
            } else {
                &self.user
            };
            let text = match self.by_seed.get(&request.sampling.seed).filter(|_| !is_agent) {
                Some(text) => text.clone(),
                None => source.lock().unwrap().pop_front().ok_or_else(|| EngineError::Invalid("script ran out".into()))?,
            };
            let prompt_tokens = Self::chars(&request.prompt) / 4;
            self.seen.lock().unwrap().push(request);
            let finish_reason = if self.out_of_context { FinishReason::Length } else { FinishReason::Stop };
            Ok(Completion {
                text,
                reasoning: None,
                tokens: vec![1, 2],
                prompt_tokens,
                generated_count: None,
                cached_tokens: 0,
                finish_reason,
                error: None,
            })
        }

        fn count_tokens(&self, prompt: &Prompt) -> Result<usize, EngineError> {
            Ok(Self::chars(prompt) / 4)
        }
    }

    fn call(name: &str, arguments: serde_json::Value) -> String {
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        call_text(&ToolCall { id: String::new(), name: name.into(), arguments })
    }

    fn blueprint() -> Task {
        Task {
            id: None,
            instruction: "You are u1 and want to know your email address.".into(),
            actions: Vec::new(),
            outputs: Vec::new(),
            user_id: Some("u1".into()),
            persona: Some("terse".into()),
            data_seed: None,
        }
    }

    fn env() -> Env<'static> {
        let db = json!({"users": {"u1": {"user_id": "u1", "email": "u1@example.com"}}, "orders": {}, "products": {}});
        Env::new(crate::env::domain("retail").unwrap(), db.as_object().cloned().unwrap_or_default())
    }

    fn play(model: Scripted, config: TrajectoryConfig) -> (Conversation, Vec<Request>) {
        let model = std::sync::Arc::new(model);
        let handle = EngineHandle::new(model.clone());
        let models = Models { agent: handle.clone(), user: handle.clone(), judge: handle };
        let prompts = Prompts::load(None).unwrap();
        let blueprint = blueprint();
        let setup = Setup {
            models: &models,
            prompts: &prompts,
            config: &config,
            policy: "Be helpful.",
            env: crate::env::domain("retail").unwrap(),
            blueprint: &blueprint,
            seed: 7,
        };
        let conversation = converse(&setup, &mut env()).unwrap();
        let seen = model.seen.lock().unwrap().clone();
        (conversation, seen)
    }

    fn config() -> TrajectoryConfig {
        TrajectoryConfig { best_of: 1, max_turns: 10, ..TrajectoryConfig::default() }
    }

    #[test]
    fn calls_errors_and_parse_errors_go_back_to_the_agent_until_the_user_stops() {
        let agent = [
            call("get_user_details", json!({"user_id": "u1"})).as_str(),
            call("get_user_details", json!({"user_id": "nobody"})).as_str(),
            "<tool_call>{\"name\": \"get_user_details\", \"arguments\": {",
            "Your email is u1@example.com.",
        ]
        .map(String::from);
        let agent: Vec<&str> = agent.iter().map(String::as_str).collect();
        let (c, seen) = play(Scripted::new(&agent, &["what is my email? I am u1", STOP], &[]), config());
        assert_eq!(c.end, End::UserStop);
        assert_eq!((c.agent_steps, c.tool_calls, c.parse_errors), (4, 2, 1));
        let roles: Vec<Role> = c.messages.iter().map(|m| m.role).collect();
        use Role::*;
        assert_eq!(roles, [System, User, Assistant, Tool, Assistant, Tool, Assistant, User, Assistant]);
        assert!(c.messages[3].content.contains("u1@example.com"));
        assert_eq!(c.messages[5].content, "Error: user not found");
        assert!(c.messages[7].content.starts_with("Error: your last message could not be read"), "{}", c.messages[7].content);
        assert_eq!(c.messages[8].content, "Your email is u1@example.com.");
        // The greeting opens the simulator's conversation only; the agent's begins with the user.
        let first_user = seen.iter().find(|r| matches!(&r.prompt, Prompt::Chat { tools, .. } if tools.is_empty())).unwrap();
        let Prompt::Chat { messages, .. } = &first_user.prompt else { panic!("chat prompt") };
        assert!(messages[0].content.contains("You are u1 and want to know your email address."));
        assert_eq!(messages[1].content, GREETING);
        assert!(c.messages.iter().all(|m| m.content != GREETING));
        assert_eq!(c.user_turns.len(), 2);
    }

    #[test]
    fn a_terminating_tool_ends_the_conversation() {
        let transfer = call("transfer_to_human_agents", json!({"summary": "wants a human"}));
        let (c, _) = play(Scripted::new(&[&transfer], &["get me a human"], &[]), config());
        assert_eq!(c.end, End::Terminate);
        assert_eq!(c.messages.last().map(|m| m.role), Some(Role::Tool));
    }

    #[test]
    fn the_agent_stops_after_max_turns_steps() {
        let lookup = call("get_user_details", json!({"user_id": "u1"}));
        let agent = vec![lookup.as_str(); 5];
        let (c, _) = play(Scripted::new(&agent, &["hi"], &[]), TrajectoryConfig { max_turns: 3, ..config() });
        assert_eq!(c.end, End::MaxTurns);
        assert_eq!((c.agent_steps, c.tool_calls), (3, 3));
    }

    #[test]
    fn repeated_parse_errors_abandon_the_conversation() {
        let (c, _) = play(Scripted::new(&["<tool_call>{", "<tool_call>[]</tool_call>", "<tool_call>x"], &["hi"], &[]), config());
        assert_eq!(c.end, End::ParseErrors);
        assert_eq!(c.parse_errors, 3);
    }

    #[test]
    fn a_prompt_beyond_the_context_or_a_reply_cut_by_it_ends_with_context_exceeded() {
        let mut model = Scripted::new(&["never used"], &["hi"], &[]);
        // The user's prompt fits; the agent's (tool schemas included) does not.
        model.info.context_length = 600;
        let (c, _) = play(model, config());
        assert_eq!(c.end, End::ContextExceeded);
        assert_eq!(c.agent_steps, 0);

        let mut model = Scripted::new(&[], &["hi"], &[]);
        model.out_of_context = true;
        let (c, _) = play(model, config());
        assert_eq!(c.end, End::ContextExceeded);
        assert!(c.user_turns.is_empty());
    }

    #[test]
    fn best_of_n_keeps_the_highest_judged_candidate_and_records_every_score() {
        let config = TrajectoryConfig { best_of: 3, ..config() };
        let judge = [r#"{"score": 3}"#, r#"{"score": 9}"#, r#"{"score": 9}"#, r#"{"score": 8}"#, "oops", r#"{"score": 2}"#];
        let user = ["I am u1", "my id is u1, what is my email?", "hello", STOP, "thanks", "bye"];
        // Each turn's candidates and scores are asked for at once: the script answers by seed.
        let mut model = Scripted::new(&["Your email is u1@example.com."], &[], &[]);
        for turn in 0..2 {
            let turn_seed = derive(7, &["user", &turn.to_string()]);
            for i in 0..3 {
                model.by_seed.insert(derive(turn_seed, &["candidate", &i.to_string()]), user[3 * turn + i].to_string());
                model.by_seed.insert(derive(turn_seed, &["judge", &i.to_string()]), judge[3 * turn + i].to_string());
            }
        }
        let (c, seen) = play(model, config);
        assert_eq!(c.end, End::UserStop);
        assert_eq!(c.user_turns[0].scores, vec![Some(3), Some(9), Some(9)]);
        assert_eq!(c.user_turns[0].chosen, 1, "ties go to the lowest index");
        assert_eq!(c.messages[1].content, "my id is u1, what is my email?");
        assert_eq!(c.user_turns[1].scores, vec![Some(8), None, Some(2)]);
        assert_eq!(c.user_turns[1].chosen, 0);
        assert!(c.user_turns[1].is_stop());
        // Candidates of one turn sample with distinct seeds; the judge runs under a schema; the
        // agent's calls under the `auto` tool grammar.
        let is_agent = |r: &&Request| matches!(&r.prompt, Prompt::Chat { tools, .. } if !tools.is_empty());
        assert!(seen.iter().filter(is_agent).all(|r| matches!(r.constraint, Some(crate::engine::Constraint::Lark(_)))));
        let seen: Vec<&Request> = seen.iter().filter(|r| !is_agent(r)).collect();
        let user_seeds: Vec<u64> = seen.iter().filter(|r| r.constraint.is_none()).map(|r| r.sampling.seed).take(3).collect();
        assert!(user_seeds[0] != user_seeds[1] && user_seeds[1] != user_seeds[2] && user_seeds[0] != user_seeds[2]);
        assert!(seen
            .iter()
            .filter(|r| r.constraint.is_some())
            .all(|r| matches!(r.constraint, Some(crate::engine::Constraint::JsonSchema(_)))));
    }
}
