//! `POST /api/admin/contacts/[id]/erase`: a contact's data erased on request, by an owner
//! only, under RLS; the opt-out survives; the audit row names who erased whom and nothing else.

use serde_json::{json, Value};

use crate::helpers::admin::World;
use crate::helpers::*;

/// Org A's seeded contact gets a reminder, an expense, a calendar event and a tool execution;
/// its dead letters wait a day, so that no concurrent retry-failed run re-drives its message
/// (and hits its rate limit again) while the test erases it.
async fn more_data(w: &World) {
    let (db, org, contact) = (w.db(), &w.a.org.id, &w.a.contact);
    let later = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339();
    update(
        db,
        "dead_letter_queue",
        ("org_id", org),
        json!({"next_attempt_at": later}),
    )
    .await;
    insert(db, "reminders", json!({
        "org_id": org, "contact_id": contact, "text": "call the dentist", "due_at": "2030-01-01T09:00:00Z",
    }))
    .await;
    insert(
        db,
        "expenses",
        json!({"org_id": org, "contact_id": contact, "amount": 12.5, "note": "lunch"}),
    )
    .await;
    insert(db, "calendar_events", json!({
        "org_id": org, "contact_id": contact, "title": "dentist", "starts_at": "2030-01-02T09:00:00Z",
    }))
    .await;
    insert(
        db,
        "tool_executions",
        json!({
            "org_id": org, "contact_id": contact, "tool": "log_expense", "status": "success",
            "input": {"note": "lunch"},
        }),
    )
    .await;
}

/// How many rows of each of the contact's tables remain.
async fn left(w: &World) -> Vec<(&'static str, usize)> {
    let mut counts = Vec::new();
    for table in [
        "messages",
        "conversations",
        "reminders",
        "expenses",
        "calendar_events",
        "tool_executions",
    ] {
        let rows = select(w.db(), table, &[("contact_id", eq(&w.a.contact))]).await;
        counts.push((table, rows.len()));
    }
    let key = format!("contact:{}", w.a.contact);
    counts.push((
        "rate_limits",
        select(w.db(), "rate_limits", &[("key", eq(key))])
            .await
            .len(),
    ));
    counts
}

fn erase_path(w: &World) -> String {
    format!("/api/admin/contacts/{}/erase", w.a.contact)
}

#[tokio::test]
async fn only_an_owner_erases_and_an_opted_out_contact_keeps_only_its_opt_out() {
    // No other test's cron run processes this contact's messages while the counts are compared.
    let _turn = crate::cron::TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let w = World::with_graph(&graph).await;
    more_data(&w).await;
    let db = w.db();
    update(
        db,
        "contacts",
        ("id", &w.a.contact),
        json!({"opted_out": true, "opted_out_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let before = left(&w).await;
    assert!(before.iter().all(|(_, n)| *n >= 1), "{before:?}");

    // Under RLS: a viewer and an admin of org A are refused, org B's admin does not see it.
    for (user, status) in [(w.viewer_a, 403), (w.admin_a, 403), (w.admin_b, 404)] {
        let (got, body) = w.admin_post_empty(&erase_path(&w), &w.token(user)).await;
        assert_eq!(got, status, "{body}");
    }
    assert_eq!(left(&w).await, before, "nothing erased by a refused call");

    let (status, body) = w
        .admin_post_empty(&erase_path(&w), &w.token(w.owner_a))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contact_kept_for_opt_out"], true);
    assert!(body["messages"].as_u64() >= Some(2), "{body}");
    assert!(
        left(&w).await.iter().all(|(_, n)| *n == 0),
        "{:?}",
        left(&w).await
    );

    let contact = row(db, "contacts", &w.a.contact).await;
    assert_eq!(
        contact["wa_id"],
        w.a.wa_id.as_str(),
        "kept: the opt-out's key"
    );
    assert_eq!(contact["opted_out"], true);
    assert_eq!(contact["name"], Value::Null);
    assert!(contact["erased_at"].is_string());
    let ai = select(db, "ai_requests", &[("org_id", eq(&w.a.org.id))]).await;
    assert!(!ai.is_empty(), "the org's AI cost stays");
    assert!(ai.iter().all(|r| r["contact_id"].is_null()), "{ai:?}");
    for id in &w.a.dead_letters {
        assert!(
            row(db, "dead_letter_queue", id).await.is_null(),
            "its dead letters go"
        );
    }

    let audit = w.audit("contact.erase").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["actor_id"], w.owner_a.to_string());
    assert_eq!(audit[0]["target"], format!("contact:{}", w.a.contact));
    let recorded = audit[0].to_string();
    for erased in [w.a.wa_id.as_str(), "Ana", "hello", "lunch", "dentist"] {
        assert!(
            !recorded.contains(erased),
            "the audit row holds {erased}: {recorded}"
        );
    }

    // The same number writes again: the opt-out still holds, no reply, a fresh conversation.
    let wamid = w.post_text(&w.a.org, &w.a.wa_id, "are you there?").await;
    let message = w.processed(&wamid).await;
    assert_eq!(message["contact_id"], w.a.contact.as_str());
    assert!(
        w.reply_to(&wamid).await.is_none(),
        "an opted-out contact is not answered"
    );
    let messages = select(db, "messages", &[("contact_id", eq(&w.a.contact))]).await;
    assert_eq!(messages.len(), 1, "no history: {messages:?}");
}

#[tokio::test]
async fn a_contact_who_did_not_opt_out_is_deleted_and_a_later_message_starts_afresh() {
    let _turn = crate::cron::TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let w = World::with_graph(&graph).await;
    more_data(&w).await;
    let (status, body) = w
        .admin_post_empty(&erase_path(&w), &w.token(w.owner_a))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contact_kept_for_opt_out"], false);
    assert!(row(w.db(), "contacts", &w.a.contact).await.is_null());
    let after = left(&w).await;
    assert!(after.iter().all(|(_, n)| *n == 0), "{after:?}");
    let (status, _) = w
        .admin_post_empty(&erase_path(&w), &w.token(w.owner_a))
        .await;
    assert_eq!(status, 404, "erased already");

    let wamid = w.post_text(&w.a.org, &w.a.wa_id, "hello again").await;
    let message = w.processed(&wamid).await;
    assert_ne!(message["contact_id"], w.a.contact.as_str(), "a new contact");
    let history = select(
        w.db(),
        "messages",
        &[("contact_id", eq(message["contact_id"].as_str().unwrap()))],
    )
    .await;
    assert!(
        history.iter().all(|m| m["body"] != "hello"),
        "no earlier message: {history:?}"
    );
}
