//! Process-wide state, built once in `main` and shared by every concurrent request.

use std::sync::Arc;
use std::time::Duration;

use crate::assistant::Assistant;
use crate::auth::Authenticator;
use crate::billing::Billing;
use crate::configuration::{Missing, Settings};
use crate::error::ApiError;
use crate::health::HealthCache;
use crate::inbound::{Backlog, Deadlines, GroupCommit, Pipeline};
use crate::jobs::{JobSettings, Jobs};
use crate::supabase::Postgrest;
use crate::telemetry::ErrorTracking;
use crate::whatsapp::WhatsApp;

/// Everything a handler shares with the other requests of this process.
pub struct AppState {
    pub settings: Settings,
    /// The one pooled HTTP client (rustls) for every outbound call.
    pub http: reqwest::Client,
    db: Result<Postgrest, Missing>,
    pub whatsapp: WhatsApp,
    pub assistant: Arc<Assistant>,
    /// Bounds the background processing of inbound messages.
    pub backlog: Arc<Backlog>,
    /// Processes inbound messages (the webhook's background work, the crons' re-drives).
    pub pipeline: Arc<Pipeline>,
    /// The crons' work.
    pub jobs: Jobs,
    pub billing: Billing,
    /// Shares one ingest transaction among the deliveries waiting in this process.
    pub ingest: GroupCommit,
    pub health: HealthCache,
    /// Verifies the admin API's access tokens (the JWKS cache lives here).
    pub auth: Authenticator,
    /// Sentry, when `SENTRY_DSN` is set (see [`ErrorTracking::new`]).
    pub errors: ErrorTracking,
}

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

impl AppState {
    /// Builds the shared state from `settings`.
    pub fn new(settings: Settings) -> Result<Self, StartupError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("whatsapp-assistant/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let db = settings
            .database
            .as_ref()
            .map(Postgrest::new)
            .map_err(|m| *m);
        let health = HealthCache::new(settings.health.cache_ttl);
        let whatsapp = WhatsApp::new(
            http.clone(),
            &settings.whatsapp,
            settings.processing.retry_base,
        );
        let assistant = Arc::new(Assistant::new(http.clone(), &settings, whatsapp.clone()));
        let processing = &settings.processing;
        let backlog = Arc::new(Backlog::new(processing.max_backlog, processing.concurrency));
        let ingest = GroupCommit::new(processing.max_batch);
        let pipeline = Arc::new(Pipeline::new(
            db.clone().ok(),
            whatsapp.clone(),
            assistant.clone(),
            backlog.clone(),
            processing.clone(),
            Deadlines::new(&settings),
        ));
        let jobs = Jobs::new(
            db.clone(),
            whatsapp.clone(),
            pipeline.clone(),
            assistant.clone(),
            http.clone(),
            job_settings(&settings),
        );
        let billing = Billing::new(db.clone(), http.clone(), settings.stripe.clone());
        let auth = Authenticator::new(http.clone(), &settings.admin);
        let errors = ErrorTracking::new(
            settings.sentry_dsn.as_ref(),
            &settings.environment,
            &settings.version,
        );
        Ok(Self {
            settings,
            http,
            db,
            whatsapp,
            assistant,
            backlog,
            pipeline,
            jobs,
            billing,
            ingest,
            health,
            auth,
            errors,
        })
    }

    /// The PostgREST client, or the variable that is missing to build it.
    pub fn db(&self) -> Result<&Postgrest, ApiError> {
        self.db
            .as_ref()
            .map_err(|missing| ApiError::NotConfigured(*missing))
    }
}

/// The settings the jobs read.
fn job_settings(settings: &Settings) -> JobSettings {
    JobSettings {
        cron: settings.cron.clone(),
        max_attempts: settings.processing.max_attempts,
        processing_lease: settings.processing.lease,
        openai: settings.openai.clone(),
        check_timeout: settings.health.check_timeout,
        graph_version: settings.whatsapp.graph_version.clone(),
    }
}

/// Reads the environment, starts logging and builds the shared state: what every `main` does.
pub fn init() -> Result<Arc<AppState>, StartupError> {
    let settings = Settings::from_env();
    crate::telemetry::init(&settings.log_level);
    for variable in &settings.invalid_variables {
        tracing::warn!(%variable, "invalid number: the default is used (the value is not logged)");
    }
    for ignored in &settings.ignored_variables {
        tracing::warn!(
            variable = %ignored.variable,
            reason = %ignored.reason,
            "variable set but ignored (the value is not logged)"
        );
    }
    Ok(Arc::new(AppState::new(settings)?))
}
