//! `/api/billing/webhook` against the real stack. Signatures are computed by
//! `helpers::stripe` with the hmac crate (checked here against an openssl vector),
//! independently of the code under test; the Stripe API is faked with wiremock; events are
//! shaped as Stripe's API reference shows them. Every test uses orgs and customers of its own,
//! so tests run concurrently and again.

use serde_json::json;
use wiremock::matchers::header;
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::logs::{lines_with, logs};
use crate::helpers::stripe::*;
use crate::helpers::{
    alert_count, new_uuid, set, spawn_app_with, stripe_subscription, unique, BILLING_WEBHOOK,
    NO_DATABASE,
};

// =============================================================================================
// Signature
// =============================================================================================

#[test]
fn the_test_signer_matches_an_openssl_vector() {
    // printf '%s' '1700000000.{"id":"evt_fixed","object":"event"}' \
    //   | openssl dgst -sha256 -hmac whsec_fixed_vector
    assert_eq!(
        sign(
            "whsec_fixed_vector",
            1_700_000_000,
            br#"{"id":"evt_fixed","object":"event"}"#
        ),
        "547f3c6752a721957a633a5a2c9036ea3b77f54d9abd86c9ff2fb6f2f69e1900"
    );
}

#[tokio::test]
async fn a_valid_signature_is_accepted_within_the_tolerance_both_ways() {
    let app = billing_app(|_| {}).await;
    for skew in [0, -250, 250] {
        let body = body_of(&customer_created());
        let t = now() + skew;
        let header = signed_at(SECRET, t, &body);
        let (status, answer) = app.post_billing(&body, Some(&header)).await;
        assert_eq!(status, 200, "skew {skew}: {answer}");
        assert_eq!(answer["received"], true);
    }
}

