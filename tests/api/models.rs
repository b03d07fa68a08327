//! The model lifecycle: OpenAI's `GET /v1/models` `shutdown_date` (faked) read by the
//! retry-failed cron and the health check; a model near its shutdown raises one platform alert
//! and shows in `/api/health`; a model past it is skipped for the fallback.

use chrono::{Duration as Days, Utc};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::lib::Caller;
use crate::helpers::*;

/// Mounts `GET /v1/models` on `server`: `models` as `(id, shutdown_date)`.
async fn list_models(server: &MockServer, models: &[(&str, Option<String>)]) {
    let data: Vec<Value> = models
        .iter()
        .map(|(id, date)| {
            json!({"id": id, "object": "model", "created": 1758585600, "owned_by": "system",
                   "shutdown_date": date})
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data})),
        )
        .mount(server)
        .await;
}

async fn model_alerts(app: &TestApp, model: &str) -> Vec<Value> {
    select(
        app.db(),
        "alerts",
        &[
            ("org_id", "is.null".into()),
            ("kind", "in.(model_retiring,model_retired)".into()),
            ("message", format!("like.Model {model} *")),
        ],
    )
    .await
}

async fn delete_model_alerts(app: &TestApp, model: &str) {
    app.db()
        .from("alerts", Caller::Service)
        .filter("org_id", "is", "null")
        .filter("kind", "in", "(model_retiring,model_retired)")
        .param("message", &format!("like.Model {model} *"))
        .delete()
        .execute()
        .await
        .expect("alerts deleted");
}

#[tokio::test]
async fn a_default_model_near_its_shutdown_date_raises_one_alert_and_shows_in_health() {
    let _turn = crate::cron::TURN.lock().await;
    let openai = fake_openai(&Script::new(vec![openai_text("unused", 1, 1, 0)])).await;
    let soon = (Utc::now() + Days::days(10)).date_naive().to_string();
    list_models(
        &openai,
        &[("gpt-6-luna", Some(soon.clone())), ("gpt-6.1-sol", None)],
    )
    .await;
    let (app, _org) = app_with_ai(Some(&openai), None, &[]).await;
    delete_model_alerts(&app, "gpt-6-luna").await;

    // The cron reads the model list itself (nothing read it before) and raises the alert ...
    app.cron("/api/cron/retry-failed").await;
    let alerts = model_alerts(&app, "gpt-6-luna").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "model_retiring");
    assert_eq!(alerts[0]["severity"], "warning");
    assert_eq!(alerts[0]["status"], "open");
    let text = alerts[0]["message"].as_str().unwrap_or_default();
    assert!(text.contains(&soon) && text.contains("10 days"), "{text}");
    // ... once: the next run finds it open.
    app.cron("/api/cron/retry-failed").await;
    assert_eq!(model_alerts(&app, "gpt-6-luna").await.len(), 1, "not twice");

    let (status, body) = app.get_health().await;
    assert_eq!(status, 200, "{body}");
    let notices = body["models"].as_array().expect("a models section");
    assert!(
        notices
            .contains(&json!({"model": "gpt-6-luna", "status": "retiring", "shutdown_date": soon})),
        "{body}"
    );
    assert!(
        !notices.iter().any(|n| n["model"] == "gpt-6.1-sol"),
        "no date, no notice"
    );
    delete_model_alerts(&app, "gpt-6-luna").await;
}

#[tokio::test]
async fn without_dates_nothing_is_raised_and_health_lists_no_model() {
    let openai = fake_openai(&Script::new(vec![openai_text("unused", 1, 1, 0)])).await;
    list_models(&openai, &[("gpt-6-luna", None)]).await;
    let (app, _org) = app_with_ai(Some(&openai), None, &[]).await;
    let (status, body) = app.get_health().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["models"], json!([]), "{body}");
}

#[tokio::test]
async fn a_model_past_its_shutdown_date_is_skipped_and_the_fallback_answers() {
    let openai_script = Script::new(vec![openai_text("from openai", 10, 5, 0)]);
    let openai = fake_openai(&openai_script).await;
    let yesterday = (Utc::now() - Days::days(1)).date_naive().to_string();
    list_models(&openai, &[("gpt-4o-mini", Some(yesterday.clone()))]).await;
    let anthropic_script = Script::new(vec![anthropic_message(
        json!([{"type": "text", "text": "Hello from the fallback"}]),
        "end_turn",
        (40, 8, 0),
    )]);
    let anthropic = fake_anthropic(&anthropic_script).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[]).await;
    // The org chose a model the plan offers, which OpenAI has since shut down.
    org.update(
        app.db(),
        "assistant_settings",
        json!({"model": "gpt-4o-mini"}),
    )
    .await;
    let (status, body) = app.get_health().await;
    assert_eq!(status, 200, "{body}");

    let (delivery, wamid) = text_delivery(&org, &new_wa_id(), "what should I cook tonight?");
    assert_eq!(app.post_webhook(&delivery).await.status(), 200);
    let reply = app.reply_to(&wamid).await.expect("a reply");
    assert_eq!(reply["body"], "Hello from the fallback", "{reply}");

    assert!(
        openai_script.times().is_empty(),
        "the retired model is not asked"
    );
    let requests = wait_for_rows(&app, "ai_requests", &org, 1).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["provider"], "anthropic");
    assert_eq!(requests[0]["model"], "claude-haiku-5-5");
    assert_eq!(requests[0]["status"], "success");
    let sent = bodies(&anthropic).await;
    assert_eq!(sent[0]["model"], "claude-haiku-5-5");
}

/// The platform alerts about Graph API `version`.
async fn graph_alerts(app: &TestApp, version: &str) -> Vec<Value> {
    select(
        app.db(),
        "alerts",
        &[
            ("org_id", "is.null".into()),
            (
                "kind",
                "in.(graph_version_retiring,graph_version_retired)".into(),
            ),
            ("message", format!("like.Graph API {version} *")),
        ],
    )
    .await
}

async fn delete_graph_alerts(app: &TestApp, version: &str) {
    app.db()
        .from("alerts", Caller::Service)
        .filter("org_id", "is", "null")
        .param("message", &format!("like.Graph API {version} *"))
        .delete()
        .execute()
        .await
        .expect("alerts deleted");
}

#[tokio::test]
async fn an_expired_graph_version_raises_one_alert_and_the_default_version_none() {
    let _turn = crate::cron::TURN.lock().await;
    let app = spawn_app_with(|env| set(env, &[("GRAPH_API_VERSION", "v20.0")])).await;
    delete_graph_alerts(&app, "v20.0").await;
    app.cron("/api/cron/retry-failed").await;
    let alerts = graph_alerts(&app, "v20.0").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "graph_version_retired");
    assert_eq!(alerts[0]["severity"], "critical");
    let text = alerts[0]["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("2026-09-24") && text.contains(GRAPH),
        "the date and the newest version: {text}"
    );
    app.cron("/api/cron/retry-failed").await;
    assert_eq!(graph_alerts(&app, "v20.0").await.len(), 1, "not twice");
    delete_graph_alerts(&app, "v20.0").await;

    // The default is the newest version, whose end Meta has not set.
    assert_eq!(GRAPH, "v27.0");
    let app = spawn_app().await;
    app.cron("/api/cron/retry-failed").await;
    assert_eq!(graph_alerts(&app, GRAPH).await, Vec::<Value>::new());
}
