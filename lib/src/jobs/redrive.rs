//! Failed and stuck work re-driven (`/api/cron/retry-failed`).
//!
//! 1. Inbound messages stored but never processed (`received` for longer than
//!    `PROCESSING_LEASE_SECONDS`, or `processing` with an expired lease) are processed again
//!    (the pipeline's own [`Pipeline::process`], which claims atomically).
//! 2. Due dead letter entries are claimed with a lease (`cron_claim_dead_letters`) and re-driven
//!    once: an inbound message is processed again, a reminder sent again. The outcome settles
//!    the entry (`cron_settle_dead_letter`): resolved, pending with backoff, or past
//!    `MAX_ATTEMPTS` attempts, discarded with a critical alert.
//!
//! No message is processed and no entry re-driven once `CRON_TIME_BUDGET_MS` is spent: an entry
//! claimed but not re-driven stays `retrying` until its lease runs out, then the next run
//! claims it again (no attempt is counted).
//!
//! Bulkheads: claimed entries are decoded and re-driven one by one, each [`isolated`]; an
//! entry that cannot be decoded, or whose re-drive fails (a database error, a panic), is
//! settled on its own with that failure counted as an attempt (`failed` in the summary), and
//! the run goes on. A run answers its summary (200) unless the database is unreachable (503);
//! a step that fails otherwise is logged and counted in `errors`.

use std::collections::HashSet;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use serde_json::Value;

use super::reminders::{self, ClaimedReminder};
use super::{JobError, Jobs, TimeBudget};
use crate::inbound::isolated;
#[cfg(doc)]
use crate::inbound::Pipeline;
use crate::supabase::{Caller, DbError, Postgrest};

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
    /// Entries that could not be decoded or whose re-drive failed (a database error, a
    /// panic): settled on their own, the failure counted as an attempt.
    failed: u64,
    /// Steps of the run that failed (a claim, the stuck-message list) while the
    /// database was reachable: logged; the run went on with its next step.
    errors: u64,
    duration_ms: u64,
}

/// A batch of claims; each entry is decoded on its own.
#[derive(Deserialize)]
struct ClaimedEntries {
    entries: Vec<Value>,
    discarded: u64,
}

/// The one field of a claimed entry that must be read to settle it.
#[derive(Deserialize)]
struct EntryId {
    id: Uuid,
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

/// One retry-failed run: stuck messages, due dead letters.
pub async fn retry_failed(jobs: &Jobs) -> Result<Summary, JobError> {
    let db = jobs.db()?;
    let budget = TimeBudget::start(jobs.settings.cron.time_budget);
    let mut summary = Summary::default();
    let outcomes = super::outcomes::resolve(jobs, db, &budget).await;
    step(outcomes, "resolve unknown send outcomes", &mut summary)?;
    let stuck = redrive_stuck_messages(jobs, db, &budget, &mut summary.messages_redriven).await;
    step(stuck, "re-drive stuck messages", &mut summary)?;
    let dead = redrive_dead_letters(jobs, db, &budget, &mut summary).await;
    step(dead, "re-drive dead letters", &mut summary)?;
    super::models::check_models(jobs).await;
    summary.duration_ms = budget.elapsed_ms();
    tracing::info!(
        messages_redriven = summary.messages_redriven,
        claimed = summary.claimed,
        resolved = summary.resolved,
        retrying = summary.retrying,
        discarded = summary.discarded,
        deferred = summary.deferred,
        failed = summary.failed,
        errors = summary.errors,
        duration_ms = summary.duration_ms,
        "retry-failed run"
    );
    Ok(summary)
}

/// A step of the run that failed: the run fails (503) when the database is unreachable;
/// otherwise the failure is logged and counted, and the run goes on.
fn step(result: Result<(), DbError>, what: &str, summary: &mut Summary) -> Result<(), JobError> {
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.is_unavailable() => Err(error.into()),
        Err(error) => {
            tracing::error!(error = %error, step = what, "a retry-failed step failed");
            summary.errors += 1;
            Ok(())
        }
    }
}

