//! Due reminders sent, exactly once (`/api/cron/check-reminders`).
//!
//! Per batch, one `cron_claim_reminders` (a lease and a token per reminder); per reminder,
//! once the time budget allows it, `cron_begin_reminder` (moved to `sending`, outbound message
//! recorded, the next occurrence of a recurring one stored) before the Graph API call, then
//! `cron_finish_reminder` (sent; a recurring one pending at its next occurrence) or
//! `cron_fail_reminder` (retried with backoff; after [`ATTEMPTS`] failed, dead-lettered with an
//! alert; never retried when the send may have happened; a recurring one continues at its next
//! occurrence either way). Reminders claimed but not begun when the budget runs out are
//! released for the next run (`cron_release_reminders`, which gives back the attempt the claim
//! counted). A claimed row that does not decode fails on its own; a panic while sending one is
//! that reminder's failure ([`isolated`]). Every claim counts an attempt: a reminder claimed
//! `MAX_ATTEMPTS` times already is discarded by the claim, with an alert. A run answers its
//! summary unless the database is unreachable. See `supabase/migrations/20261123000004_cron.sql`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::{JobError, Jobs, TimeBudget};
use crate::domain::{Alert, AlertKind, MessageKind, Recurrence};
use crate::inbound::isolated;
use crate::send::{self, Content, SendError, StoredRecipient};
use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::Delivered;

/// Sends of one reminder occurrence by check-reminders before it goes to the dead letter queue
/// (retry-failed then tries it until `MAX_ATTEMPTS`, the dead letter queue's last attempt);
/// never more than `MAX_ATTEMPTS` ([`sends_before_dead_letter`]).
pub const ATTEMPTS: u32 = 3;

/// [`ATTEMPTS`], within the configured `MAX_ATTEMPTS`.
fn sends_before_dead_letter(jobs: &Jobs) -> u32 {
    ATTEMPTS.min(jobs.settings.max_attempts)
}

/// A reminder's claim: what any outcome is recorded against.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct ClaimKey {
    id: Uuid,
    token: Uuid,
}

/// A claimed reminder with everything needed to send it (`private.cron_reminder_claim`).
#[derive(Debug, Deserialize)]
pub struct ClaimedReminder {
    #[serde(flatten)]
    key: ClaimKey,
    text: String,
    due_at: DateTime<Utc>,
    recurrence: Recurrence,
    timezone: String,
    conversation_id: Option<Uuid>,
    #[serde(flatten)]
    to: StoredRecipient,
}

/// A batch of claims; each reminder is decoded on its own.
#[derive(Deserialize)]
struct Claimed {
    reminders: Vec<Value>,
    skipped: u64,
    unknown: u64,
    /// Past their last attempt: discarded with an alert by the claim.
    #[serde(default)]
    discarded: u64,
}

/// What one check-reminders run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Reminders claimed (sent, retried, failed or lost to another run).
    claimed: u64,
    sent: u64,
    /// Failed for good: dead-lettered, outcome unknown, or discarded past the last attempt.
    failed: u64,
    /// Failed, tried again after a backoff.
    retrying: u64,
    /// Recurring, scheduled at their next occurrence (after a send, or an occurrence that
    /// failed for good).
    rescheduled: u64,
    /// Not sent: the contact opted out (the reminder is cancelled).
    skipped: u64,
    /// Claimed but not begun before the time budget ran out: released for the next run.
    deferred: u64,
    /// The database failed mid-send, a send panicked before its outcome was recorded, or a
    /// claim failed: the lease decides what happens next.
    errors: u64,
    duration_ms: u64,
}

/// How one reminder's send ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReminderOutcome {
    Sent {
        rescheduled: bool,
    },
    Retrying,
    /// Failed for good (dead-lettered, or outcome unknown); a recurring reminder continues.
    Failed {
        rescheduled: bool,
    },
    /// Another run holds it now, or it was cancelled meanwhile: not sent by this run.
    Lost,
    /// A database call failed; the reminder's lease decides what happens next.
    Interrupted,
}

