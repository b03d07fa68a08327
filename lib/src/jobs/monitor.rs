//! Threshold alerts (`/api/cron/monitor`): the run measures the database round trip
//! (`db_ping`), then `cron_monitor` computes every org's figures over the sliding window in one
//! statement, opens one alert per org and kind whose figure is over its threshold (the
//! database refuses a second open one) and resolves those whose figure is back under.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{JobError, Jobs};
use crate::configuration::MonitorSettings;
use crate::domain::{Alert, AlertKind};
use crate::supabase::{Caller, DbError, Postgrest};

/// The kinds the monitor opens and resolves (`cron_monitor` names them as `alerts.kind`).
const KINDS: [AlertKind; 6] = [
    AlertKind::ErrorRate,
    AlertKind::WebhookLatency,
    AlertKind::AiLatency,
    AlertKind::AiCost,
    AlertKind::ToolFailureRate,
    AlertKind::DbLatency,
];

/// What one monitor run did.
#[derive(Debug, Deserialize, Serialize)]
pub struct Summary {
    /// Alerts opened by this run.
    opened: u64,
    /// Open or acknowledged alerts resolved by this run (their figure is back under).
    resolved: u64,
    /// The database round trip measured by this run, in milliseconds.
    #[serde(default)]
    db_latency_ms: f64,
}

/// One monitor run.
pub async fn run(jobs: &Jobs) -> Result<Summary, JobError> {
    let db = jobs.db()?;
    let db_latency_ms = ping(db).await?;
    let settings = &jobs.settings.cron.monitor;
    let alerts: BTreeMap<AlertKind, Alert> = KINDS.map(|kind| (kind, Alert(kind))).into();
    let mut summary: Summary = db
        .rpc("cron_monitor", Caller::Service)
        .args(&json!({
            "p_window_seconds": settings.window.as_secs(),
            "p_limits": limits(settings),
            "p_db_latency_ms": db_latency_ms,
            "p_alerts": alerts,
        }))
        .fetch()
        .await?
        .data;
    summary.db_latency_ms = db_latency_ms;
    tracing::info!(
        opened = summary.opened,
        resolved = summary.resolved,
        db_latency_ms,
        "monitor run"
    );
    Ok(summary)
}

/// The round trip of `db_ping`, in milliseconds.
async fn ping(db: &Postgrest) -> Result<f64, DbError> {
    let started = Instant::now();
    db.rpc("db_ping", Caller::Service).execute().await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// The thresholds as `cron_monitor` reads them (rates as fractions).
fn limits(settings: &MonitorSettings) -> serde_json::Value {
    json!({
        "error_rate": settings.error_rate_percent as f64 / 100.0,
        "webhook_latency_ms": settings.webhook_latency_ms,
        "ai_latency_ms": settings.ai_latency_ms,
        "tool_failure_rate": settings.tool_failure_percent as f64 / 100.0,
        "db_latency_ms": settings.db_latency_ms,
        "min_samples": settings.min_samples,
    })
}
