//! Tokenizers, chat templates and tool-call formats. The modules live in this folder because
//! Cargo would build every `tests/*.rs` file as a test binary of its own.

mod chat_template;
mod tokenizer;
mod tool_calls;