#[tokio::test]
async fn every_bad_signature_gets_the_same_generic_400_and_records_nothing() {
    let app = billing_app(|_| {}).await;
    let event = customer_created();
    let body = body_of(&event);
    let t = now();
    let good = sign(SECRET, t, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let cases: Vec<(&str, Option<String>, &[u8])> = vec![
        (
            "wrong secret",
            Some(format!("t={t},v1={}", sign("whsec_other", t, &body))),
            &body,
        ),
        (
            "expired",
            Some(format!("t={},v1={}", t - 301, sign(SECRET, t - 301, &body))),
            &body,
        ),
        (
            "future",
            Some(format!("t={},v1={}", t + 301, sign(SECRET, t + 301, &body))),
            &body,
        ),
        ("tampered body", Some(format!("t={t},v1={good}")), &tampered),
        ("missing header", None, &body),
        ("not key=value", Some("garbage".into()), &body),
        (
            "timestamp not a number",
            Some(format!("t=abc,v1={good}")),
            &body,
        ),
        ("no timestamp", Some(format!("v1={good}")), &body),
        (
            "two timestamps",
            Some(format!("t={t},t={t},v1={good}")),
            &body,
        ),
        ("no v1", Some(format!("t={t}")), &body),
        (
            "only the v0 scheme",
            Some(format!("t={t},v0={good}")),
            &body,
        ),
        (
            "v1 not hex",
            Some(format!("t={t},v1=zz{}", &good[2..])),
            &body,
        ),
        (
            "huge timestamp",
            Some(format!("t={},v1={good}", i64::MIN)),
            &body,
        ),
    ];
    for (case, header, body) in cases {
        let (status, answer) = app.post_billing(body, header.as_deref()).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(
            answer,
            json!({"error": {"code": "invalid_signature", "message": "invalid signature"}}),
            "{case}: one message whatever failed"
        );
    }
    assert!(webhook_rows(&app, event_id(&event)).await.is_empty());
}

#[tokio::test]
async fn any_configured_secret_verifies_during_rotation() {
    let app = billing_app(|env| {
        set(
            env,
            &[("STRIPE_WEBHOOK_SECRETS", "whsec_old_one, whsec_new_one")],
        );
    })
    .await;
    for (secret, want) in [
        ("whsec_new_one", 200),
        ("whsec_old_one", 200),
        (SECRET, 400),
    ] {
        let body = body_of(&customer_created());
        let t = now();
        let header = signed_at(secret, t, &body);
        assert_eq!(
            app.post_billing(&body, Some(&header)).await.0,
            want,
            "{secret}"
        );
    }
}

#[tokio::test]
async fn one_right_v1_among_several_is_enough() {
    let app = billing_app(|_| {}).await;
    let body = body_of(&customer_created());
    let t = now();
    let header = format!(
        "t={t},v1={},v0={},v1={}",
        sign("whsec_rolled_away", t, &body),
        sign(SECRET, t, &body),
        sign(SECRET, t, &body)
    );
    let (status, answer) = app.post_billing(&body, Some(&header)).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn without_secrets_503_other_methods_405_big_bodies_413() {
    let unconfigured = spawn_app_with(|_| {}).await;
    let body = body_of(&customer_created());
    let (status, answer) = unconfigured
        .post_billing(&body, Some(&signed(SECRET, &body)))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "not_configured");

    let app = billing_app(|env| set(env, &[("MAX_BODY_BYTES", "4096")])).await;
    let get = app.get(BILLING_WEBHOOK).await;
    assert_eq!(get.status(), 405);
    let big = vec![b'x'; 4097];
    assert_eq!(
        app.post_billing(&big, Some(&signed(SECRET, &big))).await.0,
        413
    );
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_stripe_event_is_a_400() {
    let app = billing_app(|_| {}).await;
    let beyond_year_9999 = body_of(&event(
        "customer.created",
        1 << 40,
        json!({"id": "cus_x", "object": "customer"}),
    ));
    let bodies: [&[u8]; 4] = [
        b"not json",
        br#"{"id":"evt_1","type":"invoice.paid"}"#,
        b"[]",
        &beyond_year_9999,
    ];
    for body in bodies {
        let (status, answer) = app.post_billing(body, Some(&signed(SECRET, body))).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }
}

#[tokio::test]
async fn a_rejected_signature_is_logged_as_a_security_event_without_the_payload() {
    let app = billing_app(|_| {}).await;
    logs();
    let request_id = format!("billing-log-{}", unique());
    let (payload, wrong_secret) = (format!("confidential-{}", unique()), "whsec_wrongsecret");
    let body = format!(r#"{{"id":"evt_{payload}","note":"{payload}"}}"#);
    let t = now();
    let response = app
        .client
        .post(app.url(BILLING_WEBHOOK))
        .header("x-vercel-id", &request_id)
        .header(
            "stripe-signature",
            format!("t={t},v1={}", sign(wrong_secret, t, body.as_bytes())),
        )
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);

    let lines = lines_with(&request_id);
    let security = lines
        .iter()
        .find(|line| line.contains("stripe_signature_rejected"))
        .unwrap_or_else(|| panic!("no security event among {lines:?}"));
    assert!(security.contains("no v1 signature matches"), "{security}");
    assert!(lines_with(&payload).is_empty(), "the payload leaked");
    assert!(lines_with(wrong_secret).is_empty(), "the secret leaked");
}

// =============================================================================================
// Idempotency and order
// =============================================================================================

#[tokio::test]
async fn ten_concurrent_duplicate_deliveries_apply_once() {
    let app = billing_app(|_| {}).await;
    let org = create_org(&app, "starter", "active").await;
    let failed = invoice_event("payment_failed", now(), &org.customer, "sub_dup", 1);
    let deliveries = (0..10).map(|_| app.post_billing_event(&failed));
    let answers = futures_util::future::join_all(deliveries).await;

    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, 200, "{answer}");
            answer["outcome"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    outcomes.sort();
    let mut want = vec!["duplicate".to_string(); 9];
    want.insert(0, "applied".into());
    assert_eq!(outcomes, want);
    let rows = webhook_rows(&app, event_id(&failed)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].status.as_str(), rows[0].attempts),
        ("processed", 10)
    );
    assert_eq!(
        alert_count(app.db(), &org.id, "billing_payment_failed").await,
        1
    );
    assert_eq!(
        org_state(&app, &org.id).await.subscription_status,
        "past_due"
    );
}

