//! The redaction layer: no phone number, message text, email, token or key in a log line,
//! whether an event or one of its spans holds it; every line carries its spans' fields, the
//! request's included.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::helpers::lib::{handle, Background, Route, HEALTH_ROUTE};
use crate::helpers::logs::{captured, lines_with, logs};
use crate::helpers::{spawn_app, unique};

#[test]
fn sensitive_fields_and_patterns_never_reach_a_log_line() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let m = "marker-redaction";
    let output = captured(m, || {
        tracing::info!(
            m,
            body = "remind me to call mom at 9",
            phone = "15550001111",
            "inbound message"
        );
        tracing::info!(
            m,
            text = "I owe 12 dollars",
            wa_id = "34600000000",
            "text field"
        );
        tracing::warn!(
            m,
            "send to +1 (555) 010-0001 failed for someone@example.com"
        );
        tracing::error!(m, header = %format!("Bearer {jwt}"), "rejected");
        tracing::error!(
            m,
            detail = "key sk-proj-abcdefghijklmnop and whsec_abc123 leaked",
            "keys"
        );
    });
    for secret in [
        "call mom",
        "15550001111",
        "I owe 12",
        "34600000000",
        "555) 010-0001",
        "someone@example.com",
        jwt,
        "sk-proj-abcdefghijklmnop",
        "whsec_abc123",
    ] {
        assert!(!output.contains(secret), "{secret:?} leaked into: {output}");
    }
    assert!(output.contains("[redacted]"));
    assert!(output.contains("[phone]"));
    assert!(
        output.contains("inbound message"),
        "the message itself stays: {output}"
    );
    assert_eq!(output.lines().count(), 5, "one JSON line per event");
    for line in output.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each line stays JSON");
    }
}

#[test]
fn dates_ids_and_small_numbers_stay_readable() {
    let m = "marker-readable";
    let output = captured(m, || {
        tracing::info!(
            m,
            org = "11111111-1111-1111-1111-111111111111",
            day = "2026-11-23",
            attempts = 3,
            "retry"
        );
    });
    assert!(output.contains("2026-11-23"), "{output}");
    assert!(
        output.contains("11111111-1111-1111-1111-111111111111"),
        "{output}"
    );
    assert!(output.contains("\"attempts\":3"), "{output}");
}

#[tokio::test]
async fn each_request_is_one_line_with_its_id_route_status_and_latency() {
    logs();
    let app = spawn_app().await;
    let request_id = format!("fra1::iad1::{}", unique());
    let request = http::Request::builder()
        .uri("/api/health")
        .header("x-vercel-id", &request_id)
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let response = handle(
        &HEALTH_ROUTE,
        app.state.clone(),
        request,
        Background::spawned(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], request_id.as_str());

    let lines: Vec<serde_json::Value> = lines_with(&request_id)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .filter(|l: &serde_json::Value| l["message"] == "request")
        .collect();
    assert_eq!(lines.len(), 1, "one request line");
    let line = &lines[0];
    assert_eq!(line["request_id"], request_id.as_str());
    assert_eq!(line["route"], "/api/health");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert!(line["latency_ms"].is_f64());
}

#[test]
fn span_fields_are_on_every_line_inside_the_span_and_redacted_like_event_fields() {
    let m = "marker-span-fields";
    let output = captured(m, || {
        let request = tracing::info_span!(
            "request",
            request_id = m,
            route = "/outer",
            phone = "15550001111"
        );
        let _request = request.enter();
        let turn = tracing::info_span!(
            "turn",
            route = "/inner",
            text = "remind me to call mom",
            conversation_id = "c-1"
        );
        let _turn = turn.enter();
        tracing::info!(conversation_id = "own", attempts = 3, "inside both spans");
    });
    let lines: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{output}");
    let line = &lines[0];
    assert_eq!(line["request_id"], m, "an outer span's field: {line}");
    assert_eq!(line["route"], "/inner", "the inner span's wins: {line}");
    assert_eq!(
        line["conversation_id"], "own",
        "the event's own wins: {line}"
    );
    assert_eq!(line["attempts"], 3);
    assert_eq!(line["phone"], "[redacted]", "{line}");
    assert_eq!(line["text"], "[redacted]", "{line}");
    assert!(line.get("spans").is_none(), "flattened: {line}");
    for secret in ["15550001111", "call mom"] {
        assert!(!output.contains(secret), "{secret:?} leaked into: {output}");
    }
}

/// Hands off background work that logs one line.
const HANDS_OFF: Route = Route {
    source: "api/test/background.rs",
    handler: |_request, ctx| {
        Box::pin(async move {
            ctx.background
                .run(async { tracing::info!("background work") });
            Ok(http::Response::new(Bytes::new()))
        })
    },
};

/// The line `background work` of the request `request_id`, waiting up to 5 s for it.
async fn background_line(request_id: &str) -> Value {
    for _ in 0..50 {
        let found = lines_with(request_id)
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .find(|l| l["message"] == "background work");
        if let Some(line) = found {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no background line carries {request_id}");
}

#[tokio::test]
async fn background_work_logs_in_the_span_of_the_request_that_handed_it_off() {
    logs();
    let app = spawn_app().await;
    // Spawned (the local host), and collected then awaited after the handler (AWS Lambda).
    for background in [Background::spawned(), Background::deferred()] {
        let request_id = format!("bg-{}", unique());
        let request = http::Request::builder()
            .uri("/api/test/background")
            .header("x-vercel-id", &request_id)
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("request");
        let response = handle(&HANDS_OFF, app.state.clone(), request, background.clone()).await;
        assert_eq!(response.status(), 200);
        background.drain().await;
        let line = background_line(&request_id).await;
        assert_eq!(line["request_id"], request_id.as_str());
        assert_eq!(line["route"], "/api/test/background");
    }
}