/// Processes stuck inbound messages, batch after batch, each message at most once per run and
/// none once the time budget is spent; counts them in `processed`. Each message's processing
/// is isolated ([`Pipeline::process`]): one that fails or panics is dead-lettered on its own.
async fn redrive_stuck_messages(
    jobs: &Jobs,
    db: &Postgrest,
    budget: &TimeBudget,
    processed: &mut u64,
) -> Result<(), DbError> {
    let cron = &jobs.settings.cron;
    let mut seen = HashSet::new();
    while !budget.spent() {
        let ids: Vec<Value> = db
            .rpc("cron_stuck_messages", Caller::Service)
            .args(&json!({
                "p_limit": cron.batch_size,
                "p_min_age_seconds": jobs.settings.processing_lease.as_secs(),
            }))
            .fetch()
            .await?
            .data;
        // Decoded one by one: an id that does not read is skipped (logged), the rest go on.
        let fresh: Vec<Uuid> = ids
            .into_iter()
            .filter_map(|id| {
                serde_json::from_value(id)
                    .inspect_err(|_| tracing::error!("a stuck message id that is not a uuid"))
                    .ok()
            })
            .filter(|id| seen.insert(*id))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let started: Vec<bool> = futures_util::stream::iter(fresh)
            .map(|id| async move {
                if budget.spent() {
                    return false;
                }
                jobs.pipeline.process(id, budget.started()).await;
                true
            })
            .buffer_unordered(cron.concurrency)
            .collect()
            .await;
        *processed += started.into_iter().filter(|&started| started).count() as u64;
    }
    Ok(())
}

/// Claims due entries batch after batch and re-drives each at most once per run (an entry due
/// again at once, with no backoff configured, is left for the next run).
async fn redrive_dead_letters(
    jobs: &Jobs,
    db: &Postgrest,
    budget: &TimeBudget,
    summary: &mut Summary,
) -> Result<(), DbError> {
    let cron = &jobs.settings.cron;
    let mut seen = HashSet::new();
    while !budget.spent() {
        let claimed: ClaimedEntries = db
            .rpc("cron_claim_dead_letters", Caller::Service)
            .args(&json!({
                "p_limit": cron.batch_size,
                "p_lease_seconds": cron.lease.as_secs(),
                "p_max_attempts": jobs.settings.max_attempts,
            }))
            .fetch()
            .await?
            .data;
        summary.discarded += claimed.discarded;
        let mut fresh = Vec::new();
        for row in claimed.entries {
            match serde_json::from_value::<Entry>(row.clone()) {
                Ok(entry) if seen.insert(entry.id) => fresh.push(entry),
                // Due again at once (no backoff configured): left for the next run.
                Ok(entry) => summary.count(settle_alone(jobs, db, entry.id, None).await),
                Err(error) => {
                    let reason = format!(
                        "the stored dead letter entry cannot be read: {:?} error at column {}",
                        error.classify(),
                        error.column()
                    );
                    summary.count(fail_undecodable(jobs, db, row, &reason).await);
                }
            }
        }
        if fresh.is_empty() {
            break;
        }
        summary.claimed += fresh.len() as u64;
        let ended: Vec<Redriven> = futures_util::stream::iter(fresh)
            .map(|entry| async move {
                if budget.spent() {
                    return Redriven::Deferred;
                }
                // The outer bulkhead: whatever happens to this entry stays with it.
                match isolated(redrive_and_settle(jobs, db, &entry)).await {
                    Ok(Ok(settled)) => Redriven::Settled(settled),
                    Ok(Err(error)) => {
                        tracing::error!(dead_letter = %entry.id, error = %error, "could not settle a dead letter entry; its lease decides");
                        Redriven::Failed
                    }
                    Err(_) => {
                        tracing::error!(dead_letter = %entry.id, "settling a dead letter entry panicked; its lease decides");
                        Redriven::Failed
                    }
                }
            })
            .buffer_unordered(cron.concurrency)
            .collect()
            .await;
        for redriven in ended {
            summary.count(redriven);
        }
    }
    Ok(())
}

impl Summary {
    fn count(&mut self, redriven: Redriven) {
        match redriven {
            Redriven::Deferred => self.deferred += 1,
            Redriven::Failed => self.failed += 1,
            Redriven::Settled(settled) => {
                self.failed += u64::from(settled.failed);
                match settled.status {
                    Some(DeadLetterStatus::Resolved) => self.resolved += 1,
                    Some(DeadLetterStatus::Discarded) => self.discarded += 1,
                    _ => self.retrying += 1,
                }
            }
        }
    }
}

/// How a claimed entry ended in this run.
enum Redriven {
    /// Settled (re-driven, or failed on its own).
    Settled(Settled),
    /// Not re-driven: the time budget was spent first.
    Deferred,
    /// Could not even be settled: its lease decides.
    Failed,
}

