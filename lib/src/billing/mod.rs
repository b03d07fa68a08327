//! Stripe's billing events.
//!
//! The `Stripe-Signature` is verified over the raw body; then, when `STRIPE_SECRET_KEY` is
//! set, the subscription the event is about is refetched from the Stripe API (the source of
//! truth); then one database call, `apply_stripe_event`, records, dedupes, orders and applies
//! (or keeps, until its customer's checkout) the event in one transaction (see
//! `supabase/migrations/20261123000002_billing.sql`).

mod event;
mod signature;
mod stripe_api;

use chrono::{DateTime, Utc};
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::event::Event;
use crate::configuration::{Missing, StripeSettings};
use crate::supabase::{Caller, DbError, Postgrest};

/// Why an event was not received (Stripe delivers it again, unless it is refused for good).
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    NotConfigured(#[from] Missing),
    /// Whatever the reason (logged as a security event): one message.
    #[error("invalid signature")]
    InvalidSignature,
    #[error("the body is not a Stripe event")]
    Malformed,
    /// The Stripe API failed in a way a retry may fix.
    #[error("the Stripe API: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// Billing, built once in `startup` from what it uses.
pub struct Billing {
    db: Result<Postgrest, Missing>,
    http: reqwest::Client,
    settings: StripeSettings,
}

impl Billing {
    pub fn new(
        db: Result<Postgrest, Missing>,
        http: reqwest::Client,
        settings: StripeSettings,
    ) -> Self {
        Self { db, http, settings }
    }
}

/// What `apply_stripe_event` did with an event. Every outcome is answered 200: none of them
/// gets better if Stripe delivers the event again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// The org changed.
    Applied,
    /// This event id was received before; nothing changed.
    Duplicate,
    /// Older than the org's last event of its kind; recorded and ignored.
    Stale,
    /// An event type this service does not use, or nothing to change; recorded.
    Ignored,
    /// No org has the event's customer yet: kept, and applied when the checkout that links the
    /// customer to an org arrives.
    Pending,
    /// A checkout whose org does not exist (or an event without a customer); recorded, alert
    /// raised.
    UnknownCustomer,
    /// The event cannot be applied (e.g. its customer belongs to another org); recorded as
    /// failed, alert raised.
    Rejected,
}

impl EventOutcome {
    /// The name `apply_stripe_event` returns, for the answer and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
            Self::Pending => "pending",
            Self::UnknownCustomer => "unknown_customer",
            Self::Rejected => "rejected",
        }
    }
}

/// The arguments of `apply_stripe_event`.
#[derive(Serialize)]
struct ApplyArgs<'a> {
    p_event: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    p_subscription: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p_fetched_at: Option<DateTime<Utc>>,
}

/// The subscription as the Stripe API returned it, and when it was asked for: a snapshot older
/// than the state the org holds is not applied (a slow handler cannot undo a faster one).
struct Snapshot {
    subscription: Value,
    fetched_at: DateTime<Utc>,
}

/// Verifies, reads, refetches and applies one signed event: the event and what became of it.
pub async fn receive(
    billing: &Billing,
    signature: Option<&HeaderValue>,
    body: &[u8],
) -> Result<(Event, EventOutcome), BillingError> {
    verify(signature, body, &billing.settings)?;
    let event = Event::parse(body)?;
    let subscription = refetch(billing, &event).await?;
    let outcome = apply(billing, &event, subscription).await?;
    Ok((event, outcome))
}

/// Verifies the signature with the configured secrets. Every failure is the same 400; the
/// reason goes to the log as a security event, without the payload.
fn verify(
    signature_header: Option<&HeaderValue>,
    body: &[u8],
    settings: &StripeSettings,
) -> Result<(), BillingError> {
    let secrets = settings.webhook_secrets.as_ref().map_err(|m| *m)?;
    if secrets.is_empty() {
        return Err(Missing("STRIPE_WEBHOOK_SECRET").into());
    }
    signature::verify(
        signature_header,
        body,
        secrets,
        settings.tolerance,
        Utc::now().timestamp(),
    )
    .map_err(|rejection| {
        crate::security_event!(
            crate::telemetry::SecurityEvent::StripeSignatureRejected,
            reason = %rejection
        );
        BillingError::InvalidSignature
    })
}

/// The event's subscription as the Stripe API has it now; `None` without a secret key, for
/// events about no subscription, and when Stripe answers 404 (then the event's own copy,
/// authenticated by its signature, is applied: a retry would get the same 404).
async fn refetch(billing: &Billing, event: &Event) -> Result<Option<Snapshot>, BillingError> {
    let settings = &billing.settings;
    let (Some(key), Some(id)) = (&settings.secret_key, &event.subscription) else {
        return Ok(None);
    };
    // Taken before the request: the snapshot shows the state at this instant or later.
    let fetched_at = Utc::now();
    let subscription = stripe_api::fetch_subscription(&billing.http, settings, key, id).await?;
    if subscription.is_none() {
        tracing::warn!(
            event_id = %event.id,
            "the Stripe API does not know the event's subscription (404); applying the event's copy"
        );
    }
    Ok(subscription.map(|subscription| Snapshot {
        subscription,
        fetched_at,
    }))
}

/// One round trip: `apply_stripe_event` as the service role.
async fn apply(
    billing: &Billing,
    event: &Event,
    snapshot: Option<Snapshot>,
) -> Result<EventOutcome, BillingError> {
    let (p_subscription, p_fetched_at) = match snapshot {
        Some(s) => (Some(s.subscription), Some(s.fetched_at)),
        None => (None, None),
    };
    let args = ApplyArgs {
        p_event: &event.json,
        p_subscription,
        p_fetched_at,
    };
    let db = billing.db.as_ref().map_err(|m| *m)?;
    let answer = db
        .rpc("apply_stripe_event", Caller::Service)
        .args(&args)
        .fetch::<EventOutcome>()
        .await?;
    Ok(answer.data)
}
