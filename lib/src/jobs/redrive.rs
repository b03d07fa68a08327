//! Failed and stuck work re-driven, old webhooks deleted (`/api/cron/retry-failed`).
//!
//! 1. Inbound messages stored but never processed (`received` for longer than
//!    `PROCESSING_LEASE_SECONDS`, or `processing` with an expired lease) are processed again
//!    (the pipeline's own [`inbound::process`], which claims atomically).
//! 2. Due dead letter entries are claimed with a lease (`cron_claim_dead_letters`) and re-driven
//!    once: an inbound message is processed again, a reminder sent again. The outcome settles
//!    the entry (`cron_settle_dead_letter`): resolved, pending with backoff, or past
//!    [`DEAD_LETTER_ATTEMPTS`] attempts, discarded with a critical alert.
//! 3. `webhooks` rows older than `WEBHOOK_RETENTION_DAYS` are deleted.
//!
//! No message is processed and no entry re-driven once `CRON_TIME_BUDGET_MS` is spent: an entry
//! claimed but not re-driven stays `retrying` until its lease runs out, then the next run
//! claims it again (no attempt is counted).

use std::collections::HashSet;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::reminders::{self, ClaimedReminder};
use super::TimeBudget;
use crate::error::ApiError;
use crate::inbound;
use crate::startup::AppState;
use crate::supabase::{Caller, DbError, Postgrest};

/// Attempts of a piece of work (an inbound message's processing, a reminder's send) after which
/// its dead letter entry is discarded with an alert.
pub const DEAD_LETTER_ATTEMPTS: u32 = 5;

/// Old `webhooks` rows deleted per round trip.
const PURGE_BATCH: usize = 5_000;

/// What one retry-failed run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Stuck inbound messages handed to processing again.
    messages_redriven: u64,
    /// Dead letter entries claimed (re-driven, or deferred).
    claimed: u64,
    resolved: u64,
    /// Failed again; tried later, after a backoff.
    retrying: u64,
    /// Past the last attempt (or their work is gone): given up, with an alert.
    discarded: u64,
    /// Claimed but not re-driven before the time budget ran out: left to their lease.
    deferred: u64,
    webhooks_deleted: u64,
    duration_ms: u64,
}

#[derive(Deserialize)]
struct ClaimedEntries {
    entries: Vec<Entry>,
    discarded: u64,
}

/// A claimed dead letter entry.
#[derive(Deserialize)]
pub struct Entry {
    pub id: Uuid,
    pub kind: DeadLetterKind,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

/// What failed (`dead_letter_queue.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    InboundMessage,
    OutboundMessage,
    Reminder,
    BillingEvent,
}

/// Where an entry stands (`dead_letter_queue.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStatus {
    Pending,
    Retrying,
    Resolved,
    Discarded,
}

/// One retry-failed run: stuck messages, due dead letters, old webhooks.
pub async fn retry_failed(state: &AppState) -> Result<Summary, ApiError> {
    let db = state.db()?;
    let budget = TimeBudget::start(state.settings.cron.time_budget);
    let mut summary = Summary {
        messages_redriven: redrive_stuck_messages(state, db, &budget).await?,
        ..Summary::default()
    };
    redrive_dead_letters(state, db, &budget, &mut summary).await?;
    summary.webhooks_deleted = purge_webhooks(state, db, &budget).await?;
    super::models::check_models(state).await;
    summary.duration_ms = budget.elapsed_ms();
    tracing::info!(
        messages_redriven = summary.messages_redriven,
        claimed = summary.claimed,
        resolved = summary.resolved,
        retrying = summary.retrying,
        discarded = summary.discarded,
        deferred = summary.deferred,
        webhooks_deleted = summary.webhooks_deleted,
        duration_ms = summary.duration_ms,
        "retry-failed run"
    );
    Ok(summary)
}

/// Processes stuck inbound messages, batch after batch, each message at most once per run and
/// none once the time budget is spent; returns how many were processed.
async fn redrive_stuck_messages(
    state: &AppState,
    db: &Postgrest,
    budget: &TimeBudget,
) -> Result<u64, DbError> {
    let cron = &state.settings.cron;
    let mut seen = HashSet::new();
    let mut processed = 0;
    while !budget.spent() {
        let ids: Vec<Uuid> = db
            .rpc("cron_stuck_messages", Caller::Service)
            .args(&json!({
                "p_limit": cron.batch_size,
                "p_min_age_seconds": state.settings.processing.lease.as_secs(),
            }))
            .fetch()
            .await?
            .data;
        let fresh: Vec<Uuid> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        if fresh.is_empty() {
            break;
        }
        let started: Vec<bool> = futures_util::stream::iter(fresh)
            .map(|id| async move {
                if budget.spent() {
                    return false;
                }
                inbound::process(state, id).await;
                true
            })
            .buffer_unordered(cron.concurrency)
            .collect()
            .await;
        processed += started.into_iter().filter(|&started| started).count() as u64;
    }
    Ok(processed)
}

