//! What a run leaves behind: append-only JSONL files with crash-safe resume ([`jsonl`],
//! [`manifest`], [`rundir`]), the training formats ([`openai`], [`sharegpt`], as JSONL and
//! [`parquet`], chosen by [`formats`]), the summary a person reads ([`stats`], [`report`],
//! [`html`]) and the dataset card ([`card`]), the last three made from the directory's own
//! files ([`contents`], [`publish`]), and an eval's scores ([`scores`]).

pub mod card;
pub mod contents;
pub mod formats;
pub mod html;
pub mod jsonl;
pub mod manifest;
pub mod merge;
pub mod openai;
pub mod parquet;
pub mod publish;
pub mod report;
pub mod rundir;
pub mod scores;
pub mod sharegpt;
pub mod stats;

pub use rundir::RunDir;
