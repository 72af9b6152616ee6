//! The integration tests, in one binary so that CI links once (Cargo.toml sets autotests = false).

mod constrain;
mod env;
mod env_airline;
mod model;
mod text;
mod worldgen;
mod cli;
mod engine;
mod source;
mod phase1;
