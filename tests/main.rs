//! The integration tests, in one binary so that CI links once.

mod chat_template;
mod constrain;
mod source;
mod tokenizer;