#[tokio::test]
async fn out_of_order_deliveries_end_in_the_right_state() {
    let app = billing_app(|_| {}).await;
    let org = create_org(&app, "free", "none").await;
    let sub = stripe_id("sub");
    let t = now() - 600;
    let created = subscription_event("created", t, &sub, &org.customer, "active", STARTER.1);
    let updated = subscription_event("updated", t + 10, &sub, &org.customer, "active", PRO.1);
    let deleted = subscription_event("deleted", t + 20, &sub, &org.customer, "canceled", PRO.1);
    let late_update = subscription_event("updated", t + 15, &sub, &org.customer, "active", PRO.1);

    assert_eq!(app.billing_outcome(&updated).await, "applied");
    assert_eq!(app.billing_outcome(&created).await, "stale");
    assert_eq!(
        org_state(&app, &org.id).await.plan,
        PRO.0,
        "created did not undo updated"
    );
    assert_eq!(app.billing_outcome(&deleted).await, "applied");
    assert_eq!(app.billing_outcome(&late_update).await, "stale");

    let state = org_state(&app, &org.id).await;
    assert_eq!(state.subscription_status, "canceled");
    assert_eq!(state.plan_and_budget(), ("free", FREE_BUDGET));
    for stale in [&created, &late_update] {
        let rows = webhook_rows(&app, event_id(stale)).await;
        assert_eq!(
            (rows[0].status.as_str(), rows[0].error.as_deref()),
            ("ignored", Some("stale"))
        );
    }
}

#[tokio::test]
async fn events_of_the_same_second_apply_in_lifecycle_order() {
    let app = billing_app(|_| {}).await;
    let org = create_org(&app, "free", "none").await;
    let sub = stripe_id("sub");
    let t = now() - 600;
    // The first invoice, paid in the second the subscription was created, arrives first: the
    // creation still applies.
    let paid = invoice_event("paid", t - 100, &org.customer, &sub, 1);
    let created = subscription_event("created", t - 100, &sub, &org.customer, "active", PRO.1);
    assert_eq!(app.billing_outcome(&paid).await, "applied");
    assert_eq!(app.billing_outcome(&created).await, "applied");
    assert_eq!(org_state(&app, &org.id).await.plan, PRO.0);

    // Created incomplete, then updated to active, in one second, delivered the other way round.
    let created = subscription_event("created", t, &sub, &org.customer, "incomplete", STARTER.1);
    let activated = subscription_event("updated", t, &sub, &org.customer, "active", STARTER.1);
    assert_eq!(app.billing_outcome(&activated).await, "applied");
    assert_eq!(app.billing_outcome(&created).await, "stale");
    assert_eq!(org_state(&app, &org.id).await.subscription_status, "active");

    // Updated then deleted in one second: the deletion stands whatever arrives last.
    let deleted = subscription_event("deleted", t + 5, &sub, &org.customer, "canceled", STARTER.1);
    let updated = subscription_event("updated", t + 5, &sub, &org.customer, "active", STARTER.1);
    assert_eq!(app.billing_outcome(&deleted).await, "applied");
    assert_eq!(app.billing_outcome(&updated).await, "stale");
    assert_eq!(
        org_state(&app, &org.id).await.subscription_status,
        "canceled"
    );

    // A new checkout and its subscription in one second: both apply, in either order.
    let next = stripe_id("sub");
    let created = subscription_event("created", t + 60, &next, &org.customer, "active", PRO.1);
    let checkout = checkout_event(t + 60, &org.id, &org.customer, &next);
    assert_eq!(app.billing_outcome(&created).await, "applied");
    assert_eq!(app.billing_outcome(&checkout).await, "applied");
    let state = org_state(&app, &org.id).await;
    assert_eq!(state.plan_and_status(), (PRO.0, "active"));
}

#[tokio::test]
async fn an_invoice_never_makes_an_older_subscription_event_stale() {
    let app = billing_app(|_| {}).await;
    let org = create_org(&app, "starter", "active").await;
    let sub = stripe_id("sub");
    let t = now() - 600;
    // The upgrade is delivered after the invoice of the next second (Stripe retried it).
    let paid = invoice_event("paid", t + 1, &org.customer, &sub, 1);
    let upgraded = subscription_event("updated", t, &sub, &org.customer, "active", PRO.1);
    assert_eq!(app.billing_outcome(&paid).await, "applied");
    assert_eq!(app.billing_outcome(&upgraded).await, "applied");
    let state = org_state(&app, &org.id).await;
    assert_eq!(state.plan_and_budget(), (PRO.0, PRO.2));
}

