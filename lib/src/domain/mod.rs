//! Newtypes that make invalid values unrepresentable once parsed.

mod whatsapp;

pub use whatsapp::{PhoneNumberId, WaId, Wamid};
