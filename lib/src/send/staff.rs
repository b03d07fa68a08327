//! A staff member's message to a contact, written as the business.
//!
//! 1. `admin_begin_staff_message` (as the user, security definer): checks the caller's role and
//!    WhatsApp's rules, records the message as `sending` with its audit row (`message.send`).
//! 2. The one send step ([`super::send`]): freeform inside the window, else the reply template.
//! 3. `admin_finish_staff_message` (service role: the Graph outcome is the system's fact)
//!    records `sent` / `simulated` / `failed`; a send that may have reached Meta stays
//!    `sending`, for the outcome resolver (`jobs::outcomes`).

use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::{send_recorded, Content, Record, SendError, StoredRecipient};
use crate::domain::Id;
use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::WhatsApp;

/// Why a staff message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// `admin_begin_staff_message` refused it (the caller's role, the window, an opt-out) or
    /// failed.
    #[error(transparent)]
    Begin(DbError),
    /// Not delivered: certainly not ([`SendError::maybe_sent`] false, recorded `failed`), or
    /// perhaps (left `sending`).
    #[error(transparent)]
    Send(SendError),
}

/// What `admin_begin_staff_message` returns: the recorded message and how to send it.
#[derive(Deserialize)]
struct Begun {
    message_id: Uuid,
    #[serde(flatten)]
    to: StoredRecipient,
}

/// Begins `text` as `caller` in `conversation`, sends it and records the outcome; the stored
/// message's row.
pub async fn staff_message(
    whatsapp: &WhatsApp,
    db: &Postgrest,
    caller: Caller<'_>,
    conversation: Id,
    text: String,
) -> Result<Value, StaffError> {
    let begun: Begun = db
        .rpc("admin_begin_staff_message", caller)
        .args(&json!({"p_conversation_id": conversation, "p_text": text}))
        .fetch()
        .await
        .map_err(StaffError::Begin)?
        .data;
    let id = begun.message_id;
    let to = begun.to.decode();
    let sent = send_recorded(whatsapp, db, Record::Staff, id, to, Content::Text(text));
    let span = tracing::info_span!("staff_message", message_id = %id);
    let (outcome, row) = sent.instrument(span).await;
    let delivered = outcome.map_err(StaffError::Send)?;
    // Sent, but not recorded as such: it stays `sending` (never sent twice).
    Ok(row.unwrap_or_else(|| json!({"id": id, "status": delivered.status})))
}
