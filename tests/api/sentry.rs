//! Error tracking: with `SENTRY_DSN` set, an `error!` line and a panicking handler each reach a
//! fake Sentry as an envelope, scrubbed of message text, phone numbers and tokens; without it
//! nothing is sent. Each test's app binds its Sentry client to the test's own thread (the
//! app runs on the test's current-thread runtime), so parallel tests do not see its events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::lib::{serve, AppState, Route, Settings};
use crate::helpers::logs::logs;
use crate::helpers::{set, stack_env, unique};

const MESSAGE_BODY: &str = "remind me to pay the rent to my landlord";
const PHONE: &str = "+15550001111";
const TOKEN: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";

/// Logs an error carrying a message body (in its `body` field, as the code logs message texts:
/// free text is only pattern-masked), a phone number and a token, then answers 500.
const FAILING: Route = Route {
    source: "api/test/sentry-error.rs",
    handler: |request, _ctx| {
        Box::pin(async move {
            let marker = request.uri().query().unwrap_or_default().to_string();
            tracing::error!(
                marker = %marker,
                body = MESSAGE_BODY,
                phone = PHONE,
                "reply to {PHONE} failed: provider said invalid key {TOKEN}"
            );
            Ok(http::Response::builder()
                .status(500)
                .body(Bytes::from_static(b"{}"))
                .expect("response"))
        })
    },
};

/// Panics with a phone number and a token in the panic message.
const PANICKING: Route = Route {
    source: "api/test/sentry-panic.rs",
    handler: |_request, _ctx| {
        Box::pin(async move { panic!("sentry-panic-marker: cannot text {PHONE} with key {TOKEN}") })
    },
};

static ROUTES: [&Route; 2] = [&FAILING, &PANICKING];

/// A fake Sentry accepting envelopes for project 1, and its DSN.
async fn fake_sentry() -> (MockServer, String) {
    let sentry = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/1/envelope/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&sentry)
        .await;
    let address = sentry.address();
    let dsn = format!("http://public@127.0.0.1:{}/1", address.port());
    (sentry, dsn)
}

/// The test routes on a free port, with the stack's settings and `vars`.
async fn spawn(vars: &[(&str, &str)]) -> (String, Arc<AppState>) {
    logs(); // the test binary's one subscriber, whose Sentry layer is under test
    let mut env = stack_env();
    set(&mut env, vars);
    let settings = Settings::from_lookup(move |name| env.get(name).cloned());
    let state = Arc::new(AppState::new(settings).expect("app state"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let serving = state.clone();
    tokio::spawn(async move { serve(listener, &ROUTES, serving).await });
    (address, state)
}

/// The bodies of the envelopes received so far, waiting up to 10 s for one containing `marker`.
async fn envelopes_with(sentry: &MockServer, marker: &str) -> Vec<String> {
    for _ in 0..100 {
        let bodies: Vec<String> = sentry
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        if bodies.iter().any(|b| b.contains(marker)) {
            return bodies;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no envelope with {marker} reached the fake Sentry");
}

/// `id` with its digits turned into letters: a digit run in a marker would be masked as a phone.
fn letters_only(id: &str) -> String {
    id.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from(b'g' + d as u8),
            None => c,
        })
        .collect()
}

fn assert_scrubbed(envelopes: &[String]) {
    for envelope in envelopes {
        for secret in [
            MESSAGE_BODY,
            "landlord",
            PHONE,
            "15550001111",
            "5550001111",
            TOKEN,
        ] {
            assert!(
                !envelope.contains(secret),
                "{secret:?} reached Sentry: {envelope}"
            );
        }
    }
}

#[tokio::test]
async fn an_error_log_reaches_sentry_without_message_text_phone_or_token() {
    let (sentry, dsn) = fake_sentry().await;
    let (address, _state) = spawn(&[("SENTRY_DSN", &dsn)]).await;
    let marker = format!("sentry-error-{}", letters_only(&unique()));

    let response = reqwest::get(format!("{address}/api/test/sentry-error?{marker}"))
        .await
        .expect("request");
    assert_eq!(response.status(), 500);

    let envelopes = envelopes_with(&sentry, &marker).await;
    let event = envelopes.iter().find(|e| e.contains(&marker)).unwrap();
    assert!(event.contains("\"type\":\"event\""), "{event}");
    assert!(event.contains("\"logger\":\"api::sentry\""), "{event}");
    assert!(
        event.contains("reply to [phone] failed: provider said invalid key [redacted]"),
        "{event}"
    );
    assert!(event.contains("\"body\":\"[redacted]\""), "{event}");
    assert!(
        event.contains("\"route\":\"/api/test/sentry-error\""),
        "the request span's fields: {event}"
    );
    assert_scrubbed(&envelopes);
}

#[tokio::test]
async fn a_handler_panic_reaches_sentry_scrubbed() {
    let (sentry, dsn) = fake_sentry().await;
    let (address, _state) = spawn(&[("SENTRY_DSN", &dsn)]).await;

    let response = reqwest::get(format!("{address}/api/test/sentry-panic"))
        .await
        .expect("request");
    assert_eq!(response.status(), 500, "the host catches the panic");

    let envelopes = envelopes_with(&sentry, "sentry-panic-marker").await;
    let event = envelopes
        .iter()
        .find(|e| e.contains("sentry-panic-marker"))
        .unwrap();
    assert!(event.contains("\"type\":\"panic\""), "{event}");
    assert!(
        event.contains("cannot text [phone] with key [redacted]"),
        "{event}"
    );
    assert_scrubbed(&envelopes);
}

#[tokio::test]
async fn without_a_dsn_nothing_is_sent_and_health_says_not_configured() {
    let (sentry, dsn) = fake_sentry().await;
    let (address, state) = spawn(&[]).await;
    assert!(!state.errors.is_configured());
    let marker = format!("sentry-off-{}", unique());
    let response = reqwest::get(format!("{address}/api/test/sentry-error?{marker}"))
        .await
        .expect("request");
    assert_eq!(response.status(), 500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sentry.received_requests().await.unwrap().is_empty());

    let on = crate::helpers::spawn_app_with(|env| set(env, &[("SENTRY_DSN", &dsn)])).await;
    let off = crate::helpers::spawn_app().await;
    assert_eq!(on.get_health().await.1["sentry"], "configured");
    assert_eq!(off.get_health().await.1["sentry"], "not_configured");
}