/// Claims and sends due reminders until none is left or the time budget is spent.
pub async fn check_reminders(jobs: &Jobs) -> Result<Summary, JobError> {
    let db = jobs.db()?;
    let budget = TimeBudget::start(jobs.settings.cron.time_budget);
    let mut summary = Summary::default();
    while !budget.spent() {
        let batch = match claim(jobs, db).await {
            Ok(batch) => batch,
            // The database is down: the run fails (503) and the next one starts over.
            Err(error) if error.is_unavailable() => return Err(error.into()),
            Err(error) => {
                // Not one item's failure: reported, and the next run tries again.
                tracing::error!(error = %error, "could not claim reminders");
                summary.errors += 1;
                break;
            }
        };
        summary.skipped += batch.skipped;
        summary.failed += batch.unknown + batch.discarded;
        if batch.reminders.is_empty()
            && batch.skipped == 0
            && batch.unknown == 0
            && batch.discarded == 0
        {
            break;
        }
        summary.claimed += batch.reminders.len() as u64;
        let unstarted = send_batch(jobs, db, &budget, batch.reminders, &mut summary).await;
        summary.deferred += release(db, &unstarted).await;
    }
    summary.duration_ms = budget.elapsed_ms();
    tracing::info!(
        claimed = summary.claimed,
        sent = summary.sent,
        failed = summary.failed,
        retrying = summary.retrying,
        rescheduled = summary.rescheduled,
        skipped = summary.skipped,
        deferred = summary.deferred,
        errors = summary.errors,
        duration_ms = summary.duration_ms,
        "check-reminders run"
    );
    Ok(summary)
}

impl Summary {
    fn count(&mut self, outcome: ReminderOutcome) {
        match outcome {
            ReminderOutcome::Sent { rescheduled } => {
                self.sent += 1;
                self.rescheduled += u64::from(rescheduled);
            }
            ReminderOutcome::Retrying => self.retrying += 1,
            ReminderOutcome::Failed { rescheduled } => {
                self.failed += 1;
                self.rescheduled += u64::from(rescheduled);
            }
            ReminderOutcome::Lost => {}
            ReminderOutcome::Interrupted => self.errors += 1,
        }
    }
}

/// Sends a claimed batch, `CRON_CONCURRENCY` reminders at once, beginning no send once the
/// time budget is spent (a send begun then could outlast the function's `maxDuration`);
/// returns the claims not begun.
async fn send_batch(
    jobs: &Jobs,
    db: &Postgrest,
    budget: &TimeBudget,
    reminders: Vec<Value>,
    summary: &mut Summary,
) -> Vec<ClaimKey> {
    let results: Vec<Result<ReminderOutcome, ClaimKey>> = futures_util::stream::iter(reminders)
        .map(|row| async move {
            // One reminder's work, on its own: a panic is its failure, never the batch's.
            isolated(async move {
                let reminder = match serde_json::from_value::<ClaimedReminder>(row.clone()) {
                    Ok(reminder) => reminder,
                    Err(error) => return Ok(fail_undecodable(jobs, db, row, &error).await),
                };
                if budget.spent() {
                    return Err(reminder.key);
                }
                Ok(send(jobs, db, reminder).await)
            })
            .await
            .unwrap_or_else(|_| {
                tracing::error!("a reminder's work panicked; its lease decides");
                Ok(ReminderOutcome::Interrupted)
            })
        })
        .buffer_unordered(jobs.settings.cron.concurrency)
        .collect()
        .await;
    let mut unstarted = Vec::new();
    for result in results {
        match result {
            Ok(outcome) => summary.count(outcome),
            Err(reminder) => unstarted.push(reminder),
        }
    }
    unstarted
}

/// Un-claims reminders this run will not begin, so that the next run takes them at once; if
/// that fails, their lease runs out. Returns how many were released.
async fn release(db: &Postgrest, claims: &[ClaimKey]) -> u64 {
    if claims.is_empty() {
        return 0;
    }
    let claims: Vec<_> = claims
        .iter()
        .map(|key| json!({"id": key.id, "token": key.token}))
        .collect();
    let released = db
        .rpc("cron_release_reminders", Caller::Service)
        .args(&json!({ "p_claims": claims }))
        .fetch::<u64>()
        .await;
    released.map(|answer| answer.data).unwrap_or_else(|error| {
        tracing::warn!(error = %error, "could not release unstarted reminders; their lease decides");
        0
    })
}

