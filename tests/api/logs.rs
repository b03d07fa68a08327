//! Log fields operators query: `webhook`/`event`, `security`/`action`, the request's
//! `request_id` (on the processing it starts too), and the slow-request warning; none of these
//! lines carries a message text or a phone number.

use serde_json::Value;

use crate::helpers::lib::{Settings, HEALTH_ROUTE};
use crate::helpers::logs::{lines_with, logs};
use crate::helpers::*;

/// The JSON lines containing `marker`.
fn json_lines(marker: &str) -> Vec<Value> {
    lines_with(marker)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn has(line: &Value, fields: &[(&str, Value)]) -> bool {
    fields.iter().all(|(k, v)| &line[*k] == v)
}

fn clean(lines: &[Value], secrets: &[&str]) {
    for line in lines {
        let text = line.to_string();
        for s in secrets.iter().chain(&["[phone]", "[redacted]"]) {
            assert!(!text.contains(s), "{s:?} in {text}");
        }
    }
}

async fn post_signed(app: &TestApp, body: &[u8], sig: &str, request_id: &str) -> u16 {
    app.client
        .post(app.url(WEBHOOK))
        .header("x-hub-signature-256", sig)
        .header("x-vercel-id", request_id)
        .body(body.to_vec())
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_bad_signature_is_a_failed_webhook_and_an_invalid_signature_event() {
    logs();
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let (wa_id, text) = (new_wa_id(), format!("secret text {}", unique()));
    let (body, _) = text_delivery(&org, &wa_id, &text);
    let request_id = format!("logs-bad-{}", unique());
    let status = post_signed(&app, &body, "sha256=00", &request_id).await;
    assert_eq!(status, 401);
    let lines = json_lines(&request_id);
    let t = Value::Bool(true);
    assert!(
        lines
            .iter()
            .any(|l| has(l, &[("webhook", t.clone()), ("event", "received".into())])),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| has(
            l,
            &[
                ("security", t.clone()),
                ("action", "invalid_signature".into()),
                ("webhook", t.clone()),
                ("event", "failed".into())
            ]
        )),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l["event"] == "verified"));
    clean(&lines, &[&wa_id, &text]);
}

#[tokio::test]
async fn a_good_delivery_is_received_verified_and_processed() {
    logs();
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let (wa_id, text) = (new_wa_id(), format!("hello {}", unique()));
    let (body, wamid) = text_delivery(&org, &wa_id, &text);
    let request_id = format!("logs-good-{}", unique());
    assert_eq!(
        post_signed(&app, &body, &signature(&body), &request_id).await,
        200
    );
    let id = app.processed(&wamid).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let lines = json_lines(&request_id);
    for event in ["received", "verified"] {
        assert!(
            lines
                .iter()
                .any(|l| l["webhook"] == true && l["event"] == event),
            "{event}: {lines:?}"
        );
    }
    let processed = json_lines(&id);
    assert!(
        processed
            .iter()
            .any(|l| l["webhook"] == true && l["event"] == "processed"),
        "{processed:?}"
    );
    // Processing the delivery started runs in its request's span.
    assert!(
        processed
            .iter()
            .any(|l| l["event"] == "processed" && l["request_id"] == request_id.as_str()),
        "{processed:?}"
    );
    clean(&lines, &[&wa_id, &text]);
    clean(&processed, &[&wa_id, &text]);
}

#[tokio::test]
async fn a_cron_call_without_the_secret_is_an_unauthorized_security_event() {
    logs();
    let app = spawn_app().await;
    let wrong = format!("wrong-{}", unique());
    let response = app
        .get_cron(CHECK_REMINDERS, Some(&format!("Bearer {wrong}")))
        .await;
    assert_eq!(response.status(), 401);
    let lines = json_lines("cron_unauthorized");
    assert!(!lines.is_empty());
    for line in &lines {
        assert_eq!(line["security"], true, "{line}");
        assert_eq!(line["action"], "unauthorized", "{line}");
    }
    assert!(lines_with(&wrong).is_empty(), "the secret leaked");
}

async fn health(app: &TestApp, request_id: &str) {
    let response = app
        .client
        .get(app.url(HEALTH))
        .header("x-vercel-id", request_id)
        .send()
        .await
        .expect("health");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_slow_request_logs_a_warning_with_its_route_and_latency() {
    logs();
    let app = spawn_app_with(|env| set(env, &[("SLOW_REQUEST_MS", "0")])).await;
    let request_id = format!("logs-slow-{}", unique());
    health(&app, &request_id).await;
    let lines = json_lines(&request_id);
    let slow: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "Slow request detected")
        .collect();
    assert_eq!(slow.len(), 1, "{lines:?}");
    assert_eq!(slow[0]["route"], HEALTH_ROUTE.path().as_str());
    assert_eq!(slow[0]["level"], "WARN");
    assert!(slow[0]["latency_ms"].is_f64());
    clean(&lines, &[]);
}

#[tokio::test]
async fn a_fast_request_with_the_default_threshold_logs_no_warning() {
    logs();
    let defaults = Settings::from_lookup(|_| None);
    assert_eq!(
        defaults.slow_request,
        std::time::Duration::from_millis(1000)
    );
    let app = spawn_app().await;
    let request_id = format!("logs-fast-{}", unique());
    health(&app, &request_id).await;
    let lines = json_lines(&request_id);
    assert!(lines.iter().any(|l| l["message"] == "request"), "{lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l["message"] == "Slow request detected"),
        "{lines:?}"
    );
}
