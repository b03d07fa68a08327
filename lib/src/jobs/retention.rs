//! Old rows deleted (`/api/cron/retention`): for each kind with a retention
//! ([`RetentionSettings`]), `cron_purge` deletes up to `RETENTION_BATCH_SIZE` rows past their
//! age per round trip, oldest first, behind an index (no full-table delete, no long lock),
//! batch after batch until fewer come back or the time budget is spent (the next run goes on).
//! Messages are kept unless an org sets `assistant_settings.message_retention_days`.

use serde::Serialize;
use serde_json::json;

use super::{JobError, Jobs, TimeBudget};
use crate::configuration::RetentionSettings;
use crate::supabase::{Caller, DbError, Postgrest};

/// What the retention purges, in the order a run purges them (tool executions before the AI
/// requests that would take theirs with them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionKind {
    Webhooks,
    ToolExecutions,
    AiRequests,
    RateLimits,
    DeadLetters,
    Alerts,
    Messages,
}

impl RetentionKind {
    pub const ALL: [Self; 7] = [
        Self::Webhooks,
        Self::ToolExecutions,
        Self::AiRequests,
        Self::RateLimits,
        Self::DeadLetters,
        Self::Alerts,
        Self::Messages,
    ];

    /// The kind as `cron_purge` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhooks => "webhooks",
            Self::ToolExecutions => "tool_executions",
            Self::AiRequests => "ai_requests",
            Self::RateLimits => "rate_limits",
            Self::DeadLetters => "dead_letters",
            Self::Alerts => "alerts",
            Self::Messages => "messages",
        }
    }

    /// Its retention in days: `None` keeps it. Messages: each org's own (the database reads it).
    fn days(self, settings: &RetentionSettings) -> Option<usize> {
        match self {
            Self::Webhooks => settings.webhooks,
            Self::ToolExecutions => settings.tool_executions,
            Self::AiRequests => settings.ai_requests,
            Self::RateLimits => settings.rate_limits,
            Self::DeadLetters => settings.dead_letters,
            Self::Alerts => settings.alerts,
            Self::Messages => Some(0),
        }
    }
}

/// Rows deleted per kind.
#[derive(Debug, Default, Serialize)]
pub struct Deleted {
    webhooks: u64,
    tool_executions: u64,
    ai_requests: u64,
    rate_limits: u64,
    dead_letters: u64,
    alerts: u64,
    messages: u64,
}

impl Deleted {
    fn of(&mut self, kind: RetentionKind) -> &mut u64 {
        match kind {
            RetentionKind::Webhooks => &mut self.webhooks,
            RetentionKind::ToolExecutions => &mut self.tool_executions,
            RetentionKind::AiRequests => &mut self.ai_requests,
            RetentionKind::RateLimits => &mut self.rate_limits,
            RetentionKind::DeadLetters => &mut self.dead_letters,
            RetentionKind::Alerts => &mut self.alerts,
            RetentionKind::Messages => &mut self.messages,
        }
    }
}

/// What one retention run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    deleted: Deleted,
    /// Round trips of `cron_purge` (each at most `RETENTION_BATCH_SIZE` rows).
    batches: u64,
    /// Kinds whose purge failed while the database was reachable: logged; the run went on.
    errors: u64,
    duration_ms: u64,
}

/// One retention run: every kind with a retention, in batches, within the time budget.
pub async fn purge(jobs: &Jobs) -> Result<Summary, JobError> {
    let db = jobs.db()?;
    let budget = TimeBudget::start(jobs.settings.cron.time_budget);
    let settings = &jobs.settings.cron.retention;
    let mut summary = Summary::default();
    for kind in RetentionKind::ALL {
        let Some(days) = kind.days(settings) else {
            continue;
        };
        match purge_kind(db, kind, days, settings.batch_size, &budget, &mut summary).await {
            Ok(()) => {}
            Err(error) if error.is_unavailable() => return Err(error.into()),
            Err(error) => {
                tracing::error!(error = %error, kind = kind.as_str(), "a retention purge failed");
                summary.errors += 1;
            }
        }
    }
    summary.duration_ms = budget.elapsed_ms();
    tracing::info!(
        deleted = ?summary.deleted,
        batches = summary.batches,
        errors = summary.errors,
        duration_ms = summary.duration_ms,
        "retention run"
    );
    Ok(summary)
}

/// Deletes `kind`'s rows past `days`, batch after batch, until a batch is short or the budget
/// is spent.
async fn purge_kind(
    db: &Postgrest,
    kind: RetentionKind,
    days: usize,
    limit: usize,
    budget: &TimeBudget,
    summary: &mut Summary,
) -> Result<(), DbError> {
    while !budget.spent() {
        let batch: u64 = db
            .rpc("cron_purge", Caller::Service)
            .args(&json!({"p_kind": kind.as_str(), "p_days": days, "p_limit": limit}))
            .fetch()
            .await?
            .data;
        summary.batches += 1;
        *summary.deleted.of(kind) += batch;
        if batch < limit as u64 {
            break;
        }
    }
    Ok(())
}