#[tokio::test]
async fn invoices_are_ordered_among_themselves_and_never_undo_a_newer_subscription_state() {
    let app = billing_app(|_| {}).await;
    let org = create_org(&app, "starter", "active").await;
    let sub = stripe_id("sub");
    let t = now() - 600;

    // A payment failure delivered after the later payment is stale: no past_due, no alert.
    let paid = invoice_event("paid", t + 10, &org.customer, &sub, 2);
    let failed = invoice_event("payment_failed", t, &org.customer, &sub, 1);
    assert_eq!(app.billing_outcome(&paid).await, "applied");
    assert_eq!(app.billing_outcome(&failed).await, "stale");
    assert_eq!(org_state(&app, &org.id).await.subscription_status, "active");
    assert_eq!(
        alert_count(app.db(), &org.id, "billing_payment_failed").await,
        0
    );

    // A failure older than the subscription state the org holds alerts but keeps the status.
    let active = subscription_event("updated", t + 30, &sub, &org.customer, "active", STARTER.1);
    let failed = invoice_event("payment_failed", t + 20, &org.customer, &sub, 1);
    assert_eq!(app.billing_outcome(&active).await, "applied");
    assert_eq!(app.billing_outcome(&failed).await, "applied");
    assert_eq!(org_state(&app, &org.id).await.subscription_status, "active");
    assert_eq!(
        alert_count(app.db(), &org.id, "billing_payment_failed").await,
        1
    );

    // A newer failure makes the org past_due.
    let failed = invoice_event("payment_failed", t + 40, &org.customer, &sub, 2);
    assert_eq!(app.billing_outcome(&failed).await, "applied");
    assert_eq!(
        org_state(&app, &org.id).await.subscription_status,
        "past_due"
    );
}

// =============================================================================================
// Events before their checkout
// =============================================================================================

#[tokio::test]
async fn events_before_the_checkout_are_kept_and_applied_when_it_links_the_customer() {
    let app = billing_app(|_| {}).await;
    let org = create_org_without_customer(&app).await;
    let customer = stripe_id("cus");
    let sub = stripe_id("sub");
    let t = now() - 60;
    let created = subscription_event("created", t, &sub, &customer, "incomplete", PRO.1);
    let activated = subscription_event("updated", t, &sub, &customer, "active", PRO.1);
    let paid = invoice_event("paid", t, &customer, &sub, 1);
    // Delivered out of order, all before the checkout.
    for early in [&activated, &paid, &created] {
        assert_eq!(app.billing_outcome(early).await, "pending");
        let rows = webhook_rows(&app, event_id(early)).await;
        assert_eq!(
            (rows[0].status.as_str(), rows[0].org_id.as_deref()),
            ("received", None)
        );
        assert!(alerts_about(&app, event_id(early)).await.is_empty());
    }
    assert_eq!(app.billing_outcome(&created).await, "duplicate");
    assert_eq!(org_state(&app, &org).await.plan, "free");

    let checkout = checkout_event(t + 1, &org, &customer, &sub);
    assert_eq!(app.billing_outcome(&checkout).await, "applied");
    let state = org_state(&app, &org).await;
    assert_eq!(
        state.plan_and_status(),
        (PRO.0, "active"),
        "the kept events applied in their lifecycle order"
    );
    assert_eq!(state.monthly_token_budget, PRO.2);
    assert_eq!(state.token_period_started_at, at(PERIOD_START));
    for early in [&created, &activated, &paid] {
        let rows = webhook_rows(&app, event_id(early)).await;
        assert_eq!(
            (rows[0].status.as_str(), rows[0].org_id.as_deref()),
            ("processed", Some(org.as_str())),
            "{}",
            early["type"]
        );
    }
    let created_again = webhook_rows(&app, event_id(&created)).await;
    assert_eq!(created_again[0].attempts, 2);
}

#[tokio::test]
async fn a_subscription_event_of_an_earlier_second_than_its_checkout_still_applies() {
    let app = billing_app(|_| {}).await;
    let org = create_org_without_customer(&app).await;
    let customer = stripe_id("cus");
    let sub = stripe_id("sub");
    let t = now() - 60;
    let checkout = checkout_event(t, &org, &customer, &sub);
    let created = subscription_event("created", t - 1, &sub, &customer, "active", STARTER.1);
    assert_eq!(app.billing_outcome(&checkout).await, "applied");
    assert_eq!(app.billing_outcome(&created).await, "applied");
    let state = org_state(&app, &org).await;
    assert_eq!(state.plan_and_status(), (STARTER.0, "active"));
}

