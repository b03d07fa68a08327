//! The service's health: the database (critical) and the optional services, checked
//! concurrently with a timeout each, cached briefly so that a burst of checks costs one.

mod cache;
mod checks;

pub use cache::HealthCache;
pub use checks::check;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Overall health: `unhealthy` (503) when the database is down, `degraded` when an optional
/// service that is configured is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Healthy,
    Degraded,
    Unhealthy,
}

/// One dependency's state. `not_configured` is a choice, not a fault: it does not degrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Up,
    Down,
    NotConfigured,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub status: ServiceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Services {
    pub database: Check,
    pub ai_primary: Check,
    pub ai_fallback: Check,
    pub whatsapp: Check,
}

#[derive(Clone, Debug, Serialize)]
pub struct HealthReport {
    pub status: Overall,
    pub timestamp: DateTime<Utc>,
    pub version: String,
    pub environment: String,
    pub services: Services,
    /// Whether errors go to Sentry (`SENTRY_DSN`).
    pub sentry: Sentry,
}

/// `configured` when `SENTRY_DSN` is set (and valid), `not_configured` otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sentry {
    Configured,
    NotConfigured,
}