async fn claim(jobs: &Jobs, db: &Postgrest) -> Result<Claimed, DbError> {
    let cron = &jobs.settings.cron;
    Ok(db
        .rpc("cron_claim_reminders", Caller::Service)
        .args(&json!({
            "p_limit": cron.batch_size,
            "p_lease_seconds": cron.lease.as_secs(),
            "p_max_attempts": jobs.settings.max_attempts,
        }))
        .fetch()
        .await?
        .data)
}

/// Why a reminder was not sent.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Send(SendError),
    #[error("outside the 24 h window and no approved reminder template is configured (assistant_settings.reminder_template)")]
    NoTemplate,
    #[error("the contact has no conversation with a WhatsApp number of the org")]
    NoConversation,
    /// The claimed row does not decode (the reason names no stored value).
    #[error("the stored reminder cannot be read: {0}")]
    Undecodable(String),
    /// The fixed reason (a panic's message may quote the reminder's text); `begun`: the send
    /// had begun, so it may have happened.
    #[error("sending panicked")]
    Panicked { begun: bool },
}

impl From<SendError> for Failure {
    fn from(error: SendError) -> Self {
        match error {
            SendError::NoTemplate => Self::NoTemplate,
            error => Self::Send(error),
        }
    }
}

impl Failure {
    /// How `cron_fail_reminder` treats it: `unknown` when Meta may have taken the message
    /// (never sent again), `retry` when it certainly did not, `final` when retrying cannot
    /// help until someone fixes the data or the settings.
    fn mode(&self) -> &'static str {
        match self {
            Self::Send(error) if error.maybe_sent() => "unknown",
            Self::Send(SendError::Graph(_)) => "retry",
            Self::Panicked { begun: true } => "unknown",
            _ => "final",
        }
    }

    fn alert(&self) -> Option<Alert> {
        matches!(self, Self::Send(e) if e.token_expired())
            .then_some(Alert(AlertKind::WhatsappTokenExpired))
    }
}

impl ClaimedReminder {
    /// The occurrence after this one for a recurring reminder (where the series continues
    /// whatever this send's outcome), in the reminder's time zone (unknown: UTC).
    fn next_occurrence(&self) -> Option<DateTime<Utc>> {
        let zone = self.timezone.parse::<Tz>().unwrap_or_else(|_| {
            tracing::warn!("unknown reminder time zone; using UTC");
            Tz::UTC
        });
        self.recurrence.next_after(self.due_at, zone, Utc::now())
    }
}

/// Sends one claimed reminder and records the outcome; never sends an occurrence twice. A
/// panic while computing or sending it is recorded as its failure ("sending panicked"; never
/// sent again once begun).
#[tracing::instrument(name = "reminder", skip_all, fields(reminder_id = %reminder.key.id))]
pub async fn send(jobs: &Jobs, db: &Postgrest, reminder: ClaimedReminder) -> ReminderOutcome {
    let key = reminder.key;
    let mut next = None;
    let mut message_id = None;
    let attempt = isolated(async {
        next = reminder.next_occurrence();
        deliver(jobs, db, &reminder, next, &mut message_id).await
    })
    .await
    .unwrap_or_else(|_| {
        Err(Failure::Panicked {
            begun: message_id.is_some(),
        })
    });
    let recorded = match attempt {
        Ok(Some(delivered)) => finish(db, key, message_id, &delivered, next).await,
        Ok(None) => Ok(ReminderOutcome::Lost),
        Err(Failure::Database(error)) => Err(error),
        Err(error) => {
            tracing::warn!(error = %error, "reminder not sent");
            fail(jobs, db, key, message_id, &error, next).await
        }
    };
    recorded.unwrap_or_else(|error| interrupted(&error))
}

