//! The integration tests, in one binary so that CI links once.

mod cli_env;
mod constrain;
mod env_airline;
mod env_props;
mod env_retail;
mod text;
mod worldgen;
