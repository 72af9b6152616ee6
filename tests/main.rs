//! The integration tests, in one binary so that CI links once (Cargo.toml sets autotests = false).

mod batching;
mod cli;
mod constrain;
mod dataset;
mod engine;
mod env;
mod env_airline;
mod eval;
mod hub;
mod layout;
mod model;
mod package;
mod phase1;
mod phase2;
mod pipeline;
mod report;
mod serve;
mod source;
mod structured;
mod support;
mod text;
mod thinking;
mod worldgen;
