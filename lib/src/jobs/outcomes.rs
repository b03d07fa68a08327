//! Unknown send outcomes resolved, not abandoned (a stage of `/api/cron/retry-failed`).
//!
//! An outbound message (reply, reminder or staff message) is `sending` from just before its
//! Graph call until its outcome is recorded; a crash, a timeout after the request left or a
//! panic leaves it there. Every send carries the message's id as `biz_opaque_callback_data`,
//! so its first status confirms it (`whatsapp_ingest`, by callback data even before its wamids
//! are recorded) and settles the message it answers. The rule for the rest
//! (`whatsapp_claim_unresolved`, docs/webhook.md#outcomes): `sending` for longer than
//! the grace period `OUTCOME_GRACE_SECONDS`, no status for it, and a status of the same business
//! number received after its send began + the grace period (the stream works, so Meta never accepted it): sent again, with the
//! same callback data, and the outcome recorded (`whatsapp_record_outcome`). No status of the
//! number for [`ALERT_AFTER`]: an `outcome_unresolved` alert, nothing guessed. Texts that
//! failed after acceptance with 131047 are sent once more, as the org's template.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::TimeBudget;
use crate::domain::{PhoneNumberId, WaId};
use crate::inbound::isolated;
use crate::startup::AppState;
use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::{Delivered, DeliveryError, Recipient, Template};

/// How long an unknown outcome may wait for the number's status stream before an alert.
pub const ALERT_AFTER: Duration = Duration::from_secs(1800);

/// Messages claimed per run.
const BATCH: usize = 50;

/// Statuses of messages that never became known, purged per run (after 7 days).
const PURGE_BATCH: usize = 5_000;

/// What the outbound message is (`whatsapp_claim_unresolved`).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OutboundKind {
    Reply,
    Reminder,
    Staff,
}

/// An outbound message claimed for a resend, with what it takes to send it.
#[derive(Deserialize)]
struct Unresolved {
    id: Uuid,
    kind: OutboundKind,
    body: Option<String>,
    phone_number_id: String,
    wa_id: String,
    window_open: bool,
    template: Option<String>,
    template_language: String,
    opted_out: bool,
}

/// The outcome, for `whatsapp_record_outcome` (a send's, or why it certainly was not sent).
#[derive(Serialize)]
#[serde(untagged)]
enum Outcome<'a> {
    Delivered(&'a Delivered),
    Failed {
        status: &'static str,
        error: serde_json::Value,
    },
}

impl Outcome<'_> {
    fn failed(reason: &str) -> Self {
        Self::Failed {
            status: "failed",
            error: json!({ "message": reason }),
        }
    }
}

/// One resolver pass: claims the messages the rule says were never accepted (and alerts on
/// silent streams), resends them `CRON_CONCURRENCY` at once while the time budget lasts, and
/// purges old early statuses.
pub async fn resolve(state: &AppState, db: &Postgrest, budget: &TimeBudget) -> Result<(), DbError> {
    let claimed: Vec<serde_json::Value> = db
        .rpc("whatsapp_claim_unresolved", Caller::Service)
        .args(&json!({
            "p_grace_seconds": state.settings.cron.outcome_grace.as_secs(),
            "p_alert_seconds": ALERT_AFTER.as_secs(),
            "p_limit": BATCH,
        }))
        .fetch()
        .await?
        .data;
    let resent: Vec<bool> = futures_util::stream::iter(claimed)
        .map(|row| async move {
            // A claim not sent now stays `sending`, claimable again after the grace period.
            if budget.spent() {
                return false;
            }
            let Ok(message) = serde_json::from_value::<Unresolved>(row) else {
                tracing::error!("an unresolved message that does not decode");
                return false;
            };
            isolated(resend(state, db, message)).await.unwrap_or(false)
        })
        .buffer_unordered(state.settings.cron.concurrency)
        .collect()
        .await;
    let purged: u64 = db
        .rpc("whatsapp_purge_early_statuses", Caller::Service)
        .args(&json!({ "p_limit": PURGE_BATCH }))
        .fetch()
        .await?
        .data;
    tracing::info!(
        resent = resent.iter().filter(|&&sent| sent).count(),
        early_statuses_purged = purged,
        "unknown send outcomes resolved"
    );
    Ok(())
}

/// Sends `message` again and records the outcome; whether Meta took it. One that may have
/// reached Meta again stays `sending` (its status, or the rule after another grace period,
/// decides).
async fn resend(state: &AppState, db: &Postgrest, message: Unresolved) -> bool {
    let id = message.id;
    let (recipient, text) = match recipient(&message) {
        Ok(ready) => ready,
        Err(reason) => {
            record(db, id, &Outcome::failed(reason)).await;
            return false;
        }
    };
    match state.whatsapp.send_text(&recipient, text, id).await {
        Ok(delivered) => {
            tracing::info!(message_id = %id, kind = ?message.kind, "unaccepted send sent again");
            record(db, id, &Outcome::Delivered(&delivered)).await;
            true
        }
        Err(DeliveryError::Graph(error)) if error.maybe_sent() => {
            tracing::warn!(message_id = %id, error = %error, "resend outcome unknown; the rule decides again");
            false
        }
        Err(error) => {
            tracing::warn!(message_id = %id, error = %error, "resend refused");
            record(db, id, &Outcome::failed(&error.to_string())).await;
            false
        }
    }
}

/// The recipient and text of a claimed message, or why it cannot be sent.
fn recipient(message: &Unresolved) -> Result<(Recipient, String), &'static str> {
    if message.opted_out {
        return Err("the contact opted out before the send was resolved");
    }
    let text = message.body.clone().ok_or("the message has no text")?;
    let recipient = Recipient {
        from: PhoneNumberId::parse(&message.phone_number_id)
            .ok_or("the stored business number is invalid")?,
        to: WaId::parse(&message.wa_id).ok_or("the stored contact number is invalid")?,
        window_open: message.window_open,
        template: message.template.clone().map(|name| Template {
            name,
            language: message.template_language.clone(),
        }),
    };
    Ok((recipient, text))
}

/// Records the outcome; a failure to record leaves it `sending` (logged), decided again later.
async fn record(db: &Postgrest, id: Uuid, outcome: &Outcome<'_>) {
    let recorded = db
        .rpc("whatsapp_record_outcome", Caller::Service)
        .args(&json!({ "p_message_id": id, "p_result": outcome }))
        .execute()
        .await;
    if let Err(error) = recorded {
        tracing::error!(message_id = %id, error = %error, "resolved outcome not recorded");
    }
}
