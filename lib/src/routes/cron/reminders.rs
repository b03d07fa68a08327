//! `GET /api/cron/check-reminders`: sends due reminders, exactly once.
//!
//! Per batch, one `cron_claim_reminders` (a lease and a token per reminder); per reminder,
//! `cron_begin_reminder` (moved to `sending`, outbound message recorded) before the Graph API
//! call, then `cron_finish_reminder` (sent; the next occurrence of a recurring one) or
//! `cron_fail_reminder` (retried with backoff; after [`ATTEMPTS`] failed, dead-lettered with an
//! alert; never retried when the send may have happened). See
//! `supabase/migrations/20261123000004_cron.sql`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::StreamExt;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::Budget;
use crate::domain::{PhoneNumberId, Recurrence, WaId, Wamid};
use crate::host::HandlerResult;
use crate::routes::webhook::process::Alert;
use crate::startup::AppState;
use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::{DeliveryError, GraphAction, GraphError, Sent, Template};

/// Sends of one reminder occurrence by check-reminders before it goes to the dead letter queue
/// (retry-failed then tries it until the dead letter queue's last attempt).
pub const ATTEMPTS: u32 = 3;

/// A claimed reminder with everything needed to send it (`private.cron_reminder_claim`).
#[derive(Debug, Deserialize)]
pub struct ClaimedReminder {
    id: Uuid,
    token: Uuid,
    text: String,
    due_at: DateTime<Utc>,
    recurrence: Recurrence,
    timezone: String,
    wa_id: String,
    conversation_id: Option<Uuid>,
    phone_number_id: Option<String>,
    window_open: bool,
    reminder_template: Option<String>,
    template_language: String,
}

#[derive(Deserialize)]
struct Claimed {
    reminders: Vec<ClaimedReminder>,
    skipped: u64,
    unknown: u64,
}

/// What one check-reminders run did.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// Reminders claimed (sent, retried, failed or lost to another run).
    claimed: u64,
    sent: u64,
    /// Failed for good: dead-lettered, or outcome unknown.
    failed: u64,
    /// Failed, tried again after a backoff.
    retrying: u64,
    /// Sent and scheduled again (recurring).
    rescheduled: u64,
    /// Not sent: the contact opted out (the reminder is cancelled).
    skipped: u64,
    /// The database failed mid-send: the lease decides what happens next.
    errors: u64,
    duration_ms: u64,
}

/// How one reminder's send ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        rescheduled: bool,
    },
    Retrying,
    Failed,
    /// Another run holds it now, or it was cancelled meanwhile: not sent by this run.
    Lost,
    /// A database call failed; the reminder's lease decides what happens next.
    Interrupted,
}

/// Claims and sends due reminders until none is left or the time budget is spent.
pub(super) async fn check_reminders(state: &AppState) -> HandlerResult {
    let db = state.db()?;
    let cron = &state.settings.cron;
    let budget = Budget::start(cron.time_budget);
    let mut summary = Summary::default();
    while !budget.spent() {
        let batch = claim(state, db).await?;
        summary.skipped += batch.skipped;
        summary.failed += batch.unknown;
        if batch.reminders.is_empty() && batch.skipped == 0 && batch.unknown == 0 {
            break;
        }
        summary.claimed += batch.reminders.len() as u64;
        let outcomes: Vec<Outcome> = futures_util::stream::iter(batch.reminders)
            .map(|reminder| send(state, db, reminder))
            .buffer_unordered(cron.concurrency)
            .collect()
            .await;
        for outcome in outcomes {
            summary.count(outcome);
        }
    }
    summary.duration_ms = budget.elapsed_ms();
    tracing::info!(
        claimed = summary.claimed,
        sent = summary.sent,
        failed = summary.failed,
        retrying = summary.retrying,
        rescheduled = summary.rescheduled,
        skipped = summary.skipped,
        errors = summary.errors,
        duration_ms = summary.duration_ms,
        "check-reminders run"
    );
    Ok(crate::routes::json(StatusCode::OK, &summary))
}

impl Summary {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Sent { rescheduled } => {
                self.sent += 1;
                self.rescheduled += u64::from(rescheduled);
            }
            Outcome::Retrying => self.retrying += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Lost => {}
            Outcome::Interrupted => self.errors += 1,
        }
    }
}

async fn claim(state: &AppState, db: &Postgrest) -> Result<Claimed, DbError> {
    let cron = &state.settings.cron;
    Ok(db
        .rpc("cron_claim_reminders", Caller::Service)
        .args(&json!({"p_limit": cron.batch_size, "p_lease_seconds": cron.lease.as_secs()}))
        .fetch()
        .await?
        .data)
}

/// Why a reminder was not sent.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("outside the 24 h window and no approved reminder template is configured (assistant_settings.reminder_template)")]
    NoTemplate,
    #[error("the contact has no conversation with a WhatsApp number of the org")]
    NoConversation,
    #[error("the stored reminder has an invalid {0}")]
    InvalidStored(&'static str),
}

impl From<DeliveryError> for SendError {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::Graph(error) => Self::Graph(error),
            DeliveryError::NoTemplate => Self::NoTemplate,
        }
    }
}

impl SendError {
    /// How `cron_fail_reminder` treats it: `unknown` when Meta may have taken the message
    /// (never sent again), `retry` when it certainly did not, `final` when retrying cannot
    /// help until someone fixes the data or the settings.
    fn mode(&self) -> &'static str {
        match self {
            Self::Graph(error) if error.maybe_sent() => "unknown",
            Self::Graph(_) => "retry",
            _ => "final",
        }
    }

    fn alert(&self) -> Option<Alert> {
        matches!(self, Self::Graph(e) if e.action() == GraphAction::TokenExpired).then(|| Alert {
            kind: "whatsapp_token_expired",
            severity: "critical",
            message: "The WhatsApp access token expired (Graph error 190): replace WHATSAPP_ACCESS_TOKEN.",
        })
    }
}

