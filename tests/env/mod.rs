//! Environments: τ-bench exactness, robustness under random input, and the `env` command.
//! (Kept under a folder so that Cargo does not build each file as its own test binary.)

mod cli;
mod props;
mod retail;
