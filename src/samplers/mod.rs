//! Context samplers: everything the blueprint generator sees for one attempt.
//!
//! Each sampler is its own unit with its own derived seed, so adding or changing one does not
//! shift the random choices of the others. Which optional samplers fire (persona, few-shot) and
//! how much they contribute (walk length, number of examples) is itself drawn from the attempt's
//! seed, so that the generated tasks vary in shape as well as in content.

pub mod actions;
pub mod data;
pub mod fewshot;
pub mod grounded;
pub mod persona;
pub mod policy;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::env::{Db, EnvError, Environment};
use crate::seeds::derive;

pub use data::{Ids, UserData};
pub use persona::Persona;

/// The sampled context of one attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    /// The tools of the sampled walk, in order: the skeleton the task should follow.
    pub tools: Vec<&'static str>,
    /// Policy sections that speak about the sampled tools.
    pub policy: String,
    pub data: UserData,
    pub persona: Option<Persona>,
    /// Example blueprints (instruction, actions, outputs) to imitate.
    pub examples: Vec<Value>,
    /// With `actions = "sampled"`: the ground truth the environment proposed ([`ground`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<grounded::Sampled>,
}

/// Samples the context of attempt `task` of the run seeded `run_seed`, on database `db`. The user
/// is the one attempt `lead` draws (`lead == task` unless attempts share users, see
/// [`crate::blueprint::recombine`]); everything else is the attempt's own.
pub fn sample(env: &'static dyn Environment, db: &Db, run_seed: u64, task: usize, lead: usize, pool: &[Value]) -> anyhow::Result<Context> {
    let (task, lead) = (task.to_string(), lead.to_string());
    let seed = |name: &str| derive(run_seed, &["blueprint", &task, "sampler", name]);
    let mut shape = ChaCha8Rng::seed_from_u64(seed("shape"));
    let walk_len = shape.random_range(2..=5);
    let with_persona = shape.random_bool(0.8);
    let examples = if pool.is_empty() { 0 } else { shape.random_range(0..=2) };

    let tools = actions::sample(env, seed("actions"), walk_len);
    let policy = policy::excerpt(env.policy(), &tools);
    let data = data::sample(env, db, derive(run_seed, &["blueprint", &lead, "sampler", "data"]))?;
    let persona = with_persona.then(|| persona::sample(seed("persona")));
    let examples = fewshot::sample(pool, seed("few-shot"), examples);
    Ok(Context { tools, policy, data, persona, examples, sampled: None })
}

/// For `actions = "sampled"`: the environment's own ground truth for the context's user, with
/// 1 to `max_writes` writes ([`grounded::sample`]), on database `db`. The context's tools and
/// policy excerpt are replaced by those of the sampled actions, so that the generator sees the
/// rules that govern what it writes up. Leaves `sampled` empty when no write could be made.
pub fn ground(
    env: &'static dyn Environment,
    db: &Db,
    context: &mut Context,
    run_seed: u64,
    task: usize,
    max_writes: usize,
) -> Result<(), EnvError> {
    let seed = derive(run_seed, &["blueprint", &task.to_string(), "sampler", "grounded"]);
    let Some(sampled) = grounded::sample(env, db, &context.data, seed, max_writes)? else { return Ok(()) };
    let mut tools: Vec<&'static str> = Vec::new();
    for action in &sampled.actions {
        if let Some(tool) = env.tool(&action.name).map(|t| t.name.as_str()) {
            if !tools.contains(&tool) {
                tools.push(tool);
            }
        }
    }
    context.policy = policy::excerpt(env.policy(), &tools);
    context.tools = tools;
    context.sampled = Some(sampled);
    Ok(())
}
