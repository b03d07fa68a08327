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
//! number for [`ALERT_AFTER`]: an `outcome_unresolved` alert, nothing guessed. A rich reply is
//! resent from what was stored (`payload.rich`), never recomposed. Texts that
//! failed after acceptance with 131047 are sent once more, as the org's template.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use super::{Jobs, TimeBudget};
use crate::inbound::isolated;
use crate::send::{send_recorded, Content, Record, SendError, StoredRecipient};
use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::WhatsApp;

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
    /// A rich reply's content (`payload.rich`): resent as it was, never recomposed.
    #[serde(default)]
    rich: Option<serde_json::Value>,
    #[serde(flatten)]
    to: StoredRecipient,
    opted_out: bool,
}

/// One resolver pass: claims the messages the rule says were never accepted (and alerts on
/// silent streams), resends them `CRON_CONCURRENCY` at once while the time budget lasts, and
/// purges old early statuses.
pub async fn resolve(jobs: &Jobs, db: &Postgrest, budget: &TimeBudget) -> Result<(), DbError> {
    let claimed: Vec<serde_json::Value> = db
        .rpc("whatsapp_claim_unresolved", Caller::Service)
        .args(&json!({
            "p_grace_seconds": jobs.settings.cron.outcome_grace.as_secs(),
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
            let id = row.get("id").cloned();
            let Ok(message) = serde_json::from_value::<Unresolved>(row) else {
                tracing::error!("an unresolved message that does not decode");
                fail_undecodable(db, id).await;
                return false;
            };
            let span = tracing::info_span!("resend", message_id = %message.id);
            let resent = resend(&jobs.whatsapp, db, message).instrument(span);
            isolated(resent).await.unwrap_or(false)
        })
        .buffer_unordered(jobs.settings.cron.concurrency)
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
async fn resend(whatsapp: &WhatsApp, db: &Postgrest, message: Unresolved) -> bool {
    let content = Content::from_stored(message.body, message.rich.as_ref());
    let (to, content) = match (message.opted_out, content) {
        (true, _) => (Err(REFUSED_OPTED_OUT), Content::Text(String::new())),
        (false, Err(error)) => (Err(error), Content::Text(String::new())),
        (false, Ok(content)) => (message.to.decode(), content),
    };
    let (outcome, _) = send_recorded(whatsapp, db, Record::Resend, message.id, to, content).await;
    match &outcome {
        Ok(_) => tracing::info!(kind = ?message.kind, "unaccepted send sent again"),
        Err(error) if error.maybe_sent() => {}
        Err(error) => tracing::warn!(error = %error, "resend refused"),
    }
    outcome.is_ok()
}

/// A claimed message that does not decode fails on its own (claimed again, it would come back
/// every run): recorded `failed` with the reason.
async fn fail_undecodable(db: &Postgrest, id: Option<serde_json::Value>) {
    let Some(id) = id else { return };
    let failed =
        json!({"status": "failed", "error": {"message": "the stored message does not decode"}});
    let recorded = db
        .rpc("whatsapp_record_outcome", Caller::Service)
        .args(&json!({"p_message_id": id, "p_result": failed}))
        .execute()
        .await;
    if let Err(error) = recorded {
        tracing::error!(error = %error, "an undecodable message not recorded as failed");
    }
}

const REFUSED_OPTED_OUT: SendError =
    SendError::Recipient("the contact opted out before the send was resolved");
