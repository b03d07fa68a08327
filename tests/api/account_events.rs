//! Meta's account webhooks, stored in the delivery's own round trip
//! (`private.whatsapp_apply_account_events`): an account restriction and a lowered number
//! quality are recorded on the number and raise alerts (one per kind, whatever the
//! redeliveries); a template Meta disabled raises a critical alert and is never sent; a
//! marketing opt-out is kept on the contact and service replies still go out.

use serde_json::{json, Value};

use crate::helpers::admin::World;
use crate::helpers::lib::Postgrest;
use crate::helpers::*;

/// An app sending through `graph`, and a fresh org.
async fn app_with_graph(graph: &wiremock::MockServer) -> (TestApp, TestOrg) {
    let app = spawn_app_with_graph(graph, &[]).await;
    let org = TestOrg::create(app.db()).await;
    (app, org)
}

/// Meta's documented account-level `file`, for the WABA `waba_id`.
fn account_delivery(file: &str, waba_id: &str) -> Value {
    let mut payload = fixture(file);
    payload["entry"][0]["id"] = json!(waba_id);
    payload
}

/// Gives org `org`'s number the WABA id it is known by in account webhooks; returns it.
async fn connect_waba(db: &Postgrest, org: &TestOrg) -> String {
    let waba_id = new_phone_number_id();
    org.update(db, "whatsapp_numbers", json!({"waba_id": waba_id}))
        .await;
    waba_id
}

async fn alerts(db: &Postgrest, org: &TestOrg, kind: &str) -> Vec<Value> {
    org.rows(db, "alerts", &[("kind", eq(kind))]).await
}

#[tokio::test]
async fn a_restriction_and_a_lowered_quality_are_recorded_and_raise_alerts() {
    let w = World::new().await;
    let org = &w.a.org;
    let waba_id = connect_waba(w.db(), org).await;

    let restriction = account_delivery("account_update_restriction.json", &waba_id);
    for _ in 0..2 {
        assert_eq!(w.post_webhook_json(&restriction).await.status(), 200);
    }
    let mut quality = account_delivery("phone_number_quality_update_downgrade.json", &waba_id);
    // The test org's number, as Meta writes a display number (digits only).
    quality["entry"][0]["changes"][0]["value"]["display_phone_number"] = json!("15550000000");
    assert_eq!(w.post_webhook_json(&quality).await.status(), 200);

    let restricted = alerts(w.db(), org, "whatsapp_account_restricted").await;
    assert_eq!(restricted.len(), 1, "one alert: {restricted:?}");
    assert_eq!(restricted[0]["severity"], "critical");
    assert_eq!(
        alerts(w.db(), org, "whatsapp_number_quality").await.len(),
        1
    );
    // Another org's number (another WABA) is untouched.
    assert!(alerts(w.db(), &w.b.org, "whatsapp_account_restricted")
        .await
        .is_empty());

    let (status, overview) = w
        .admin_get(
            &format!("/api/admin/overview?org_id={}", org.id),
            &w.token(w.viewer_a),
        )
        .await;
    assert_eq!(status, 200, "{overview}");
    let number = &overview["numbers"][0];
    assert_eq!(number["account_event"], "ACCOUNT_RESTRICTION", "{overview}");
    assert_eq!(
        number["restrictions"][0]["restriction_type"],
        "RESTRICTED_BIZ_INITIATED_MESSAGING"
    );
    assert_eq!(number["quality_event"], "DOWNGRADE");
    assert_eq!(number["messaging_limit"], "TIER_1K");
}

#[tokio::test]
async fn a_template_meta_disabled_raises_an_alert_and_is_never_sent() {
    let graph = fake_graph(FakeGraph::ok()).await;
    let (app, org) = app_with_graph(&graph).await;
    let waba_id = connect_waba(app.db(), &org).await;

    let disabled = account_delivery("message_template_status_update_disabled.json", &waba_id);
    assert_eq!(app.post_webhook_json(&disabled).await.status(), 200);
    let unusable = alerts(app.db(), &org, "whatsapp_template_unusable").await;
    assert_eq!(unusable.len(), 1, "{unusable:?}");
    assert_eq!(unusable[0]["severity"], "critical");
    let templates = org.rows(app.db(), "whatsapp_templates", &[]).await;
    assert_eq!(templates[0]["status"], "DISABLED", "{templates:?}");

    // A message older than 24 h: the reply would need the template, which Meta disabled.
    let (payload, wamids) = personalize(fixture("text.json"), &org, &new_wa_id(), 25 * 3600);
    app.post_webhook_json(&payload).await;
    let inbound = app.processed(&wamids[0]).await;
    assert_eq!(inbound["status"], "failed", "{inbound}");
    assert!(
        inbound["error"].to_string().contains("no usable template"),
        "{inbound}"
    );
    assert!(sends(&graph, "template").await.is_empty(), "never sent");
    assert!(sends(&graph, "text").await.is_empty());
}

#[tokio::test]
async fn a_marketing_opt_out_is_kept_and_service_replies_still_go_out() {
    let graph = fake_graph(FakeGraph::ok()).await;
    let (app, org) = app_with_graph(&graph).await;
    let wa_id = new_wa_id();
    let first = app.post_text(&org, &wa_id, "hello").await;
    assert!(app.reply_to(&first).await.is_some());

    let mut stop = fixture("user_preferences_stop.json");
    let value = &mut stop["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = json!(org.phone_number_id);
    value["contacts"][0]["wa_id"] = json!(wa_id);
    value["user_preferences"][0]["wa_id"] = json!(wa_id);
    assert_eq!(app.post_webhook_json(&stop).await.status(), 200);
    let contact = &org
        .rows(app.db(), "contacts", &[("wa_id", eq(&wa_id))])
        .await[0];
    assert!(contact["marketing_stopped_at"].is_string(), "{contact}");
    assert_eq!(contact["opted_out"], false);

    let second = app.post_text(&org, &wa_id, "still there?").await;
    let reply = app.reply_to(&second).await.expect("answered");
    assert_eq!(reply["status"], "sent", "{reply}");
    assert_eq!(sends(&graph, "text").await.len(), 2);
}
