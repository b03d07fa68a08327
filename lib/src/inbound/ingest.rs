//! `whatsapp_ingest`: one database round trip stores every message and status of a verified
//! delivery (dedupe on wamid, opens the 24 h window, routes by phone_number_id to the org).

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::Delivery;

/// What the delivery added.
#[derive(Debug, Deserialize)]
pub struct Ingested {
    /// Messages stored for the first time: to be processed.
    pub new_message_ids: Vec<Uuid>,
    pub statuses_applied: u64,
    /// Items for a business number no org has (ignored).
    pub unknown_numbers: u64,
}

/// Stores `delivery`; an error means nothing was stored (answer 5xx: Meta redelivers).
pub async fn ingest(db: &Postgrest, delivery: &Delivery) -> Result<Ingested, DbError> {
    Ok(db
        .rpc("whatsapp_ingest", Caller::Service)
        .args(&json!({
            "p_delivery_id": delivery.id,
            "p_messages": delivery.messages,
            "p_statuses": delivery.statuses,
        }))
        .fetch()
        .await?
        .data)
}
