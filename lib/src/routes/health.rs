//! `GET|HEAD /api/health`: the health report (see [`crate::health`]); 503 when the database
//! is down.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};

use crate::error::ApiError;
use crate::health::{self, Overall};
use crate::host::{Ctx, HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/health.rs",
    handler: |request, ctx| Box::pin(health(request, ctx)),
};

async fn health(request: Request<Bytes>, ctx: Ctx) -> HandlerResult {
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Err(ApiError::MethodNotAllowed),
    };
    let state = &ctx.state;
    let parts = health::Parts {
        settings: &state.settings,
        http: &state.http,
        db: state.db().ok(),
        assistant: &state.assistant,
        sentry: state.errors.is_configured(),
    };
    let report = state.health.get(health::check(parts)).await;
    let status = match report.status {
        Overall::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        Overall::Healthy | Overall::Degraded => StatusCode::OK,
    };
    let mut response = crate::response::json(status, &*report);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if head {
        *response.body_mut() = Bytes::new();
    }
    Ok(response)
}
