//! Newtypes that make invalid values unrepresentable once parsed.

mod admin;
mod whatsapp;

pub use admin::{ConversationMode, Id, Role};
pub use whatsapp::{PhoneNumberId, WaId, Wamid};
