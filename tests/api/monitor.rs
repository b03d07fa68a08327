//! `/api/cron/monitor` on the real database: each threshold opens one alert per org and kind
//! (a second run opens no second), and resolves it once the figure is back under; the database
//! refuses a second open alert; while an org's AI latency alert is open, the fallback model is
//! tried first.

use serde_json::{json, Value};

use crate::cron::TURN;
use crate::helpers::admin::World;
use crate::helpers::lib::Caller;
use crate::helpers::reminders::contact;
use crate::helpers::*;

/// The org's alerts of `kind`.
async fn alerts(app: &TestApp, org: &TestOrg, kind: &str) -> Vec<Value> {
    org.rows(app.db(), "alerts", &[("kind", eq(kind))]).await
}

/// Two monitor runs leave exactly one alert of `kind`, open.
async fn opens_once(app: &TestApp, org: &TestOrg, kind: &str) {
    for _ in 0..2 {
        app.cron(MONITOR).await;
    }
    let found = alerts(app, org, kind).await;
    assert_eq!(found.len(), 1, "{kind}: {found:?}");
    assert_eq!(found[0]["status"], "open", "{kind}");
}

/// The next monitor run resolves the one alert of `kind`.
async fn resolves(app: &TestApp, org: &TestOrg, kind: &str) {
    let summary = app.cron(MONITOR).await;
    assert!(summary["resolved"].as_u64() >= Some(1), "{summary}");
    let found = alerts(app, org, kind).await;
    assert_eq!(found.len(), 1, "{kind}: {found:?}");
    assert_eq!(found[0]["status"], "resolved", "{kind}");
}

/// `count` rows of `table` for the org, each `row` with `n` (0..count) and the org id.
async fn insert_rows(
    app: &TestApp,
    org: &TestOrg,
    table: &str,
    count: usize,
    row: impl Fn(usize) -> Value,
) {
    let all: Vec<Value> = (0..count)
        .map(|n| {
            let mut value = row(n);
            value["org_id"] = json!(org.id);
            value
        })
        .collect();
    insert(app.db(), table, json!(all)).await;
}

#[tokio::test]
async fn the_error_rate_over_5_percent_opens_one_alert_until_it_is_back_under() {
    let _turn = TURN.lock().await;
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let who = &contact(app.db(), &org, 1).await;
    let message = |status: &'static str| {
        move |_| {
            json!({
                "conversation_id": who.conversation_id, "contact_id": who.id,
                "direction": "inbound", "type": "text", "body": "hi", "status": status,
            })
        }
    };
    insert_rows(&app, &org, "messages", 2, message("failed")).await;
    insert_rows(&app, &org, "messages", 19, message("processed")).await;
    opens_once(&app, &org, "error_rate").await; // 2 of 21: 9.5 %

    insert_rows(&app, &org, "messages", 20, message("processed")).await;
    resolves(&app, &org, "error_rate").await; // 2 of 41: 4.9 %
}

#[tokio::test]
async fn webhook_latency_is_recorded_and_over_4_s_opens_one_alert_until_it_is_back_under() {
    let _turn = TURN.lock().await;
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    app.processed(&wamid).await;
    let recorded = org.rows(app.db(), "webhooks", &[]).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let latency = recorded[0]["latency_ms"]
        .as_i64()
        .expect("latency_ms recorded");
    assert!((0..4000).contains(&latency), "{latency}");

    let delivery = |latency: u64| move |_| json!({"source": "whatsapp", "external_id": new_uuid(), "latency_ms": latency});
    insert_rows(&app, &org, "webhooks", 20, delivery(5000)).await;
    opens_once(&app, &org, "webhook_latency").await; // p95 5 s

    insert_rows(&app, &org, "webhooks", 400, delivery(100)).await;
    resolves(&app, &org, "webhook_latency").await; // p95 0.1 s
}

#[tokio::test]
async fn a_tool_failure_rate_over_10_percent_opens_one_alert_until_it_is_back_under() {
    let _turn = TURN.lock().await;
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let tool = |status: &'static str| move |_| json!({"tool": "log_expense", "status": status});
    insert_rows(&app, &org, "tool_executions", 3, tool("error")).await;
    insert_rows(&app, &org, "tool_executions", 17, tool("success")).await;
    opens_once(&app, &org, "tool_failure_rate").await; // 3 of 20: 15 %

    insert_rows(&app, &org, "tool_executions", 20, tool("success")).await;
    resolves(&app, &org, "tool_failure_rate").await; // 3 of 40: 7.5 %
}

#[tokio::test]
async fn the_ai_cost_over_the_orgs_budget_opens_one_alert_until_the_budget_covers_it() {
    let _turn = TURN.lock().await;
    let app = spawn_app().await;
    let db = app.db();
    let org = TestOrg::create(db).await;
    let refused = db
        .from("assistant_settings", Caller::Service)
        .eq("org_id", &org.id)
        .update(&json!({"monthly_cost_budget_usd": -1}))
        .execute()
        .await;
    assert!(refused.is_err(), "a negative budget is refused");
    org.update(
        db,
        "assistant_settings",
        json!({"monthly_cost_budget_usd": 1}),
    )
    .await;
    insert_rows(&app, &org, "ai_requests", 3, |_| {
        json!({"provider": "openai", "model": "gpt-6-luna", "status": "success", "cost_usd": 0.5})
    })
    .await;
    opens_once(&app, &org, "ai_cost").await; // $1.50 of $1

    org.update(
        db,
        "assistant_settings",
        json!({"monthly_cost_budget_usd": 2}),
    )
    .await;
    resolves(&app, &org, "ai_cost").await;
}

