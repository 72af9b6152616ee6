//! The integration tests, in one binary.

mod env;
mod env_airline;
mod worldgen;
