//! `whatsapp_claim_message`: a stored message claimed with a lease (no two workers ever
//! process one message), with everything needed to answer it, decoded once into domain types.

use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::assistant::turn::{Budget, ClaimedMessage, Contact, HistoryItem, OrgSettings};
use crate::domain::{ConversationMode, PhoneNumberId};
use crate::startup::AppState;
use crate::supabase::{Caller, DbError, Postgrest};

/// A claimed message with its contact, conversation, the org's settings, the rate-limit count,
/// the token use and the recent conversation.
#[derive(Debug, Deserialize)]
pub struct Claim {
    pub message: ClaimedMessage,
    pub contact: Contact,
    pub conversation: ClaimedConversation,
    pub phone_number_id: PhoneNumberId,
    pub settings: OrgSettings,
    pub rate_limit: RateLimit,
    pub budget: Budget,
    #[serde(default)]
    pub history: Vec<HistoryItem>,
    /// The reply an earlier attempt composed but could not send: sent again as it is, so a
    /// retry never runs the assistant's tools twice.
    #[serde(default)]
    pub previous_reply: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ClaimedConversation {
    pub mode: ConversationMode,
    pub window_open: bool,
}

/// The contact's messages in the current rate-limit window, and the org's limit.
#[derive(Debug, Deserialize)]
pub struct RateLimit {
    pub limit: i64,
    pub hits: i64,
}

/// What a claim attempt found.
pub enum Claimed {
    /// Claimed by this worker.
    Claim(Box<Claim>),
    /// Claimed, but the stored rows do not decode: the message fails on its own.
    Undecodable(serde_json::Error),
    /// Processed already, another worker holds it, or discarded (past its last attempt).
    Unavailable,
}

/// Claims `id` for `PROCESSING_LEASE_SECONDS`; each claim counts an attempt, and a message
/// claimed `MAX_ATTEMPTS` times already is discarded instead (`Unavailable`).
pub async fn claim(state: &AppState, db: &Postgrest, id: Uuid) -> Result<Claimed, DbError> {
    let lease = state.settings.processing.lease.as_secs();
    let history = state.assistant.history_messages();
    let found: Option<Value> = db
        .rpc("whatsapp_claim_message", Caller::Service)
        .args(&json!({
            "p_message_id": id,
            "p_lease_seconds": lease,
            "p_history": history,
            "p_max_attempts": state.settings.processing.max_attempts,
        }))
        .fetch()
        .await?
        .data;
    Ok(match found.map(serde_json::from_value) {
        None => Claimed::Unavailable,
        Some(Ok(claim)) => Claimed::Claim(Box::new(claim)),
        Some(Err(error)) => Claimed::Undecodable(error),
    })
}
