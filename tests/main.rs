//! The integration tests, in one binary so that CI links once.

mod chat_template;
mod cli;
mod constrain;
mod engine;
mod model;
mod source;
mod tokenizer;
