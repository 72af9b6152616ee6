//! The integration tests, in one binary.

mod cli_env;
mod env_airline;
mod env_props;
mod env_retail;
mod worldgen;