/// Claims due entries batch after batch and re-drives each at most once per run (an entry due
/// again at once, with no backoff configured, is left for the next run).
async fn redrive_dead_letters(
    state: &AppState,
    db: &Postgrest,
    budget: &TimeBudget,
    summary: &mut Summary,
) -> Result<(), DbError> {
    let cron = &state.settings.cron;
    let mut seen = HashSet::new();
    while !budget.spent() {
        let claimed: ClaimedEntries = db
            .rpc("cron_claim_dead_letters", Caller::Service)
            .args(&json!({
                "p_limit": cron.batch_size,
                "p_lease_seconds": cron.lease.as_secs(),
                "p_max_attempts": DEAD_LETTER_ATTEMPTS,
            }))
            .fetch()
            .await?
            .data;
        summary.discarded += claimed.discarded;
        let (fresh, again): (Vec<Entry>, Vec<Entry>) = claimed
            .entries
            .into_iter()
            .partition(|entry| seen.insert(entry.id));
        for entry in again {
            settle(state, db, entry.id).await?;
        }
        if fresh.is_empty() {
            break;
        }
        summary.claimed += fresh.len() as u64;
        let ended: Vec<Result<Redriven, DbError>> = futures_util::stream::iter(fresh)
            .map(|entry| async move {
                if budget.spent() {
                    return Ok(Redriven::Deferred);
                }
                Ok(Redriven::Settled(
                    redrive_and_settle(state, db, &entry).await?,
                ))
            })
            .buffer_unordered(cron.concurrency)
            .collect()
            .await;
        for redriven in ended {
            match redriven? {
                Redriven::Deferred => summary.deferred += 1,
                Redriven::Settled(status) => match status {
                    Some(DeadLetterStatus::Resolved) => summary.resolved += 1,
                    Some(DeadLetterStatus::Discarded) => summary.discarded += 1,
                    _ => summary.retrying += 1,
                },
            }
        }
    }
    Ok(())
}

/// How a claimed entry ended in this run.
enum Redriven {
    /// Re-driven and settled: its status (`None` when the entry is gone).
    Settled(Option<DeadLetterStatus>),
    /// Not re-driven: the time budget was spent first.
    Deferred,
}

/// Re-drives a claimed entry once and settles it (also the admin API's replay); returns its
/// status: resolved | pending | discarded.
pub async fn redrive_and_settle(
    state: &AppState,
    db: &Postgrest,
    entry: &Entry,
) -> Result<Option<DeadLetterStatus>, DbError> {
    redrive(state, db, entry).await?;
    settle(state, db, entry.id).await
}

/// Tries an entry's work once more: processes the inbound message, or sends the reminder.
async fn redrive(state: &AppState, db: &Postgrest, entry: &Entry) -> Result<(), DbError> {
    let target = entry
        .reference
        .as_deref()
        .and_then(|r| r.parse::<Uuid>().ok());
    match (entry.kind, target) {
        (DeadLetterKind::InboundMessage, Some(message_id)) => {
            inbound::process(state, message_id).await
        }
        (DeadLetterKind::Reminder, Some(reminder_id)) => {
            let claim: Option<ClaimedReminder> = db
                .rpc("cron_redrive_reminder", Caller::Service)
                .args(&json!({
                    "p_reminder_id": reminder_id,
                    "p_lease_seconds": state.settings.cron.lease.as_secs(),
                }))
                .fetch()
                .await?
                .data;
            if let Some(reminder) = claim {
                reminders::send(state, db, reminder).await;
            }
        }
        // Work that cannot be found: settling discards the entry.
        _ => {}
    }
    Ok(())
}

/// Records an entry's outcome after a re-drive (or releases it); returns its status.
async fn settle(
    state: &AppState,
    db: &Postgrest,
    entry: Uuid,
) -> Result<Option<DeadLetterStatus>, DbError> {
    Ok(db
        .rpc("cron_settle_dead_letter", Caller::Service)
        .args(&json!({
            "p_id": entry,
            "p_max_attempts": DEAD_LETTER_ATTEMPTS,
            "p_backoff_seconds": state.settings.cron.retry_base.as_secs(),
        }))
        .fetch()
        .await?
        .data)
}

/// Deletes webhooks rows past the retention, in batches, within the time budget.
async fn purge_webhooks(
    state: &AppState,
    db: &Postgrest,
    budget: &TimeBudget,
) -> Result<u64, DbError> {
    let mut deleted = 0;
    loop {
        let batch: u64 = db
            .rpc("cron_purge_webhooks", Caller::Service)
            .args(&json!({
                "p_retention_days": state.settings.cron.webhook_retention_days,
                "p_limit": PURGE_BATCH,
            }))
            .fetch()
            .await?
            .data;
        deleted += batch;
        if batch < PURGE_BATCH as u64 || budget.spent() {
            return Ok(deleted);
        }
    }
}
