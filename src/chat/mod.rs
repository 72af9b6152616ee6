//! Conversations and how they become prompt text: messages, chat templates, tool-call formats.

pub mod generic;
pub mod message;
pub mod strftime;
pub mod template;
pub mod thinking;
pub mod tools;

pub use message::{Message, Role, ToolCall};
pub use strftime::CalendarDate;
pub use template::{ChatTemplate, RenderOptions};