#[tokio::test]
async fn concurrent_checkouts_and_early_events_leave_no_event_behind() {
    let app = billing_app(|_| {}).await;
    let t = now() - 60;
    let mut orgs = Vec::new();
    let mut deliveries = Vec::new();
    for _ in 0..8 {
        let org = create_org_without_customer(&app).await;
        let customer = stripe_id("cus");
        let sub = stripe_id("sub");
        let created = subscription_event("created", t, &sub, &customer, "active", PRO.1);
        deliveries.push(created.clone());
        deliveries.push(checkout_event(t, &org, &customer, &sub));
        orgs.push((org, created));
    }
    let answers = futures_util::future::join_all(
        deliveries.iter().map(|event| app.post_billing_event(event)),
    )
    .await;
    for (status, answer) in answers {
        assert_eq!(status, 200, "{answer}");
    }
    for (org, created) in orgs {
        assert_eq!(org_state(&app, &org).await.plan, PRO.0, "org {org}");
        let rows = webhook_rows(&app, event_id(&created)).await;
        assert_eq!(rows[0].status, "processed", "org {org}");
    }
}

// =============================================================================================
// Event types
// =============================================================================================

#[tokio::test]
async fn checkout_links_the_org_named_in_client_reference_id() {
    let app = billing_app(|_| {}).await;
    let org = create_org_without_customer(&app).await;
    let customer = stripe_id("cus");
    let sub = stripe_id("sub");
    let t = now() - 60;
    let checkout = checkout_event(t, &org, &customer, &sub);
    assert_eq!(app.billing_outcome(&checkout).await, "applied");
    let state = org_state(&app, &org).await;
    assert_eq!(state.stripe_customer_id.as_deref(), Some(customer.as_str()));
    assert_eq!(state.stripe_subscription_id.as_deref(), Some(sub.as_str()));

    // From now on the customer finds the org.
    let created = subscription_event("created", t + 1, &sub, &customer, "active", STARTER.1);
    assert_eq!(app.billing_outcome(&created).await, "applied");
    assert_eq!(org_state(&app, &org).await.plan, STARTER.0);
}

#[tokio::test]
async fn subscription_events_set_status_plan_budget_period_and_cancellation() {
    let app = billing_app(|_| {}).await;
    let org = create_org(&app, "free", "none").await;
    let sub = stripe_id("sub");
    let t = now() - 600;

    // API version 2025-03-31.basil and later: the period end is on the item.
    let created = subscription_event("created", t, &sub, &org.customer, "active", STARTER.1);
    assert_eq!(app.billing_outcome(&created).await, "applied");
    let state = org_state(&app, &org.id).await;
    assert_eq!(state.subscription_status, "active");
    assert_eq!(state.plan_and_budget(), (STARTER.0, STARTER.2));
    assert_eq!(state.stripe_subscription_id.as_deref(), Some(sub.as_str()));
    assert_eq!(state.current_period_end, Some(at(PERIOD_END)));
    assert!(!state.cancel_at_period_end);

    // Earlier API versions: the period end is on the subscription.
    let mut legacy = subscription(&sub, &org.customer, "active", PRO.1);
    legacy["current_period_start"] = json!(PERIOD_START);
    legacy["current_period_end"] = json!(PERIOD_END + 86_400);
    legacy["cancel_at_period_end"] = json!(true);
    for item in legacy["items"]["data"].as_array_mut().into_iter().flatten() {
        item.as_object_mut().map(|i| i.remove("current_period_end"));
    }
    let updated = event("customer.subscription.updated", t + 10, legacy);
    assert_eq!(app.billing_outcome(&updated).await, "applied");
    let state = org_state(&app, &org.id).await;
    assert_eq!(state.plan_and_budget(), (PRO.0, PRO.2));
    assert_eq!(state.current_period_end, Some(at(PERIOD_END + 86_400)));
    assert!(state.cancel_at_period_end);

    let deleted = subscription_event("deleted", t + 20, &sub, &org.customer, "canceled", PRO.1);
    assert_eq!(app.billing_outcome(&deleted).await, "applied");
    let state = org_state(&app, &org.id).await;
    assert_eq!(state.subscription_status, "canceled");
    assert_eq!(state.plan_and_budget(), ("free", FREE_BUDGET));
}

