//! Deliveries to `/api/billing/webhook`: Stripe's objects as its API reference shows them
//! (API version [`STRIPE_VERSION`]), signed here with the hmac crate independently of the code
//! under test; orgs with a Stripe customer, and what the database holds about them.

use chrono::{DateTime, TimeZone, Utc};
use hmac::Mac;
use serde::Deserialize;
use serde_json::{json, Value};
use wiremock::MockServer;

use super::app::{set, spawn_app_with, Env, TestApp};
use super::db::{insert, select, update};
use super::lib::Caller;
use super::{eq, new_uuid, unique};

/// The only webhook secret of [`billing_app`].
pub const SECRET: &str = "whsec_test_primary";
/// The seeded plans (supabase/seed.sql).
pub const STARTER: (&str, &str, i64) = ("starter", "price_starter_local", 1_000_000);
pub const PRO: (&str, &str, i64) = ("pro", "price_pro_local", 5_000_000);
pub const FREE_BUDGET: i64 = 100_000;
/// A billing period: 2026-01-01 to 2026-02-01 (UTC).
pub const PERIOD_START: i64 = 1_767_225_600;
pub const PERIOD_END: i64 = 1_769_904_000;

/// The app with [`SECRET`] as its only webhook secret, then `configure`.
pub async fn billing_app(configure: impl FnOnce(&mut Env)) -> TestApp {
    spawn_app_with(|env| {
        set(env, &[("STRIPE_WEBHOOK_SECRETS", SECRET)]);
        configure(env);
    })
    .await
}

/// The app with a secret key and `stripe` as the Stripe API.
pub async fn billing_app_with_stripe(
    stripe: &MockServer,
    configure: impl FnOnce(&mut Env),
) -> TestApp {
    let api = stripe.uri();
    billing_app(|env| {
        set(
            env,
            &[
                ("STRIPE_SECRET_KEY", "sk_test_billing"),
                ("STRIPE_API_BASE_URL", &api),
            ],
        );
        configure(env);
    })
    .await
}

/// A fake Stripe API, and the app with a secret key that refetches from it.
pub async fn billing_app_and_stripe() -> (MockServer, TestApp) {
    let stripe = MockServer::start().await;
    let app = billing_app_with_stripe(&stripe, |_| {}).await;
    (stripe, app)
}

pub fn now() -> i64 {
    Utc::now().timestamp()
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().expect("valid time")
}

/// Stripe's scheme: lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `Stripe-Signature` header for `body`, signed at `t`.
pub fn signed_at(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

/// A `Stripe-Signature` header for `body`, signed now.
pub fn signed(secret: &str, body: &[u8]) -> String {
    signed_at(secret, now(), body)
}

pub fn body_of(event: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(event).expect("json")
}

impl TestApp {
    /// Delivers `event` the way Stripe does: signed with [`SECRET`] now.
    pub async fn post_billing_event(&self, event: &Value) -> (u16, Value) {
        let body = body_of(event);
        self.post_billing(&body, Some(&signed(SECRET, &body))).await
    }

    /// Delivers `event` and returns the outcome of a 200.
    pub async fn billing_outcome(&self, event: &Value) -> String {
        let (status, answer) = self.post_billing_event(event).await;
        assert_eq!(status, 200, "{answer}");
        answer["outcome"].as_str().expect("outcome").to_string()
    }
}

/// A `customer.created` event, created now, of a customer nobody has.
pub fn customer_created() -> Value {
    event(
        "customer.created",
        now(),
        json!({"id": "cus_x", "object": "customer"}),
    )
}

/// A 200 of the Stripe API with `object` as its JSON body.
pub fn stripe_answer(object: impl serde::Serialize) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200).set_body_json(object)
}

/// A fresh Stripe id with `prefix`: `cus_…`, `sub_…`.
pub fn stripe_id(prefix: &str) -> String {
    format!("{prefix}_{}", unique())
}

pub fn event_id(event: &Value) -> &str {
    event["id"].as_str().expect("event id")
}

