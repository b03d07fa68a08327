//! The service's health: the database (critical) and the optional services, checked
//! concurrently with a timeout each, cached briefly so that a burst of checks costs one.

mod cache;
mod checks;

pub use cache::HealthCache;
pub use checks::check;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::configuration::{Ignored, Settings};

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

/// A configured model within 30 days of its shutdown, or past it.
#[derive(Clone, Debug, Serialize)]
pub struct ModelNotice {
    pub model: String,
    /// `retiring` or `retired`, and `shutdown_date`.
    #[serde(flatten)]
    pub stage: crate::assistant::lifecycle::Stage,
}

#[derive(Clone, Debug, Serialize)]
pub struct HealthReport {
    pub status: Overall,
    pub timestamp: DateTime<Utc>,
    pub version: String,
    pub environment: String,
    pub services: Services,
    /// The service's configured models that retire soon or have retired (empty: none).
    pub models: Vec<ModelNotice>,
    pub configuration: ConfigurationCheck,
    /// Whether errors go to Sentry (`SENTRY_DSN`).
    pub sentry: Sentry,
}

/// The configuration check: variables that are set but ignored, or not valid numbers (names
/// only, never values). It does not change the overall status: the checks of the services that
/// need those variables do.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigurationCheck {
    /// `ok`, or `warnings` when something is listed below.
    pub status: &'static str,
    pub ignored: Vec<Ignored>,
    pub invalid: Vec<String>,
}

impl ConfigurationCheck {
    pub fn of(settings: &Settings) -> Self {
        let ignored = settings.ignored_variables.clone();
        let invalid = settings.invalid_variables.clone();
        let status = match ignored.is_empty() && invalid.is_empty() {
            true => "ok",
            false => "warnings",
        };
        Self {
            status,
            ignored,
            invalid,
        }
    }
}

/// `configured` when `SENTRY_DSN` is set (and valid), `not_configured` otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sentry {
    Configured,
    NotConfigured,
}
