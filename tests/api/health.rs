//! `/api/health`: database critical, optional services degrade, cached, HEAD works.

use reqwest::Method;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    has_text, set, spawn_app, spawn_app_with, status_and_json, GRAPH, HEALTH, NO_DATABASE,
};

#[tokio::test]
async fn healthy_when_the_database_answers_and_nothing_optional_is_configured() {
    let app = spawn_app().await;
    let (status, body) = app.get_health().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["environment"], "test");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(has_text(&body["timestamp"], "T"));
    let services = &body["services"];
    assert_eq!(services["database"]["status"], "up");
    assert!(services["database"]["latency_ms"].is_u64());
    assert_eq!(services["ai_primary"]["status"], "not_configured");
    assert_eq!(services["ai_primary"]["provider"], "openai");
    assert_eq!(services["ai_fallback"]["provider"], "anthropic");
    assert_eq!(services["whatsapp"]["status"], "not_configured");
}

#[tokio::test]
async fn the_optional_services_say_whether_they_are_configured_and_never_their_values() {
    let optional = [
        "sentry",
        "openai",
        "anthropic",
        "google_calendar",
        "stripe",
        "stripe_api",
    ];
    let app = spawn_app_with(|env| {
        for name in [
            "SENTRY_DSN",
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GOOGLE_CLIENT_ID",
            "STRIPE_WEBHOOK_SECRET",
            "STRIPE_WEBHOOK_SECRETS",
            "STRIPE_SECRET_KEY",
        ] {
            env.remove(name);
        }
    })
    .await;
    let (status, body) = app.get_health().await;
    assert_eq!(status, 200, "{body}");
    for name in optional {
        assert_eq!(
            body["services"][name],
            serde_json::json!({"status": "not_configured"}),
            "{name}: {body}"
        );
    }
    assert_eq!(body["sentry"], "not_configured", "today's field stays");
    assert_eq!(body["status"], "healthy", "not configured is not a fault");

    let sentry = MockServer::start().await;
    let dsn = format!("http://publickey@{}/42", sentry.address());
    let app = spawn_app_with(|env| {
        set(
            env,
            &[
                ("SENTRY_DSN", &dsn),
                ("OPENAI_API_KEY", "sk-health-secret-openai"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
                ("ANTHROPIC_API_KEY", "sk-ant-health-secret"),
                ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
                ("GOOGLE_CLIENT_ID", "health-client-id"),
                ("GOOGLE_CLIENT_SECRET", "health-client-secret"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_health_secret"),
                ("STRIPE_SECRET_KEY", "sk_test_health_secret"),
            ],
        )
    })
    .await;
    let (_, body) = app.get_health().await;
    for name in optional {
        assert_eq!(
            body["services"][name],
            serde_json::json!({"status": "configured"}),
            "{name}: {body}"
        );
    }
    assert_eq!(body["sentry"], "configured");
    let text = body.to_string();
    for secret in ["secret", "publickey", "health-client-id", "127.0.0.1:9"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn unhealthy_503_when_postgrest_is_unreachable() {
    let app = spawn_app_with(|env| set(env, &[("POSTGREST_URL", NO_DATABASE)])).await;
    let (status, body) = app.get_health().await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["services"]["database"]["status"], "down");
}

#[tokio::test]
async fn health_still_answers_when_a_required_variable_is_missing() {
    let app = spawn_app_with(|env| {
        env.remove("SUPABASE_SERVICE_ROLE_KEY");
    })
    .await;
    let (status, body) = app.get_health().await;
    assert_eq!(status, 503);
    assert_eq!(body["services"]["database"]["status"], "down");
}

#[tokio::test]
async fn a_configured_provider_that_fails_degrades_without_spending_tokens() {
    let openai = MockServer::start().await;
    let anthropic = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", "Bearer sk-test-openai"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "object": "list",
            "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1686935002, "owned_by": "openai"}]
        })))
        .expect(1)
        .mount(&openai)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("x-api-key", "sk-ant-test"))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(529).set_body_json(serde_json::json!({
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"}
        })))
        .expect(1)
        .mount(&anthropic)
        .await;
    let (openai_url, anthropic_url) = (format!("{}/v1", openai.uri()), anthropic.uri());
    let app = spawn_app_with(|env| {
        set(
            env,
            &[
                ("OPENAI_API_KEY", "sk-test-openai"),
                ("OPENAI_BASE_URL", &openai_url),
                ("ANTHROPIC_API_KEY", "sk-ant-test"),
                ("ANTHROPIC_BASE_URL", &anthropic_url),
            ],
        )
    })
    .await;

    let (status, body) = app.get_health().await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["services"]["ai_primary"]["status"], "up");
    assert_eq!(body["services"]["ai_fallback"]["status"], "down");
    // Only the free model listings were called: `expect(1)` on each GET, and no other request.
    for server in [&openai, &anthropic] {
        let received = server.received_requests().await.expect("recorded");
        assert!(received.iter().all(|r| r.method.as_str() == "GET"));
    }
}

#[tokio::test]
async fn a_burst_of_checks_within_the_cache_period_checks_once() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH}/me")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": "1234567890"})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let graph_url = graph.uri();
    let app = spawn_app_with(|env| {
        set(
            env,
            &[
                ("HEALTH_CACHE_MS", "60000"),
                ("WHATSAPP_ACCESS_TOKEN", "EAAtesttoken"),
                ("GRAPH_API_BASE_URL", &graph_url),
            ],
        )
    })
    .await;
    let burst = (0..10).map(|_| app.get_health());
    for (status, body) in futures_util::future::join_all(burst).await {
        assert_eq!(status, 200);
        assert_eq!(body["services"]["whatsapp"]["status"], "up");
    }
    // MockServer verifies `expect(1)` when dropped.
}

#[tokio::test]
async fn head_answers_without_a_body_and_other_methods_get_405() {
    let app = spawn_app().await;
    let head = app.request(Method::HEAD, HEALTH, None, None).await;
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.expect("body").is_empty());

    let (status, body) = status_and_json(app.request(Method::POST, HEALTH, None, None).await).await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let app = spawn_app_with(|env| set(env, &[("MAX_BODY_BYTES", "64")])).await;
    let response = app
        .client
        .post(app.url(HEALTH))
        .body(vec![b'x'; 65])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "payload_too_large");
}