#[tokio::test]
async fn owners_and_admins_set_the_cost_budget_in_the_settings() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/settings?org_id={}", w.a.org.id);
    let (status, body) = w
        .admin_put(&path, &token, &json!({"monthly_cost_budget_usd": 250}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, read) = w.admin_get(&path, &token).await;
    assert_eq!(
        read["monthly_cost_budget_usd"].as_f64(),
        Some(250.0),
        "{read}"
    );
    for bad in [json!(-1), json!(1_000_001), json!("lots")] {
        let change = json!({"monthly_cost_budget_usd": bad});
        let (status, body) = w.admin_put(&path, &token, &change).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
}

#[tokio::test]
async fn the_database_refuses_a_second_open_alert_of_an_org_and_kind() {
    let _turn = TURN.lock().await;
    let app = spawn_app().await;
    let db = app.db();
    let org = TestOrg::create(db).await;
    let alert = |status: &str| json!({"org_id": org.id, "kind": "ai_cost", "message": "x", "status": status});
    insert(db, "alerts", alert("open")).await;
    let second = db
        .from("alerts", Caller::Service)
        .insert(&alert("open"))
        .execute()
        .await;
    assert!(second.is_err(), "a second open ai_cost alert");
    insert(db, "alerts", alert("resolved")).await;
    assert_eq!(alerts(&app, &org, "ai_cost").await.len(), 2);
    // Nor a second platform-wide one (org null).
    let platform = json!({"kind": "db_latency", "message": "x", "status": "open"});
    let first = db
        .from("alerts", Caller::Service)
        .insert(&platform)
        .execute()
        .await;
    let again = db
        .from("alerts", Caller::Service)
        .insert(&platform)
        .execute()
        .await;
    assert!(
        first.is_err() || again.is_err(),
        "two open platform-wide db_latency alerts"
    );
    psql(
        "delete from public.alerts where kind = 'db_latency' and org_id is null and message = 'x'",
    )
    .await;
}

#[tokio::test]
async fn a_slow_database_opens_one_platform_wide_alert_until_it_is_fast_again() {
    let _turn = TURN.lock().await;
    // Any round trip is over a threshold of 0 ms.
    let slow = spawn_app_with(|env| set(env, &[("ALERT_DB_LATENCY_MS", "0")])).await;
    let filters = [("kind", eq("db_latency")), ("org_id", "is.null".into())];
    let platform = || select(slow.db(), "alerts", &filters);
    let before = platform().await.len();
    for _ in 0..2 {
        let summary = slow.cron(MONITOR).await;
        assert!(summary["db_latency_ms"].as_f64() > Some(0.0), "{summary}");
    }
    let found = platform().await;
    assert_eq!(found.len(), before + 1, "{found:?}");
    assert_eq!(found.iter().filter(|a| a["status"] == "open").count(), 1);

    spawn_app().await.cron(MONITOR).await; // 200 ms: the local database is faster
    let found = platform().await;
    assert_eq!(found.iter().filter(|a| a["status"] == "open").count(), 0);
}

#[tokio::test]
async fn a_slow_ai_provider_is_tried_after_the_fallback_until_it_recovers() {
    let _turn = TURN.lock().await;
    let primary = Script::new(vec![openai_text("From the primary.", 20, 5, 0)]);
    let openai = fake_openai(&primary).await;
    let fallback = Script::new(vec![anthropic_text("From the fallback.", (20, 5, 0))]);
    let anthropic = fake_anthropic(&fallback).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[]).await;
    let request = |latency: u64| move |_| json!({"provider": "openai", "model": "gpt-6-luna", "status": "success", "latency_ms": latency});
    insert_rows(&app, &org, "ai_requests", 20, request(12_000)).await;
    opens_once(&app, &org, "ai_latency").await; // p95 12 s

    let say = |text: &'static str| {
        let (delivery, wamid) = text_delivery(&org, &new_wa_id(), text);
        let app = &app;
        async move {
            assert_eq!(app.post_webhook(&delivery).await.status(), 200);
            app.reply_to(&wamid).await.expect("a reply")["body"].clone()
        }
    };
    assert_eq!(say("hello there, slow one").await, "From the fallback.");
    assert!(
        primary.times().is_empty(),
        "the slow provider is not tried first"
    );

    insert_rows(&app, &org, "ai_requests", 400, request(300)).await;
    resolves(&app, &org, "ai_latency").await; // p95 0.3 s
    assert_eq!(say("hello again, quick one").await, "From the primary.");
    assert_eq!((primary.times().len(), fallback.times().len()), (1, 1));
}
