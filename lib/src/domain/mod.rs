//! Newtypes that make invalid values unrepresentable once parsed.

mod assistant;
mod whatsapp;

pub use assistant::{Amount, Currency, Recurrence};
pub use whatsapp::{PhoneNumberId, WaId, Wamid};
