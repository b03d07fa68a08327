//! Newtypes that make invalid values unrepresentable once parsed.

mod reminder;
mod whatsapp;

pub use reminder::Recurrence;
pub use whatsapp::{PhoneNumberId, WaId, Wamid};
