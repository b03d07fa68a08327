//! The service's health: the database (critical) and the optional services, checked
//! concurrently with a timeout each, cached briefly so that a burst of checks costs one.
//! The checks take the parts they use ([`Parts`]), not the process's whole state.

mod cache;
mod checks;

pub use cache::HealthCache;
pub use checks::{check, Parts};

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

/// The dependencies: the four probed ones, then the optional services that are only
/// `configured` or `not_configured` (never a value, only whether it is set).
#[derive(Clone, Debug, Serialize)]
pub struct Services {
    pub database: Check,
    pub ai_primary: Check,
    pub ai_fallback: Check,
    pub whatsapp: Check,
    /// `SENTRY_DSN` (valid).
    pub sentry: Optional,
    /// `OPENAI_API_KEY`.
    pub openai: Optional,
    /// `ANTHROPIC_API_KEY`.
    pub anthropic: Optional,
    /// `GOOGLE_CLIENT_ID` and `GOOGLE_CLIENT_SECRET`.
    pub google_calendar: Optional,
    /// `STRIPE_WEBHOOK_SECRET` (billing webhooks).
    pub stripe: Optional,
    /// `STRIPE_SECRET_KEY` (subscription refetch).
    pub stripe_api: Optional,
}

/// An optional service that is not probed: whether it is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Optional {
    pub status: Configured,
}

impl Optional {
    pub fn of(configured: bool) -> Self {
        Self {
            status: match configured {
                true => Configured::Yes,
                false => Configured::No,
            },
        }
    }
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
    /// Whether errors go to Sentry (`SENTRY_DSN`); also `services.sentry.status`.
    pub sentry: Configured,
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

/// `configured` when the service's variables are set (for Sentry: `SENTRY_DSN`, valid),
/// `not_configured` otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Configured {
    #[serde(rename = "configured")]
    Yes,
    #[serde(rename = "not_configured")]
    No,
}
