//! `/api/webhook`: Meta's WhatsApp Cloud API webhook.
//!
//! `GET` answers the subscription handshake. `POST` verifies `X-Hub-Signature-256` over the raw
//! body, stores the whole batch in one database round trip (`whatsapp_ingest`), answers 200,
//! and processes each new message in the background (see [`process`]). When the batch cannot be
//! stored the answer is 503, so Meta redelivers: nothing is lost.

mod backlog;
pub mod process;

pub use backlog::Backlog;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use crate::error::ApiError;
use crate::host::{Ctx, HandlerResult, Route};
use crate::startup::AppState;
use crate::supabase::Caller;
use crate::whatsapp::{signature, Delivery};

pub const ROUTE: Route = Route {
    source: "api/webhook.rs",
    handler: |request, ctx| Box::pin(webhook(request, ctx)),
};

async fn webhook(request: Request<Bytes>, ctx: Ctx) -> HandlerResult {
    match *request.method() {
        Method::GET => handshake(&request, &ctx),
        Method::POST => receive(request, ctx).await,
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
        tracing::warn!(
            security_event = "webhook_handshake_refused",
            "refused a webhook handshake"
        );
        return Err(ApiError::Forbidden);
    }
    let mut response = Response::new(Bytes::from(challenge.to_string()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

#[derive(Deserialize)]
struct Ingested {
    new_message_ids: Vec<Uuid>,
    statuses_applied: u64,
    unknown_numbers: u64,
}

async fn receive(request: Request<Bytes>, ctx: Ctx) -> HandlerResult {
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
        tracing::warn!(
            security_event = "webhook_signature_rejected",
            reason = %reason,
            request_id = %ctx.request_id,
            "rejected a webhook delivery"
        );
        return Err(ApiError::Unauthorized);
    }
    let delivery =
        Delivery::parse(request.body()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if delivery.skipped > 0 {
        tracing::warn!(
            skipped = delivery.skipped,
            "delivery items without usable ids skipped"
        );
    }
    if delivery.messages.is_empty() && delivery.statuses.is_empty() {
        return Ok(crate::routes::json(StatusCode::OK, &json!({"received": 0})));
    }
    let ingested: Ingested = ctx
        .state
        .db()?
        .rpc("whatsapp_ingest", Caller::Service)
        .args(&json!({
            "p_delivery_id": delivery.id,
            "p_messages": delivery.messages,
            "p_statuses": delivery.statuses,
        }))
        .fetch()
        .await?
        .data;
    if ingested.unknown_numbers > 0 {
        tracing::warn!(
            unknown = ingested.unknown_numbers,
            "delivery for unknown phone_number_id ignored"
        );
    }
    for id in &ingested.new_message_ids {
        schedule(&ctx, *id);
    }
    Ok(crate::routes::json(
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
    let state = ctx.state.clone();
    ctx.background.run(drain(state, permit));
}

/// How long one worker takes new messages: it runs under the `waitUntil` of the request that
/// started it, which must end well within the function's `maxDuration` (60 s).
const DRAIN_FOR: Duration = Duration::from_secs(40);

/// Processes queued messages until the queue is empty (or [`DRAIN_FOR`] has passed: what is
/// left waits for the next delivery's worker, or the retry cron). A message queued while this
/// worker was giving up its permit is not stranded: the worker looks again after releasing it.
async fn drain(state: Arc<AppState>, mut permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    loop {
        while started.elapsed() < DRAIN_FOR {
            let Some(message_id) = state.backlog.pop() else {
                break;
            };
            process::process(&state, message_id).await;
        }
        drop(permit);
        if state.backlog.is_empty() || started.elapsed() >= DRAIN_FOR {
            return;
        }
        match state.backlog.worker() {
            Some(next) => permit = next,
            None => return,
        }
    }
}
