//! apigen-mt: verified multi-turn tool-use training data, generated with open-weight models
//! that run in-process.
//!
//! Data flows one way, and the modules follow it:
//! `config` → `samplers` → `engine` (models) ↔ `env` (environments) → `validate` → `dataset`.

pub mod blueprint;
pub mod chat;
pub mod config;
pub mod constrain;
pub mod dataset;
pub mod engine;
pub mod env;
pub mod eval;
pub mod model;
pub mod cli;
pub mod progress;
pub mod prompts;
pub mod samplers;
pub mod schedule;
pub mod seeds;
pub mod serve;
pub mod shard;
pub mod tokenizer;
pub mod validate;
pub mod trajectory;
