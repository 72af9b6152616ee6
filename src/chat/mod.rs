//! Conversations and how they become prompt text: messages, chat templates, tool-call formats.

pub mod message;

pub use message::{Message, Role, ToolCall};