#[tokio::test]
async fn invoice_paid_renews_the_token_budget_from_the_paid_period() {
    let app = billing_app(|_| {}).await;
    let org = create_org(&app, "starter", "past_due").await;
    set_org(&app, &org.id, json!({"monthly_token_budget": 7})).await;
    let mut paid = invoice(&org.customer, "sub_renewal", "paid", 2);
    paid["lines"]["data"][0]["period"] =
        json!({"start": PERIOD_END, "end": PERIOD_END + 2_419_200});
    assert_eq!(
        app.billing_outcome(&event("invoice.paid", now(), paid))
            .await,
        "applied"
    );

    let state = org_state(&app, &org.id).await;
    assert_eq!(
        state.subscription_status, "active",
        "paying recovers a past_due subscription"
    );
    assert_eq!(state.monthly_token_budget, STARTER.2);
    assert_eq!(state.token_period_started_at, at(PERIOD_END));
}

#[tokio::test]
async fn invoice_payment_failed_makes_the_org_past_due_and_raises_an_alert() {
    let app = billing_app(|_| {}).await;
    let org = create_org(&app, "pro", "active").await;
    let failed = invoice_event("payment_failed", now(), &org.customer, "sub_failing", 1);
    assert_eq!(app.billing_outcome(&failed).await, "applied");
    let state = org_state(&app, &org.id).await;
    assert_eq!(
        (state.subscription_status.as_str(), state.plan.as_str()),
        ("past_due", PRO.0)
    );
    assert_eq!(
        alert_count(app.db(), &org.id, "billing_payment_failed").await,
        1
    );
}

#[tokio::test]
async fn a_checkout_for_an_org_that_does_not_exist_is_acknowledged_recorded_and_alerted() {
    let app = billing_app(|_| {}).await;
    let stranger = stripe_id("cus");
    let nowhere = new_uuid();
    let checkout = checkout_event(now(), &nowhere, &stranger, &stripe_id("sub"));
    let (status, answer) = app.post_billing_event(&checkout).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "unknown_customer");
    let rows = webhook_rows(&app, event_id(&checkout)).await;
    assert_eq!(
        (rows[0].status.as_str(), rows[0].org_id.as_deref()),
        ("ignored", None)
    );
    let alert = alert_about(&app, event_id(&checkout)).await;
    assert_eq!(alert.kind, "billing_unknown_customer");
    assert_eq!(alert.org_id, None);
    assert!(alert.message.contains(&stranger), "{}", alert.message);
    assert!(alert.message.contains(&nowhere), "{}", alert.message);
}

#[tokio::test]
async fn other_event_types_are_recorded_and_acknowledged() {
    let app = billing_app(|_| {}).await;
    let other = event(
        "charge.refunded",
        now(),
        json!({"id": stripe_id("ch"), "object": "charge", "customer": "cus_x"}),
    );
    let (status, answer) = app.post_billing_event(&other).await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")));
    let rows = webhook_rows(&app, event_id(&other)).await;
    assert_eq!(
        (rows[0].status.as_str(), rows[0].event_type.as_str()),
        ("ignored", "charge.refunded")
    );
}

// =============================================================================================
// Refetch from the Stripe API and outages
// =============================================================================================

#[tokio::test]
async fn with_a_secret_key_the_api_subscription_wins_over_the_event_body() {
    let (stripe, app) = billing_app_and_stripe().await;
    let org = create_org(&app, "free", "none").await;
    let sub = stripe_id("sub");
    let mut current = subscription(&sub, &org.customer, "trialing", PRO.1);
    current["cancel_at_period_end"] = json!(true);
    stripe_subscription(&sub)
        .and(header("authorization", "Bearer sk_test_billing"))
        .respond_with(stripe_answer(current))
        .expect(1)
        .mount(&stripe)
        .await;

    let stale_body = subscription_event("updated", now(), &sub, &org.customer, "active", STARTER.1);
    assert_eq!(stale_body["api_version"], "2026-08-26.dahlia");
    assert_eq!(app.billing_outcome(&stale_body).await, "applied");
    let state = org_state(&app, &org.id).await;
    assert_eq!(state.plan_and_status(), (PRO.0, "trialing"));
    assert!(state.cancel_at_period_end);
    let refetch = &stripe.received_requests().await.expect("requests")[0];
    assert_eq!(refetch.headers["stripe-version"], STRIPE_VERSION, "pinned");
}

