//! Newtypes that make invalid values unrepresentable once parsed.

mod admin;
mod alert;
mod assistant;
mod reminder;
mod whatsapp;

pub use admin::{ConversationMode, Id, Role};
pub use alert::{Alert, AlertKind, Severity};
pub use assistant::{Amount, Currency};
pub use reminder::{resolve_local, Recurrence};
pub use whatsapp::{Address, GroupId, MessageKind, PhoneNumberId, UserId, WaId, Wamid};
