//! `/api/webhook`: Meta's WhatsApp Cloud API webhook.
//!
//! `GET` answers the subscription handshake. `POST` verifies `X-Hub-Signature-256` over the raw
//! body, stores the whole batch in one database round trip, shared with the deliveries waiting
//! meanwhile ([`inbound::GroupCommit`]), answers 200 once it is committed, and queues each new
//! message for background processing ([`inbound::Pipeline`]). When the batch cannot be stored
//! the answer is 503, so Meta redelivers: nothing is lost. Both run in a span with
//! `webhook = true` (the field the runbook's queries use), which the processing a delivery
//! starts inherits with the request's.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::Utc;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::ApiError;
use crate::host::{Ctx, HandlerResult, Route};
use crate::inbound;
use crate::security_event;
use crate::telemetry::SecurityEvent;
use crate::whatsapp::{signature, Delivery};

pub const ROUTE: Route = Route {
    source: "api/webhook.rs",
    handler: |request, ctx| Box::pin(webhook(request, ctx)),
};

async fn webhook(request: Request<Bytes>, ctx: Ctx) -> HandlerResult {
    let span = tracing::info_span!("webhook", webhook = true);
    match *request.method() {
        Method::GET => span.in_scope(|| handshake(&request, &ctx)),
        Method::POST => receive(request, ctx).instrument(span).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// `?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`: echoes the challenge when the
/// token matches (constant time), 403 otherwise.
fn handshake(request: &Request<Bytes>, ctx: &Ctx) -> HandlerResult {
    let expected = ctx
        .state
        .settings
        .whatsapp
        .verify_token
        .as_ref()
        .map_err(|m| *m)?;
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    let token_ok: bool = param("hub.verify_token")
        .as_bytes()
        .ct_eq(expected.expose().as_bytes())
        .into();
    let challenge = param("hub.challenge");
    if param("hub.mode") != "subscribe"
        || !token_ok
        || challenge.is_empty()
        || challenge.len() > 256
    {
        security_event!(SecurityEvent::WebhookHandshakeRefused, event = "failed");
        return Err(ApiError::Forbidden);
    }
    let mut response = Response::new(Bytes::from(challenge.to_string()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

async fn receive(request: Request<Bytes>, ctx: Ctx) -> HandlerResult {
    let received_at = Utc::now();
    let bytes = request.body().len();
    tracing::info!(event = "received", bytes, "webhook delivery received");
    let secret = ctx
        .state
        .settings
        .whatsapp
        .app_secret
        .as_ref()
        .map_err(|m| *m)?;
    let header = request
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if let Err(reason) = signature::verify(secret.expose().as_bytes(), request.body(), header) {
        security_event!(
            SecurityEvent::WebhookSignatureRejected,
            event = "failed",
            reason = %reason
        );
        return Err(ApiError::Unauthorized);
    }
    let delivery = Delivery::parse(request.body()).map_err(|e| {
        tracing::warn!(
            event = "failed",
            reason = "unparseable delivery",
            "webhook delivery refused"
        );
        ApiError::BadRequest(e.to_string())
    })?;
    if delivery.skipped > 0 {
        tracing::warn!(
            skipped = delivery.skipped,
            "delivery items without usable ids skipped"
        );
    }
    if delivery.is_empty() {
        tracing::info!(
            event = "verified",
            messages = 0,
            new = 0,
            statuses_applied = 0,
            "webhook delivery verified and stored"
        );
        return Ok(crate::response::json(
            StatusCode::OK,
            &json!({"received": 0}),
        ));
    }
    let ingested = ctx
        .state
        .ingest
        .ingest(ctx.state.db()?, &delivery, received_at)
        .await
        .map_err(|error| {
            tracing::error!(event = "failed", reason = "store failed", error = %error, "webhook delivery not stored; Meta redelivers");
            ApiError::Unavailable("the delivery could not be stored; retry".into())
        })?;
    tracing::info!(
        event = "verified",
        messages = delivery.messages.len(),
        new = ingested.new_message_ids.len(),
        statuses_applied = ingested.statuses_applied,
        "webhook delivery verified and stored"
    );
    if ingested.unknown_numbers > 0 {
        tracing::warn!(
            unknown = ingested.unknown_numbers,
            "delivery for unknown phone_number_id ignored"
        );
    }
    for id in &ingested.new_message_ids {
        schedule(&ctx, *id);
    }
    Ok(crate::response::json(
        StatusCode::OK,
        &json!({
            "received": delivery.messages.len(),
            "new": ingested.new_message_ids.len(),
            "statuses_applied": ingested.statuses_applied,
        }),
    ))
}

/// Queues a stored message for processing and makes sure a worker drains the queue.
fn schedule(ctx: &Ctx, message_id: Uuid) {
    if !ctx.state.backlog.push(message_id) {
        tracing::warn!(%message_id, "backlog full: message left stored for the retry cron");
        return;
    }
    let Some(permit) = ctx.state.backlog.worker() else {
        return;
    };
    ctx.background
        .run(inbound::Pipeline::drain(ctx.state.pipeline.clone(), permit));
}
