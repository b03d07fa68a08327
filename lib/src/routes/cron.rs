//! `/api/cron/*`: scheduled work, called by Vercel Cron (or any scheduler) with `GET` and
//! `Authorization: Bearer $CRON_SECRET`.
//!
//! - `check-reminders` sends due reminders ([`jobs::reminders`]);
//! - `retry-failed` re-drives dead letter entries and stuck inbound messages
//!   ([`jobs::redrive`]);
//! - `retention` deletes rows past their retention ([`jobs::retention`]);
//! - `monitor` opens and resolves threshold alerts ([`jobs::monitor`]).
//!
//! Each answers its run's JSON summary.

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::configuration::CronSettings;
use crate::error::ApiError;
use crate::host::Route;
use crate::jobs;

pub const CHECK_REMINDERS: Route = Route {
    source: "api/cron/check-reminders.rs",
    handler: |request, ctx| {
        Box::pin(async move {
            authorize(&request, &ctx.state.settings.cron)?;
            let summary = jobs::reminders::check_reminders(&ctx.state.jobs).await?;
            Ok(crate::response::json(StatusCode::OK, &summary))
        })
    },
};

pub const RETRY_FAILED: Route = Route {
    source: "api/cron/retry-failed.rs",
    handler: |request, ctx| {
        Box::pin(async move {
            authorize(&request, &ctx.state.settings.cron)?;
            let summary = jobs::redrive::retry_failed(&ctx.state.jobs).await?;
            Ok(crate::response::json(StatusCode::OK, &summary))
        })
    },
};

pub const RETENTION: Route = Route {
    source: "api/cron/retention.rs",
    handler: |request, ctx| {
        Box::pin(async move {
            authorize(&request, &ctx.state.settings.cron)?;
            let summary = jobs::retention::purge(&ctx.state.jobs).await?;
            Ok(crate::response::json(StatusCode::OK, &summary))
        })
    },
};

pub const MONITOR: Route = Route {
    source: "api/cron/monitor.rs",
    handler: |request, ctx| {
        Box::pin(async move {
            authorize(&request, &ctx.state.settings.cron)?;
            let summary = jobs::monitor::run(&ctx.state.jobs).await?;
            Ok(crate::response::json(StatusCode::OK, &summary))
        })
    },
};

/// Lets a `GET` through (other methods: 405) only with `Authorization: Bearer $CRON_SECRET`,
/// compared in constant time (digests, so not even the length leaks). Without `CRON_SECRET`
/// the routes stay closed: 503 `not_configured`.
fn authorize(request: &Request<Bytes>, settings: &CronSettings) -> Result<(), ApiError> {
    if request.method() != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    let secret = settings.secret.as_ref().map_err(|missing| *missing)?;
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let matches: bool = Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(secret.expose().as_bytes()))
        .into();
    if !matches {
        crate::security_event!(
            crate::telemetry::SecurityEvent::CronUnauthorized,
            path = %request.uri().path()
        );
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}
