//! `GET|HEAD /api/health`: the database (critical) and the optional services, checked
//! concurrently with a timeout each, cached briefly so that a burst of checks costs one.

mod checks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{header, HeaderValue, Method, Request, StatusCode};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::error::ApiError;
use crate::host::{Ctx, HandlerResult, Route};
use crate::startup::AppState;

pub const ROUTE: Route = Route {
    source: "api/health.rs",
    handler: |request, ctx| Box::pin(health(request, ctx)),
};

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
}

/// The last report and when it was made; one refresh at a time.
pub struct HealthCache {
    ttl: Duration,
    slot: Mutex<Option<(Instant, Arc<HealthReport>)>>,
}

impl HealthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
        }
    }

    /// The cached report while fresh; otherwise checks again (concurrent callers wait for the
    /// one refresh instead of starting their own).
    async fn get(&self, state: &AppState) -> Arc<HealthReport> {
        let mut slot = self.slot.lock().await;
        if let Some((made, report)) = slot.as_ref() {
            if made.elapsed() < self.ttl {
                return report.clone();
            }
        }
        let report = Arc::new(checks::run(state).await);
        *slot = Some((Instant::now(), report.clone()));
        report
    }
}

async fn health(request: Request<Bytes>, ctx: Ctx) -> HandlerResult {
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Err(ApiError::MethodNotAllowed),
    };
    let report = ctx.state.health.get(&ctx.state).await;
    let status = match report.status {
        Overall::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        Overall::Healthy | Overall::Degraded => StatusCode::OK,
    };
    let mut response = crate::routes::json(status, &*report);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if head {
        *response.body_mut() = Bytes::new();
    }
    Ok(response)
}