/// A claimed row that does not decode: failed for good on its own (its series, unreadable,
/// does not continue); the batch goes on.
async fn fail_undecodable(
    jobs: &Jobs,
    db: &Postgrest,
    row: Value,
    error: &serde_json::Error,
) -> ReminderOutcome {
    let Ok(key) = serde_json::from_value::<ClaimKey>(row) else {
        tracing::error!("a claimed reminder without id or token; its lease decides");
        return ReminderOutcome::Interrupted;
    };
    let error = Failure::Undecodable(format!(
        "{:?} error at column {}",
        error.classify(),
        error.column()
    ));
    let span = tracing::info_span!("reminder", reminder_id = %key.id);
    let failed = async {
        tracing::warn!(error = %error, "reminder not sent");
        fail(jobs, db, key, None, &error, None).await
    };
    let recorded = failed.instrument(span.clone()).await;
    span.in_scope(|| recorded.unwrap_or_else(|error| interrupted(&error)))
}

fn interrupted(error: &DbError) -> ReminderOutcome {
    tracing::error!(error = %error, "could not record a reminder's send; its lease decides");
    ReminderOutcome::Interrupted
}

/// Begins and sends; `None` when the claim is no longer this run's.
async fn deliver(
    jobs: &Jobs,
    db: &Postgrest,
    reminder: &ClaimedReminder,
    next: Option<DateTime<Utc>>,
    message_id: &mut Option<Uuid>,
) -> Result<Option<Delivered>, Failure> {
    let conversation = reminder.conversation_id.ok_or(Failure::NoConversation)?;
    let to = reminder.to.decode()?;
    if !reminder.to.reachable() {
        return Err(Failure::NoTemplate);
    }
    let text = format!("⏰ {}", reminder.text);
    let kind = if to.window_open {
        MessageKind::Text
    } else {
        MessageKind::Template
    };
    let Some(id) = begin(jobs, db, reminder, conversation, kind, &text, next).await? else {
        return Ok(None);
    };
    *message_id = Some(id);
    let sent = send::send(&jobs.whatsapp, id, &to, Content::Text(text)).await;
    Ok(Some(sent?))
}

async fn begin(
    jobs: &Jobs,
    db: &Postgrest,
    reminder: &ClaimedReminder,
    conversation: Uuid,
    kind: MessageKind,
    text: &str,
    next: Option<DateTime<Utc>>,
) -> Result<Option<Uuid>, DbError> {
    Ok(db
        .rpc("cron_begin_reminder", Caller::Service)
        .args(&json!({
            "p_reminder_id": reminder.key.id,
            "p_token": reminder.key.token,
            "p_conversation_id": conversation,
            "p_type": kind,
            "p_body": text,
            "p_lease_seconds": jobs.settings.cron.lease.as_secs(),
            "p_next_due_at": next,
        }))
        .fetch()
        .await?
        .data)
}

async fn finish(
    db: &Postgrest,
    key: ClaimKey,
    message_id: Option<Uuid>,
    delivered: &Delivered,
    next: Option<DateTime<Utc>>,
) -> Result<ReminderOutcome, DbError> {
    let applied: bool = db
        .rpc("cron_finish_reminder", Caller::Service)
        .args(&json!({
            "p_reminder_id": key.id,
            "p_token": key.token,
            "p_message_id": message_id,
            "p_result": delivered,
        }))
        .fetch()
        .await?
        .data;
    if !applied {
        tracing::warn!("a reminder was sent after its claim ended");
    }
    Ok(ReminderOutcome::Sent {
        rescheduled: next.is_some(),
    })
}

async fn fail(
    jobs: &Jobs,
    db: &Postgrest,
    key: ClaimKey,
    message_id: Option<Uuid>,
    error: &Failure,
    next: Option<DateTime<Utc>>,
) -> Result<ReminderOutcome, DbError> {
    let result: Option<String> = db
        .rpc("cron_fail_reminder", Caller::Service)
        .args(&json!({
            "p_reminder_id": key.id,
            "p_token": key.token,
            "p_message_id": message_id,
            "p_error": error.to_string(),
            "p_mode": error.mode(),
            "p_max_attempts": sends_before_dead_letter(jobs),
            "p_backoff_seconds": jobs.settings.cron.retry_base.as_secs(),
            "p_alert": error.alert(),
            "p_next_due_at": next,
        }))
        .fetch()
        .await?
        .data;
    Ok(match result.as_deref() {
        Some("retrying") => ReminderOutcome::Retrying,
        Some(_) => ReminderOutcome::Failed {
            rescheduled: next.is_some(),
        },
        None => ReminderOutcome::Lost,
    })
}
