//! apigen-mt: verified multi-turn tool-use training data, generated with open-weight models
//! that run in-process.
//!
//! Data flows one way, and the modules follow it:
//! `config` → `samplers` → `engine` (models) ↔ `env` (environments) → `validate` → the phases
//! (`blueprint`, `trajectory`) → `dataset` → `eval`; `cli` and `serve` sit on top.
//!
//! What several layers share sits below them all: `request` and `response` (what a model is
//! asked and what it returns, which configuration, chat templates and constrained decoding name
//! without importing the engine), `pyjson` and `pynum` (Python's JSON and number semantics, for
//! the tools and the chat templates), `seeds` (derived seeds and content hashes), the blueprint
//! type beside the environment's actions (`env::Blueprint`), and `roles` (Phase 1's roles and the
//! caller that the generator and the reviewer committee share). `tests/layout.rs` keeps the
//! imports between these modules free of loops.

pub mod blueprint;
pub mod chat;
pub mod cli;
pub mod config;
pub mod constrain;
pub mod dataset;
pub mod engine;
pub mod env;
pub mod eval;
pub mod model;
pub mod progress;
pub mod prompts;
pub mod pyjson;
pub mod pynum;
pub mod request;
pub mod response;
pub mod roles;
pub mod samplers;
pub mod schedule;
pub mod seeds;
pub mod serve;
pub mod shard;
pub mod tokenizer;
pub mod trajectory;
pub mod validate;
