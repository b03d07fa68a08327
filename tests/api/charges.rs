//! Meta's charges (`private.whatsapp_charge_parts`): each billable part of an outbound message
//! is charged once it is delivered, whatever its redeliveries and later statuses, at the price
//! of its category and market, and counted in the usage totals beside AI cost: admin_usage,
//! admin_overview and the monitor's cost alert see it.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::admin::World;
use crate::helpers::*;

/// Utility, market +1 (`private.whatsapp_prices`' default; the test contacts are +1 numbers).
const UTILITY_US: f64 = 0.004;

/// An outbound message of org A split into parts `wamids`, recorded as the send step records
/// a delivered send (`private.whatsapp_record_parts`); its id.
async fn split_reply(w: &World, wamids: &[&str]) -> String {
    let id = Uuid::new_v4().to_string();
    insert(
        w.db(),
        "messages",
        json!({
            "id": id, "org_id": w.a.org.id, "conversation_id": w.a.conversation,
            "contact_id": w.a.contact, "direction": "outbound", "wa_message_id": wamids[0],
            "type": "text", "body": "a long answer", "status": "sent",
        }),
    )
    .await;
    psql(&format!(
        "select private.whatsapp_record_parts('{id}', '{}')",
        json!(wamids)
    ))
    .await;
    id
}

/// Posts the documented status `file` of part `wamid` of message `id`; asserts it is taken.
async fn post_status(w: &World, file: &str, wamid: &str, id: &str) {
    let body = status_of(file, &w.a.org, wamid, Some(id));
    assert_eq!(w.post_webhook(&body).await.status(), 200, "{file}");
}

/// Org A's usage totals of this month so far (`/api/admin/usage`).
async fn usage(w: &World) -> Value {
    let org = &w.a.org.id;
    let (status, usage) = w
        .admin_get(
            &format!("/api/admin/usage?org_id={org}"),
            &w.token(w.viewer_a),
        )
        .await;
    assert_eq!(status, 200, "{usage}");
    usage["totals"].clone()
}

fn usd(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("a number: {value}"))
}

#[tokio::test]
async fn billable_parts_are_charged_once_when_delivered_and_counted_beside_ai_cost() {
    let w = World::new().await;
    let (first, second, free) = (new_wamid(), new_wamid(), new_wamid());
    let id = split_reply(&w, &[&first, &second]).await;

    // Sent is not charged yet (Meta charges delivered messages).
    post_status(&w, "status_sent_billable.json", &first, &id).await;
    assert_eq!(usage(&w).await["whatsapp_messages"], 0);

    // Delivered, redelivered at once (concurrent transactions or one group commit), then
    // read: one charge.
    let redeliveries =
        (0..6).map(|_| post_status(&w, "status_delivered_billable.json", &first, &id));
    futures_util::future::join_all(redeliveries).await;
    post_status(&w, "status_read.json", &first, &id).await;
    let totals = usage(&w).await;
    assert_eq!(totals["whatsapp_messages"], 1, "{totals}");
    assert!((usd(&totals["whatsapp_cost_usd"]) - UTILITY_US).abs() < 1e-9);

    // The second part is charged too: its sent status noted the category, and a read without
    // pricing (Meta may skip delivered) charges it.
    post_status(&w, "status_sent_billable.json", &second, &id).await;
    post_status(&w, "status_read.json", &second, &id).await;
    // A free service reply (Meta's documented example) is not charged.
    let service = split_reply(&w, &[&free]).await;
    post_status(&w, "status_sent.json", &free, &service).await;
    post_status(&w, "status_delivered.json", &free, &service).await;

    let totals = usage(&w).await;
    assert_eq!(totals["whatsapp_messages"], 2, "{totals}");
    assert!((usd(&totals["whatsapp_cost_usd"]) - 2.0 * UTILITY_US).abs() < 1e-9);
    assert!(
        (usd(&totals["cost_usd"]) - 0.00036).abs() < 1e-9,
        "AI cost apart"
    );

    let org = &w.a.org.id;
    let (status, overview) = w
        .admin_get(
            &format!("/api/admin/overview?org_id={org}"),
            &w.token(w.viewer_a),
        )
        .await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["whatsapp"]["charged_messages"], 2, "{overview}");
    assert!((usd(&overview["total_cost_usd"]) - (0.00036 + 2.0 * UTILITY_US)).abs() < 1e-9);
}

#[tokio::test]
async fn the_cost_alert_counts_whatsapp_charges() {
    let w = World::new().await;
    // AI cost 0.00036 alone is under the budget; with three utility charges it is over.
    w.a.org
        .update(
            w.db(),
            "assistant_settings",
            json!({"monthly_cost_budget_usd": 0.01}),
        )
        .await;
    let parts = [new_wamid(), new_wamid(), new_wamid()];
    let id = split_reply(&w, &parts.each_ref().map(String::as_str)).await;
    w.cron(MONITOR).await;
    assert_eq!(alert_count(w.db(), &w.a.org.id, "ai_cost").await, 0);

    for part in &parts {
        post_status(&w, "status_delivered_billable.json", part, &id).await;
    }
    w.cron(MONITOR).await;
    assert_eq!(alert_count(w.db(), &w.a.org.id, "ai_cost").await, 1);
}

#[tokio::test]
async fn a_billable_status_before_its_send_is_recorded_is_charged_when_it_is() {
    let w = World::new().await;
    let wamid = new_wamid();
    // No part and no callback data yet: kept with its charge in whatsapp_early_statuses.
    let early = status_delivery("status_delivered_billable.json", &w.a.org, &wamid);
    assert_eq!(w.post_webhook(&early).await.status(), 200);
    assert_eq!(usage(&w).await["whatsapp_messages"], 0);

    split_reply(&w, &[&wamid]).await;
    let totals = usage(&w).await;
    assert_eq!(totals["whatsapp_messages"], 1, "{totals}");
    assert!((usd(&totals["whatsapp_cost_usd"]) - UTILITY_US).abs() < 1e-9);
}
