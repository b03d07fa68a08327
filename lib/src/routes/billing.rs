//! `POST /api/billing/webhook`: Stripe's billing events (see [`crate::billing`]). Stripe gets a
//! 200 for every outcome, and a 503 when the database or the Stripe API is unavailable, so
//! that it delivers the event again.

use bytes::Bytes;
use http::{Method, Request, StatusCode};

use crate::billing::{self, EventOutcome};
use crate::error::ApiError;
use crate::host::{Ctx, HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/billing/webhook.rs",
    handler: |request, ctx| Box::pin(webhook(request, ctx)),
};

async fn webhook(request: Request<Bytes>, ctx: Ctx) -> HandlerResult {
    if request.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let signature = request.headers().get("stripe-signature");
    let (event, outcome) = billing::receive(&ctx.state.billing, signature, request.body()).await?;
    let (id, kind, name) = (&event.id, &event.kind, outcome.as_str());
    if matches!(
        outcome,
        EventOutcome::UnknownCustomer | EventOutcome::Rejected
    ) {
        tracing::warn!(event_id = %id, event_type = %kind, outcome = name, "stripe event");
    } else {
        tracing::info!(event_id = %id, event_type = %kind, outcome = name, "stripe event");
    }
    let body = serde_json::json!({ "received": true, "outcome": name });
    Ok(crate::response::json(StatusCode::OK, &body))
}
