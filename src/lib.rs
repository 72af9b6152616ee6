//! apigen-mt: verified multi-turn tool-use training data, generated with open-weight models
//! that run in-process.
//!
//! Data flows one way, and the modules follow it:
//! `config` → `samplers` → `engine` (models) ↔ `env` (environments) → `validate` → the phases
//! (`blueprint`, `trajectory`) → `dataset` → `eval`; `cli` and `serve` sit on top.
//!
//! What several of these share has a module of its own, which imports none of the modules that
//! share it: `request` and `response` (what a model is asked and what it returns, which the
//! configuration and constrained decoding name without importing the engine), `pyjson` and
//! `pynum` (Python's `json.dumps` and number semantics: the tools use both, the chat templates
//! `pyjson`), `seeds` (derived seeds and content hashes), the blueprint type beside the
//! environment's actions (`env::Blueprint`), and `roles` (Phase 1's roles and the caller that the
//! generator and the reviewer committee share). `tests/layout.rs` fails if the imports between
//! top-level modules ever form a loop.

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
