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
use super::{Blueprint, TokenUsage, TrajectoryConfig};
use crate::chat::tools::{parse, CallContext, ToolFormat};
use crate::chat::Message;
use crate::engine::{EngineHandle, Prompt, Request, SamplingParams};
use crate::env::{Action, Env, ToolKind};
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
        [self.agent, self.user, self.judge]
            .iter()
            .map(|t| t.prompt + t.completion)
            .sum()
    }
}

/// A finished conversation and the environment it left behind.
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
    pub env: Env,
}

/// Everything one conversation needs.
pub struct Setup<'a> {
    pub models: &'a Models,
    pub prompts: &'a Prompts,
    pub config: &'a TrajectoryConfig,
    pub policy: &'a str,
    pub blueprint: &'a Blueprint,
    /// Seed of this conversation (derived from run, blueprint and attempt); roles and turns
    /// derive theirs from it.
    pub seed: u64,
}

/// Plays one conversation out on `env`.
pub fn converse(setup: &Setup, mut env: Env) -> anyhow::Result<Conversation> {
    let config = setup.config;
    let format = ToolFormat::from_name(&setup.models.agent.info().tool_format)?;
    let tools = env.domain.openai_tools();
    let conversation_seed = format!("{:016x}", setup.seed);
    let mut user = UserSimulator::new(
        &setup.models.user,
        &setup.models.judge,
        setup.prompts,
        setup.blueprint,
        &config.user,
        &config.judge,
        config.best_of,
    )?;
    let mut messages = vec![Message::system(setup.policy)];
    let mut user_turns = Vec::new();
    let (mut agent_steps, mut tool_calls, mut parse_errors, mut failures_in_a_row) = (0, 0, 0, 0);
    let mut agent_tokens = TokenUsage::default();
    let mut agent_said = GREETING.to_string();
    let end = 'conversation: loop {
        let turn_seed = derive(setup.seed, &["user", &user_turns.len().to_string()]);
        let turn = match user.respond(&agent_said, turn_seed)? {
            Ok(turn) => turn,
            Err(_) => break End::ContextExceeded,
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
            let sampling = SamplingParams {
                seed: derive(setup.seed, &["agent", &agent_steps.to_string()]),
                ..config.agent.sampling.clone()
            };
            let prompt = Prompt::Chat {
                messages: messages.clone(),
                tools: tools.clone(),
                add_generation_prompt: true,
            };
            let request = Request::new(prompt)
                .sampling(sampling)
                .max_tokens(config.agent.max_tokens);
            let completion = match generate_in_context(&setup.models.agent, request, &mut agent_tokens)? {
                Ok(completion) => completion,
                Err(_) => break 'conversation End::ContextExceeded,
            };
            let context = CallContext {
                tools: &tools,
                parallel: true,
                conversation_seed: &conversation_seed,
                turn: agent_steps,
            };
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
                let action = Action {
                    name: call.name.clone(),
                    kwargs: call.arguments.clone(),
                };
                let observation = env.step(&action).unwrap_or_else(|error| error);
                messages.push(Message::tool_result(call, observation));
                terminated |= env
                    .domain
                    .tool(&call.name)
                    .is_some_and(|t| t.kind == ToolKind::Terminate);
            }
            if terminated {
                break 'conversation End::Terminate;
            }
        }
    };
    let tokens = RoleTokens {
        agent: agent_tokens,
        user: user.user_tokens,
        judge: user.judge_tokens,
    };
    Ok(Conversation {
        messages,
        user_turns,
        end,
        agent_steps,
        tool_calls,
        parse_errors,
        tokens,
        env,
    })
}
