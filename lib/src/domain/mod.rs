//! Newtypes that make invalid values unrepresentable once parsed.

mod admin;
mod reminder;
mod whatsapp;

pub use admin::{ConversationMode, Id, Role};
pub use reminder::Recurrence;
pub use whatsapp::{PhoneNumberId, WaId, Wamid};
