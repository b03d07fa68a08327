//! `/api/cron/*`: scheduled work, called by Vercel Cron (or any scheduler) with `GET` and
//! `Authorization: Bearer $CRON_SECRET`.
//!
//! - `check-reminders` sends due reminders ([`reminders`]);
//! - `retry-failed` re-drives dead letter entries and stuck inbound messages, and deletes old
//!   `webhooks` rows ([`retry`]).
//!
//! Both claim work in batches with leases (Postgres functions, `FOR UPDATE SKIP LOCKED`), so
//! that overlapping runs share it and a crashed run's work is taken over once its lease runs
//! out. Once `CRON_TIME_BUDGET_MS` is spent, both begin no new work (what they claimed and
//! did not begin is left for the next run) and answer a JSON summary: the budget plus the
//! worst case of one piece of work begun just before it ran out must fit in the function's
//! `maxDuration` (see the README, Cron).

mod reminders;
pub mod retry;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::configuration::CronSettings;
use crate::error::ApiError;
use crate::host::Route;

pub const CHECK_REMINDERS: Route = Route {
    source: "api/cron/check-reminders.rs",
    handler: |request, ctx| {
        Box::pin(async move {
            authorize(&request, &ctx.state.settings.cron)?;
            reminders::check_reminders(&ctx.state).await
        })
    },
};

pub const RETRY_FAILED: Route = Route {
    source: "api/cron/retry-failed.rs",
    handler: |request, ctx| {
        Box::pin(async move {
            authorize(&request, &ctx.state.settings.cron)?;
            retry::retry_failed(&ctx.state).await
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
        tracing::warn!(
            security_event = "cron_unauthorized",
            "refused a cron call without the right bearer secret"
        );
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

/// A run's clock: it begins no new work (no claim, no send, no re-drive) once its time budget
/// is spent.
struct Budget {
    started: Instant,
    limit: Duration,
}

impl Budget {
    fn start(limit: Duration) -> Self {
        Self {
            started: Instant::now(),
            limit,
        }
    }

    fn spent(&self) -> bool {
        self.started.elapsed() >= self.limit
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