/// A settled entry.
pub struct Settled {
    /// Its status (`None` when the entry is gone).
    pub status: Option<DeadLetterStatus>,
    /// Its re-drive failed before the work could record an outcome (counted as an attempt).
    pub failed: bool,
}

/// Settles one entry on its own; a database error is this entry's alone.
async fn settle_alone(jobs: &Jobs, db: &Postgrest, entry: Uuid, failure: Option<&str>) -> Redriven {
    match settle(jobs, db, entry, failure).await {
        Ok(status) => Redriven::Settled(Settled {
            status,
            failed: failure.is_some(),
        }),
        Err(error) => {
            tracing::error!(dead_letter = %entry, error = %error, "could not settle a dead letter entry; its lease decides");
            Redriven::Failed
        }
    }
}

/// A claimed row that does not decode: settled on its own with that failure (an attempt).
async fn fail_undecodable(jobs: &Jobs, db: &Postgrest, row: Value, reason: &str) -> Redriven {
    match serde_json::from_value::<EntryId>(row) {
        Ok(EntryId { id }) => {
            tracing::warn!(dead_letter = %id, error = reason, "a claimed dead letter entry is unreadable");
            match settle_alone(jobs, db, id, Some(reason)).await {
                Redriven::Settled(settled) => Redriven::Settled(Settled {
                    failed: true,
                    ..settled
                }),
                other => other,
            }
        }
        Err(_) => {
            tracing::error!("a claimed dead letter entry without an id; its lease decides");
            Redriven::Failed
        }
    }
}

/// Re-drives a claimed entry once and settles it (also the admin API's replay); returns its
/// status: resolved | pending | discarded. A re-drive that fails (a database error other than
/// an unreachable database, a panic) is this entry's failure: settled with it, as an attempt.
#[tracing::instrument(name = "dead_letter", skip_all, fields(dead_letter = %entry.id))]
pub async fn redrive_and_settle(
    jobs: &Jobs,
    db: &Postgrest,
    entry: &Entry,
) -> Result<Settled, DbError> {
    let failure = match isolated(redrive(jobs, db, entry)).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) if error.is_unavailable() => return Err(error),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "a re-drive failed");
            Some(format!(
                "the re-drive failed: database error {}",
                error.code().unwrap_or("unknown")
            ))
        }
        Err(_) => Some("re-drive panicked".to_string()),
    };
    Ok(Settled {
        status: settle(jobs, db, entry.id, failure.as_deref()).await?,
        failed: failure.is_some(),
    })
}

/// Tries an entry's work once more: processes the inbound message, or sends the reminder.
async fn redrive(jobs: &Jobs, db: &Postgrest, entry: &Entry) -> Result<(), DbError> {
    let target = entry
        .reference
        .as_deref()
        .and_then(|r| r.parse::<Uuid>().ok());
    match (entry.kind, target) {
        (DeadLetterKind::InboundMessage, Some(message_id)) => {
            jobs.pipeline
                .process(message_id, std::time::Instant::now())
                .await
        }
        (DeadLetterKind::Reminder, Some(reminder_id)) => {
            let claim: Option<ClaimedReminder> = db
                .rpc("cron_redrive_reminder", Caller::Service)
                .args(&json!({
                    "p_reminder_id": reminder_id,
                    "p_lease_seconds": jobs.settings.cron.lease.as_secs(),
                    "p_max_attempts": jobs.settings.max_attempts,
                }))
                .fetch()
                .await?
                .data;
            if let Some(reminder) = claim {
                reminders::send(jobs, db, reminder).await;
            }
        }
        // Work that cannot be found: settling discards the entry.
        _ => {}
    }
    Ok(())
}

/// Records an entry's outcome after a re-drive (or releases it); `failure`: the re-drive
/// itself failed (counted as an attempt). Returns its status.
async fn settle(
    jobs: &Jobs,
    db: &Postgrest,
    entry: Uuid,
    failure: Option<&str>,
) -> Result<Option<DeadLetterStatus>, DbError> {
    Ok(db
        .rpc("cron_settle_dead_letter", Caller::Service)
        .args(&json!({
            "p_id": entry,
            "p_max_attempts": jobs.settings.max_attempts,
            "p_backoff_seconds": jobs.settings.cron.retry_base.as_secs(),
            "p_error": failure,
        }))
        .fetch()
        .await?
        .data)
}