#[tokio::test]
async fn a_failing_refetch_answers_503_records_nothing_and_the_retry_applies() {
    let (stripe, app) = billing_app_and_stripe().await;
    let org = create_org(&app, "free", "none").await;
    let sub = stripe_id("sub");
    stripe_subscription(&sub)
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error": {"type": "api_error", "message": "An unknown error occurred"}
        })))
        .up_to_n_times(1)
        .mount(&stripe)
        .await;
    stripe_subscription(&sub)
        .respond_with(stripe_answer(subscription(
            &sub,
            &org.customer,
            "active",
            PRO.1,
        )))
        .mount(&stripe)
        .await;

    let created = subscription_event("created", now(), &sub, &org.customer, "active", PRO.1);
    let (status, answer) = app.post_billing_event(&created).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable");
    assert!(webhook_rows(&app, event_id(&created)).await.is_empty());
    assert_eq!(org_state(&app, &org.id).await.plan, "free");

    assert_eq!(
        app.billing_outcome(&created).await,
        "applied",
        "Stripe's retry"
    );
    assert_eq!(org_state(&app, &org.id).await.plan, PRO.0);
}

#[tokio::test]
async fn a_refetched_subscription_applies_although_newer_events_were_applied() {
    let stripe = MockServer::start().await;
    let app = billing_app_with_stripe(&stripe, |env| {
        set(env, &[("STRIPE_API_TIMEOUT_MS", "200")]);
    })
    .await;
    let org = create_org(&app, "starter", "active").await;
    let sub = stripe_id("sub");
    let upgraded = subscription(&sub, &org.customer, "active", PRO.1);
    stripe_subscription(&sub)
        .respond_with(stripe_answer(&upgraded).set_delay(std::time::Duration::from_secs(1)))
        .up_to_n_times(1)
        .mount(&stripe)
        .await;
    stripe_subscription(&sub)
        .respond_with(stripe_answer(&upgraded))
        .mount(&stripe)
        .await;
    let t = now() - 600;
    let update = event("customer.subscription.updated", t, upgraded.clone());
    assert_eq!(
        app.post_billing_event(&update).await.0,
        503,
        "the refetch timed out"
    );
    let paid = invoice_event("paid", t + 1, &org.customer, &sub, 1);
    assert_eq!(app.billing_outcome(&paid).await, "applied");
    let newer = event("customer.subscription.updated", t + 5, upgraded.clone());
    assert_eq!(app.billing_outcome(&newer).await, "applied");

    assert_eq!(
        app.billing_outcome(&update).await,
        "applied",
        "Stripe's retry"
    );
    let state = org_state(&app, &org.id).await;
    assert_eq!(state.plan_and_budget(), (PRO.0, PRO.2));
    assert_eq!(
        webhook_rows(&app, event_id(&update)).await[0].status,
        "processed"
    );
}

/// A slow `updated` handler's refetch (asked for before the deletion) arrives after a fast
/// `deleted` handler applied: the old snapshot is stale and the org stays canceled.
#[tokio::test]
async fn a_slow_refetch_cannot_bring_back_a_plan_a_later_deletion_removed() {
    let stripe = MockServer::start().await;
    let app = billing_app_with_stripe(&stripe, |_| {}).await;
    let org = create_org(&app, "starter", "active").await;
    let sub = stripe_id("sub");
    let active = subscription(&sub, &org.customer, "active", PRO.1);
    let canceled = subscription(&sub, &org.customer, "canceled", PRO.1);
    let slowly = std::time::Duration::from_millis(1500);
    stripe_subscription(&sub)
        .respond_with(stripe_answer(&active).set_delay(slowly))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stripe)
        .await;
    stripe_subscription(&sub)
        .respond_with(stripe_answer(&canceled))
        .with_priority(2)
        .mount(&stripe)
        .await;
    let t = now() - 60;
    let updated = event("customer.subscription.updated", t, active.clone());
    let deleted = event("customer.subscription.deleted", t + 1, canceled.clone());

    let fast = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let applied = app.billing_outcome(&deleted).await;
        (applied, org_state(&app, &org.id).await.subscription_status)
    };
    let (slow, fast) = tokio::join!(app.billing_outcome(&updated), fast);
    assert_eq!(fast, ("applied".to_string(), "canceled".to_string()));
    assert_eq!(slow, "stale");
    let state = org_state(&app, &org.id).await;
    assert_eq!(state.subscription_status, "canceled", "the deletion stands");
}

