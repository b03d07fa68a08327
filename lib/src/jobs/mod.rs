//! The crons' work, below the routes that trigger it:
//!
//! - [`reminders`]: due reminders sent, exactly once;
//! - [`outcomes`]: sends whose outcome is unknown confirmed or sent again (a stage of
//!   retry-failed);
//! - [`redrive`]: dead letter entries and stuck inbound messages re-driven (also the admin
//!   API's replay of one entry);
//! - [`retention`]: rows past their retention deleted in bounded batches;
//! - [`monitor`]: threshold alerts opened and resolved;
//! - [`models`]: alerts for models near or past their shutdown (a stage of retry-failed).
//!
//! Both claim work in batches with leases (Postgres functions, `FOR UPDATE SKIP LOCKED`), so
//! that overlapping runs share it and a crashed run's work is taken over once its lease runs
//! out. Once `CRON_TIME_BUDGET_MS` is spent, both begin no new work (what they claimed and
//! did not begin is left for the next run): the budget plus the worst case of one piece of
//! work begun just before it ran out must fit in the function's `maxDuration` (see
//! `docs/cron.md`).

pub mod models;
pub mod monitor;
pub mod outcomes;
pub mod redrive;
pub mod reminders;
pub mod retention;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::assistant::Assistant;
use crate::configuration::{CronSettings, Missing, ProviderSettings};
use crate::inbound::Pipeline;
use crate::supabase::{DbError, Postgrest};
use crate::whatsapp::WhatsApp;

/// Why a cron run failed as a whole (one item's failure is counted in its summary instead).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    NotConfigured(#[from] Missing),
    /// The database is unreachable (a step's other failures are the run's to count).
    #[error(transparent)]
    Database(#[from] DbError),
}

/// What the jobs read besides the clients.
#[derive(Clone, Debug)]
pub struct JobSettings {
    pub cron: CronSettings,
    /// `MAX_ATTEMPTS` (see `ProcessingSettings`).
    pub max_attempts: u32,
    /// `PROCESSING_LEASE_SECONDS`: an inbound message older than this is stuck.
    pub processing_lease: Duration,
    /// OpenAI's model list, read by the model lifecycle stage.
    pub openai: Option<ProviderSettings>,
    /// The time limit of that read (`HEALTH_CHECK_TIMEOUT_MS`).
    pub check_timeout: Duration,
    /// `GRAPH_API_VERSION`, whose end of support the model lifecycle stage watches too.
    pub graph_version: String,
}

/// The crons' work, built once in `startup` from what it uses.
pub struct Jobs {
    db: Result<Postgrest, Missing>,
    whatsapp: WhatsApp,
    /// Stuck and dead-lettered inbound messages are processed again through it.
    pipeline: Arc<Pipeline>,
    assistant: Arc<Assistant>,
    http: reqwest::Client,
    settings: JobSettings,
}

impl Jobs {
    pub fn new(
        db: Result<Postgrest, Missing>,
        whatsapp: WhatsApp,
        pipeline: Arc<Pipeline>,
        assistant: Arc<Assistant>,
        http: reqwest::Client,
        settings: JobSettings,
    ) -> Self {
        Self {
            db,
            whatsapp,
            pipeline,
            assistant,
            http,
            settings,
        }
    }

    /// The database client, or the variable that is missing to build it.
    fn db(&self) -> Result<&Postgrest, Missing> {
        self.db.as_ref().map_err(|missing| *missing)
    }
}

/// A run's clock: it begins no new work (no claim, no send, no re-drive) once its time budget
/// is spent.
pub struct TimeBudget {
    started: Instant,
    limit: Duration,
}

impl TimeBudget {
    pub fn start(limit: Duration) -> Self {
        Self {
            started: Instant::now(),
            limit,
        }
    }

    /// When the run began.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn spent(&self) -> bool {
        self.started.elapsed() >= self.limit
    }

    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