/// An Event object (API reference, "The Event object").
pub fn event(kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": format!("evt_{}", unique()),
        "object": "event",
        "api_version": STRIPE_VERSION,
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": format!("req_{}", unique()), "idempotency_key": null },
        "type": kind
    })
}

/// The API version the service pins (`Stripe-Version` of its refetch) and the events are
/// rendered at: the newest stable one in Stripe's changelog <https://docs.stripe.com/changelog>.
pub const STRIPE_VERSION: &str = "2026-08-26.dahlia";

/// A Subscription as API versions 2025-03-31.basil to [`STRIPE_VERSION`] render it: the period
/// on its items.
pub fn subscription(id: &str, customer: &str, status: &str, price: &str) -> Value {
    json!({
        "id": id,
        "object": "subscription",
        "application": null,
        "automatic_tax": { "enabled": false, "liability": null },
        "billing_cycle_anchor": PERIOD_START,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "collection_method": "charge_automatically",
        "created": PERIOD_START,
        "currency": "usd",
        "customer": customer,
        "default_payment_method": null,
        "ended_at": null,
        "items": {
            "object": "list",
            "data": [{
                "id": format!("si_{}", unique()),
                "object": "subscription_item",
                "created": PERIOD_START,
                "current_period_end": PERIOD_END,
                "current_period_start": PERIOD_START,
                "metadata": {},
                "price": {
                    "id": price,
                    "object": "price",
                    "active": true,
                    "billing_scheme": "per_unit",
                    "currency": "usd",
                    "product": "prod_assistant",
                    "recurring": { "interval": "month", "interval_count": 1, "usage_type": "licensed" },
                    "type": "recurring",
                    "unit_amount": 2900
                },
                "quantity": 1,
                "subscription": id
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={id}")
        },
        "latest_invoice": format!("in_{}", unique()),
        "livemode": false,
        "metadata": {},
        "start_date": PERIOD_START,
        "status": status
    })
}

/// An Invoice of a subscription as API versions 2025-03-31.basil to [`STRIPE_VERSION`] render
/// it.
pub fn invoice(customer: &str, subscription: &str, status: &str, attempt: u32) -> Value {
    json!({
        "id": format!("in_{}", unique()),
        "object": "invoice",
        "amount_due": 2900,
        "amount_paid": if status == "paid" { 2900 } else { 0 },
        "attempt_count": attempt,
        "attempted": true,
        "billing_reason": "subscription_cycle",
        "currency": "usd",
        "customer": customer,
        "lines": {
            "object": "list",
            "data": [{
                "id": format!("il_{}", unique()),
                "object": "line_item",
                "amount": 2900,
                "currency": "usd",
                "parent": {
                    "type": "subscription_item_details",
                    "subscription_item_details": { "subscription": subscription, "proration": false }
                },
                "period": { "start": PERIOD_START, "end": PERIOD_END },
                "quantity": 1
            }],
            "has_more": false,
            "total_count": 1
        },
        "livemode": false,
        "parent": {
            "type": "subscription_details",
            "subscription_details": { "metadata": {}, "subscription": subscription }
        },
        "period_end": PERIOD_START,
        "period_start": PERIOD_START - 2_678_400,
        "status": status,
        "total": 2900
    })
}

/// A completed Checkout Session in subscription mode for `org`.
pub fn checkout_session(org: &str, customer: &str, subscription: &str) -> Value {
    json!({
        "id": format!("cs_test_{}", unique()),
        "object": "checkout.session",
        "amount_total": 2900,
        "client_reference_id": org,
        "currency": "usd",
        "customer": customer,
        "customer_details": { "email": null, "name": null },
        "livemode": false,
        "metadata": {},
        "mode": "subscription",
        "payment_status": "paid",
        "status": "complete",
        "subscription": subscription
    })
}

/// `customer.subscription.{action}` created at `t`: `sub` of `customer`, `status`, on `price`.
pub fn subscription_event(
    action: &str,
    t: i64,
    sub: &str,
    customer: &str,
    status: &str,
    price: &str,
) -> Value {
    event(
        &format!("customer.subscription.{action}"),
        t,
        subscription(sub, customer, status, price),
    )
}

/// `invoice.paid` (a paid invoice) or `invoice.payment_failed` (an open one) created at `t`,
/// at its `attempt`.
pub fn invoice_event(kind: &str, t: i64, customer: &str, sub: &str, attempt: u32) -> Value {
    let status = match kind {
        "paid" => "paid",
        "payment_failed" => "open",
        other => panic!("no invoice event {other}"),
    };
    event(
        &format!("invoice.{kind}"),
        t,
        invoice(customer, sub, status, attempt),
    )
}

/// `checkout.session.completed` created at `t`: `org` checked out as `customer`, into `sub`.
pub fn checkout_event(t: i64, org: &str, customer: &str, sub: &str) -> Value {
    event(
        "checkout.session.completed",
        t,
        checkout_session(org, customer, sub),
    )
}

/// An org of its own with a Stripe customer.
pub struct BillingOrg {
    pub id: String,
    pub customer: String,
}

pub async fn create_org(app: &TestApp, plan: &str, status: &str) -> BillingOrg {
    let org = BillingOrg {
        id: new_uuid(),
        customer: stripe_id("cus"),
    };
    insert(
        app.db(),
        "orgs",
        json!({
            "id": org.id, "name": "Billing test org", "plan": plan,
            "subscription_status": status, "stripe_customer_id": org.customer
        }),
    )
    .await;
    org
}

/// An org that has never been to Stripe; returns its id.
pub async fn create_org_without_customer(app: &TestApp) -> String {
    let id = new_uuid();
    insert(
        app.db(),
        "orgs",
        json!({"id": id, "name": "Billing test org"}),
    )
    .await;
    id
}

pub async fn set_org(app: &TestApp, id: &str, values: Value) {
    update(app.db(), "orgs", ("id", id), values).await;
}

#[derive(Debug, Deserialize)]
pub struct OrgState {
    pub plan: String,
    pub subscription_status: String,
    pub monthly_token_budget: i64,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub token_period_started_at: DateTime<Utc>,
}

impl OrgState {
    pub fn plan_and_status(&self) -> (&str, &str) {
        (&self.plan, &self.subscription_status)
    }

    pub fn plan_and_budget(&self) -> (&str, i64) {
        (&self.plan, self.monthly_token_budget)
    }
}

pub async fn org_state(app: &TestApp, id: &str) -> OrgState {
    let rows = app
        .db()
        .from("orgs", Caller::Service)
        .select(
            "plan,subscription_status,monthly_token_budget,stripe_customer_id,\
             stripe_subscription_id,current_period_end,cancel_at_period_end,token_period_started_at",
        )
        .eq("id", id)
        .fetch::<Vec<OrgState>>()
        .await
        .expect("org");
    rows.data.into_iter().next().expect("the org exists")
}

#[derive(Debug, Deserialize)]
pub struct WebhookRow {
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub org_id: Option<String>,
    pub event_type: String,
}

pub async fn webhook_rows(app: &TestApp, event_id: &str) -> Vec<WebhookRow> {
    let rows = select(
        app.db(),
        "webhooks",
        &[("source", eq("stripe")), ("external_id", eq(event_id))],
    )
    .await;
    rows.into_iter()
        .map(|row| serde_json::from_value(row).expect("webhook row"))
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct Alert {
    pub org_id: Option<String>,
    pub kind: String,
    pub message: String,
}

/// The one alert whose message names `event_id`.
pub async fn alert_about(app: &TestApp, event_id: &str) -> Alert {
    let rows = alerts_about(app, event_id).await;
    assert_eq!(rows.len(), 1, "one alert about {event_id}");
    rows.into_iter().next().expect("alert")
}

/// The alerts whose message names `event_id`.
pub async fn alerts_about(app: &TestApp, event_id: &str) -> Vec<Alert> {
    let rows = select(
        app.db(),
        "alerts",
        &[("message", format!("like.*{event_id}*"))],
    )
    .await;
    rows.into_iter()
        .map(|row| serde_json::from_value(row).expect("alert"))
        .collect()
}