/// A reminder as sent, for `cron_finish_reminder`.
#[derive(Serialize)]
struct Finished {
    status: &'static str,
    wamid: Option<Wamid>,
    wamids: Vec<Wamid>,
    #[serde(rename = "type")]
    kind: &'static str,
    next_due_at: Option<DateTime<Utc>>,
}

/// Sends one claimed reminder and records the outcome; never sends an occurrence twice.
pub async fn send(state: &AppState, db: &Postgrest, reminder: ClaimedReminder) -> Outcome {
    let mut message_id = None;
    let recorded = match deliver(state, db, &reminder, &mut message_id).await {
        Ok(Some(finished)) => finish(db, &reminder, message_id, &finished).await,
        Ok(None) => Ok(Outcome::Lost),
        Err(SendError::Database(error)) => Err(error),
        Err(error) => {
            tracing::warn!(reminder_id = %reminder.id, error = %error, "reminder not sent");
            fail(state, db, &reminder, message_id, &error).await
        }
    };
    recorded.unwrap_or_else(|error| {
        tracing::error!(reminder_id = %reminder.id, error = %error, "could not record a reminder's send; its lease decides");
        Outcome::Interrupted
    })
}

/// Begins and sends; `None` when the claim is no longer this run's.
async fn deliver(
    state: &AppState,
    db: &Postgrest,
    reminder: &ClaimedReminder,
    message_id: &mut Option<Uuid>,
) -> Result<Option<Finished>, SendError> {
    let conversation = reminder.conversation_id.ok_or(SendError::NoConversation)?;
    let from = reminder
        .phone_number_id
        .as_deref()
        .ok_or(SendError::NoConversation)
        .and_then(|id| PhoneNumberId::parse(id).ok_or(SendError::InvalidStored("number")))?;
    let to = WaId::parse(&reminder.wa_id).ok_or(SendError::InvalidStored("wa_id"))?;
    let template = reminder.reminder_template.clone().map(|name| Template {
        name,
        language: reminder.template_language.clone(),
    });
    if !reminder.window_open && template.is_none() {
        return Err(SendError::NoTemplate);
    }
    let text = format!("⏰ {}", reminder.text);
    let kind = if reminder.window_open {
        "text"
    } else {
        "template"
    };
    let Some(id) = begin(state, db, reminder, conversation, kind, &text).await? else {
        return Ok(None);
    };
    *message_id = Some(id);
    let retry_base = state.settings.processing.retry_base;
    let (sent, kind) = state
        .whatsapp
        .deliver(&from, &to, text, reminder.window_open, template, retry_base)
        .await?;
    Ok(Some(finished(reminder, sent, kind)))
}

fn finished(reminder: &ClaimedReminder, sent: Sent, kind: &'static str) -> Finished {
    let zone = reminder.timezone.parse::<Tz>().unwrap_or_else(|_| {
        tracing::warn!(reminder_id = %reminder.id, "unknown reminder time zone; using UTC");
        Tz::UTC
    });
    Finished {
        status: if sent.simulated { "simulated" } else { "sent" },
        wamid: sent.wamids.first().cloned(),
        wamids: sent.wamids,
        kind,
        next_due_at: reminder
            .recurrence
            .next_after(reminder.due_at, zone, Utc::now()),
    }
}

async fn begin(
    state: &AppState,
    db: &Postgrest,
    reminder: &ClaimedReminder,
    conversation: Uuid,
    kind: &str,
    text: &str,
) -> Result<Option<Uuid>, DbError> {
    Ok(db
        .rpc("cron_begin_reminder", Caller::Service)
        .args(&json!({
            "p_reminder_id": reminder.id,
            "p_token": reminder.token,
            "p_conversation_id": conversation,
            "p_type": kind,
            "p_body": text,
            "p_lease_seconds": state.settings.cron.lease.as_secs(),
        }))
        .fetch()
        .await?
        .data)
}

async fn finish(
    db: &Postgrest,
    reminder: &ClaimedReminder,
    message_id: Option<Uuid>,
    finished: &Finished,
) -> Result<Outcome, DbError> {
    let applied: bool = db
        .rpc("cron_finish_reminder", Caller::Service)
        .args(&json!({
            "p_reminder_id": reminder.id,
            "p_token": reminder.token,
            "p_message_id": message_id,
            "p_result": finished,
        }))
        .fetch()
        .await?
        .data;
    if !applied {
        tracing::warn!(reminder_id = %reminder.id, "a reminder was sent after its claim ended");
    }
    Ok(Outcome::Sent {
        rescheduled: finished.next_due_at.is_some(),
    })
}

async fn fail(
    state: &AppState,
    db: &Postgrest,
    reminder: &ClaimedReminder,
    message_id: Option<Uuid>,
    error: &SendError,
) -> Result<Outcome, DbError> {
    let result: Option<String> = db
        .rpc("cron_fail_reminder", Caller::Service)
        .args(&json!({
            "p_reminder_id": reminder.id,
            "p_token": reminder.token,
            "p_message_id": message_id,
            "p_error": error.to_string(),
            "p_mode": error.mode(),
            "p_max_attempts": ATTEMPTS,
            "p_backoff_seconds": state.settings.cron.retry_base.as_secs(),
            "p_alert": error.alert(),
        }))
        .fetch()
        .await?
        .data;
    Ok(match result.as_deref() {
        Some("retrying") => Outcome::Retrying,
        Some(_) => Outcome::Failed,
        None => Outcome::Lost,
    })
}