#[tokio::test]
async fn with_a_secret_key_the_checkout_applies_kept_events_then_the_current_subscription() {
    let (stripe, app) = billing_app_and_stripe().await;
    let org = create_org_without_customer(&app).await;
    let customer = stripe_id("cus");
    let sub = stripe_id("sub");
    stripe_subscription(&sub)
        .respond_with(stripe_answer(subscription(
            &sub, &customer, "active", PRO.1,
        )))
        .expect(2)
        .mount(&stripe)
        .await;
    let t = now() - 60;
    // Kept from the event's copy, newer than the checkout: the checkout's refetch, the current
    // state, still comes last.
    let updated = subscription_event("updated", t + 1, &sub, &customer, "incomplete", STARTER.1);
    assert_eq!(app.billing_outcome(&updated).await, "pending");
    let checkout = checkout_event(t, &org, &customer, &sub);
    assert_eq!(app.billing_outcome(&checkout).await, "applied");
    let state = org_state(&app, &org).await;
    assert_eq!(state.plan_and_status(), (PRO.0, "active"));
    assert_eq!(
        webhook_rows(&app, event_id(&updated)).await[0].status,
        "processed"
    );
}

#[tokio::test]
async fn a_refetch_timeout_answers_503() {
    let stripe = MockServer::start().await;
    let app = billing_app_with_stripe(&stripe, |env| {
        set(env, &[("STRIPE_API_TIMEOUT_MS", "200")]);
    })
    .await;
    let org = create_org(&app, "free", "none").await;
    let sub = stripe_id("sub");
    stripe_subscription(&sub)
        .respond_with(
            stripe_answer(subscription(&sub, &org.customer, "active", PRO.1))
                .set_delay(std::time::Duration::from_secs(2)),
        )
        .mount(&stripe)
        .await;
    let created = subscription_event("created", now(), &sub, &org.customer, "active", PRO.1);
    assert_eq!(app.post_billing_event(&created).await.0, 503);
}

#[tokio::test]
async fn a_subscription_the_api_does_not_know_applies_the_signed_event_copy() {
    let (stripe, app) = billing_app_and_stripe().await;
    let org = create_org(&app, "free", "none").await;
    let sub = stripe_id("sub");
    stripe_subscription(&sub)
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {
                "code": "resource_missing",
                "message": format!("No such subscription: '{sub}'"),
                "param": "id",
                "type": "invalid_request_error"
            }
        })))
        .expect(1)
        .mount(&stripe)
        .await;
    let created = subscription_event("created", now(), &sub, &org.customer, "active", STARTER.1);
    assert_eq!(app.billing_outcome(&created).await, "applied");
    assert_eq!(org_state(&app, &org.id).await.plan, STARTER.0);
}

#[tokio::test]
async fn checkout_with_a_secret_key_also_applies_the_new_subscription() {
    let (stripe, app) = billing_app_and_stripe().await;
    let org = create_org_without_customer(&app).await;
    let customer = stripe_id("cus");
    let sub = stripe_id("sub");
    stripe_subscription(&sub)
        .respond_with(stripe_answer(subscription(
            &sub, &customer, "active", PRO.1,
        )))
        .expect(1)
        .mount(&stripe)
        .await;
    let checkout = checkout_event(now(), &org, &customer, &sub);
    assert_eq!(app.billing_outcome(&checkout).await, "applied");
    let state = org_state(&app, &org).await;
    assert_eq!(state.plan_and_status(), (PRO.0, "active"));
}

#[tokio::test]
async fn the_database_down_answers_503_so_that_stripe_retries() {
    let app = billing_app(|env| set(env, &[("POSTGREST_URL", NO_DATABASE)])).await;
    let failed = invoice_event("payment_failed", now(), "cus_x", "sub_x", 1);
    let (status, answer) = app.post_billing_event(&failed).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable");
}
