//! `/api/cron/retention`: rows past their age are deleted, in bounded batches, and nothing
//! younger; messages only for an org that set a retention.

use chrono::{TimeDelta, Utc};
use serde_json::{json, Value};

use crate::cron::TURN;
use crate::helpers::lib::{Caller, Postgrest};
use crate::helpers::reminders::*;
use crate::helpers::*;

fn days_ago(days: i64) -> String {
    (Utc::now() - TimeDelta::days(days)).to_rfc3339()
}

/// Three rows of each kind past its retention and one within it, all marked with `tag`.
async fn arrange(db: &Postgrest, org: &TestOrg, tag: &str) {
    for (n, days) in [(1, 40), (2, 41), (3, 42), (4, 1)] {
        let old = days_ago(days + 60);
        let at = if n == 4 { days_ago(1) } else { old.clone() };
        insert(db, "webhooks", json!({
            "source": "whatsapp", "external_id": format!("{tag}-{n}"), "received_at": days_ago(days),
        }))
        .await;
        insert(
            db,
            "ai_requests",
            json!({
                "org_id": org.id, "provider": "openai", "model": "gpt-6-luna", "status": "success",
                "error": format!("{tag}-{n}"), "created_at": at,
            }),
        )
        .await;
        insert(
            db,
            "tool_executions",
            json!({
                "org_id": org.id, "tool": "log_expense", "status": "success",
                "error": format!("{tag}-{n}"), "created_at": at,
            }),
        )
        .await;
        insert(
            db,
            "rate_limits",
            json!({
                "key": format!("{tag}-{n}"), "org_id": org.id, "count": 1,
                "window_start": if n == 4 { Utc::now().to_rfc3339() } else { days_ago(2) },
            }),
        )
        .await;
        insert(db, "dead_letter_queue", json!({
            "org_id": org.id, "kind": "inbound_message", "ref": format!("{tag}-{n}"),
            "error": "x", "status": "resolved", "resolved_at": if n == 4 { days_ago(1) } else { days_ago(days) },
        }))
        .await;
        insert(db, "alerts", json!({
            "org_id": org.id, "kind": format!("{tag}-{n}"), "message": "x", "status": "resolved",
            "resolved_at": at,
        }))
        .await;
    }
    // Old, but not resolved: kept whatever their age.
    insert(
        db,
        "dead_letter_queue",
        json!({
            "org_id": org.id, "kind": "inbound_message", "ref": format!("{tag}-pending"),
            "error": "x", "created_at": days_ago(400),
        }),
    )
    .await;
    insert(db, "alerts", json!({
        "org_id": org.id, "kind": format!("{tag}-open"), "message": "x", "created_at": days_ago(400),
    }))
    .await;
}

/// How many rows of `table` carry `tag` in `column` (`like tag-*`).
async fn tagged(db: &Postgrest, table: &str, column: &str, tag: &str) -> Vec<String> {
    let mut found: Vec<String> = select(db, table, &[(column, format!("like.{tag}-*"))])
        .await
        .iter()
        .map(|row| row[column].as_str().unwrap_or_default().to_string())
        .collect();
    found.sort();
    found
}

/// Messages of `contact` created `days` ago (processed).
async fn messages(db: &Postgrest, org: &TestOrg, contact: &Contact, days: &[i64]) -> Vec<String> {
    let mut ids = Vec::new();
    for day in days {
        let id = new_uuid();
        insert(
            db,
            "messages",
            json!({
                "id": id, "org_id": org.id, "conversation_id": contact.conversation_id,
                "contact_id": contact.id, "direction": "inbound", "type": "text", "body": "hi",
                "status": "processed", "created_at": days_ago(*day),
            }),
        )
        .await;
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn retention_deletes_only_rows_past_their_age_in_batches() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let (app, org, owner) = cron_org(&graph, &[("RETENTION_BATCH_SIZE", "2")], 1).await;
    let db = app.db();
    let tag = format!("retention-{}", unique());
    arrange(db, &org, &tag).await;
    // This org keeps messages 30 days; another org sets no retention and keeps them all.
    org.update(
        db,
        "assistant_settings",
        json!({"message_retention_days": 30}),
    )
    .await;
    let kept = messages(db, &org, &owner, &[29, 1]).await;
    let gone = messages(db, &org, &owner, &[31, 60, 90]).await;
    let other = TestOrg::create(db).await;
    let other_contact = contact(db, &other, 1).await;
    let other_old = messages(db, &other, &other_contact, &[400]).await;

    let summary = app.cron(RETENTION).await;

    let recent = vec![format!("{tag}-4")];
    assert_eq!(tagged(db, "webhooks", "external_id", &tag).await, recent);
    assert_eq!(tagged(db, "ai_requests", "error", &tag).await, recent);
    assert_eq!(tagged(db, "tool_executions", "error", &tag).await, recent);
    assert_eq!(tagged(db, "rate_limits", "key", &tag).await, recent);
    let dead = tagged(db, "dead_letter_queue", "ref", &tag).await;
    assert_eq!(dead, [format!("{tag}-4"), format!("{tag}-pending")]);
    let alerts = tagged(db, "alerts", "kind", &tag).await;
    assert_eq!(alerts, [format!("{tag}-4"), format!("{tag}-open")]);
    for id in &kept {
        assert!(
            !row(db, "messages", id).await.is_null(),
            "a message within the retention"
        );
    }
    for id in &gone {
        assert!(
            row(db, "messages", id).await.is_null(),
            "a message past the retention"
        );
    }
    assert!(!row(db, "messages", &other_old[0]).await.is_null());

    for kind in [
        "webhooks",
        "ai_requests",
        "tool_executions",
        "rate_limits",
        "dead_letters",
        "alerts",
        "messages",
    ] {
        assert!(
            summary["deleted"][kind].as_u64() >= Some(3),
            "{kind}: {summary}"
        );
    }
    // 3 rows of each of 7 kinds, 2 per round trip: at least 2 round trips each.
    assert!(summary["batches"].as_u64() >= Some(14), "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
}

#[tokio::test]
async fn one_purge_deletes_at_most_its_batch_and_a_zero_retention_keeps_everything() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[("WEBHOOK_RETENTION_DAYS", "0")]).await;
    let db = app.db();
    let tag = format!("retention-{}", unique());
    for n in 0..3 {
        insert(db, "webhooks", json!({
            "source": "whatsapp", "external_id": format!("{tag}-{n}"), "received_at": days_ago(400),
        }))
        .await;
    }
    let summary = app.cron(RETENTION).await;
    assert_eq!(summary["deleted"]["webhooks"], 0, "{summary}");
    assert_eq!(tagged(db, "webhooks", "external_id", &tag).await.len(), 3);

    let purge = |limit: u32| async move {
        db.rpc("cron_purge", Caller::Service)
            .args(&json!({"p_kind": "webhooks", "p_days": 30, "p_limit": limit}))
            .fetch::<Value>()
            .await
            .expect("cron_purge")
            .data
    };
    assert_eq!(purge(1).await, 1);
    assert_eq!(tagged(db, "webhooks", "external_id", &tag).await.len(), 2);
    purge(100_000).await;
    assert!(tagged(db, "webhooks", "external_id", &tag).await.is_empty());
}

#[tokio::test]
async fn the_retention_route_needs_the_bearer_secret() {
    let app = spawn_app().await;
    let response = app.get_cron(RETENTION, None).await;
    assert_eq!(response.status(), 401);
    let response = app.get_cron(RETENTION, Some("Bearer wrong")).await;
    assert_eq!(response.status(), 401);
}
