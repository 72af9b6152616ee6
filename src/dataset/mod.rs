//! What a run leaves behind: append-only JSONL files with crash-safe resume ([`jsonl`],
//! [`manifest`], [`rundir`]), the training formats ([`openai`], [`sharegpt`]), and the summary
//! a person reads ([`stats`], [`report`]).

pub mod jsonl;
pub mod manifest;
pub mod merge;
pub mod openai;
pub mod report;
pub mod rundir;
pub mod sharegpt;
pub mod stats;

pub use rundir::RunDir;
