//! Supabase's current API keys and the conventional names of settings (issue 14, items 1 and 2).
//!
//! The local stack's bare PostgREST understands only JWTs, so the new keys (`sb_secret_…`,
//! `sb_publishable_…`) are checked against a fake Supabase API gateway (wiremock): the exact
//! headers each kind of key is sent with, and `/api/health` reporting the database `up` when
//! only the new keys are given. The Stripe alias is checked end to end against the real stack,
//! and `scripts/env.sh` at the shell level.

use std::process::Command;

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::lib::Caller;
use crate::helpers::stripe::{body_of, customer_created, signed};
use crate::helpers::{has_text, set, spawn_app_with, Env, TestApp};

const SECRET_KEY: &str = "sb_secret_test_0123456789abcdef";
const PUBLISHABLE_KEY: &str = "sb_publishable_test_0123456789abcdef";
/// A user's access token as the admin routes forward it (its content does not matter here).
const USER_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl";

/// A fake Supabase API gateway in front of the REST API: answers every call with 200.
async fn fake_gateway() -> MockServer {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/v1/rpc/db_ping"))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Null))
        .mount(&gateway)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/orgs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&gateway)
        .await;
    gateway
}

/// The app with `gateway` as its hosted Supabase project and only `keys` as its keys.
async fn app_behind(gateway: &MockServer, keys: &[(&str, &str)]) -> TestApp {
    let url = gateway.uri();
    spawn_app_with(|env: &mut Env| {
        for name in [
            "POSTGREST_URL",
            "SUPABASE_SERVICE_ROLE_KEY",
            "SUPABASE_ANON_KEY",
        ] {
            env.remove(name);
        }
        set(env, &[("SUPABASE_URL", &url)]);
        set(env, keys);
    })
    .await
}

/// `(apikey, authorization)` of every request the gateway received.
async fn sent_headers(gateway: &MockServer) -> Vec<(Option<String>, Option<String>)> {
    let header = |request: &Request, name: &str| {
        request
            .headers
            .get(name)
            .map(|value| value.to_str().expect("ascii").to_string())
    };
    gateway
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .map(|request| (header(request, "apikey"), header(request, "authorization")))
        .collect()
}

fn some(value: &str) -> Option<String> {
    Some(value.to_string())
}

// =============================================================================================
// Supabase keys: the exact headers, per kind of key
// =============================================================================================

#[tokio::test]
async fn with_only_the_new_keys_health_reports_the_database_up() {
    let gateway = fake_gateway().await;
    let app = app_behind(
        &gateway,
        &[
            ("SUPABASE_SECRET_KEY", SECRET_KEY),
            ("SUPABASE_PUBLISHABLE_KEY", PUBLISHABLE_KEY),
        ],
    )
    .await;
    let (_, body) = app.get_health().await;
    assert_eq!(body["services"]["database"]["status"], "up", "{body}");
    assert_eq!(body["configuration"]["status"], "ok", "{body}");
    // A secret key is not a JWT: it goes only in `apikey`, never in Authorization.
    assert_eq!(sent_headers(&gateway).await, vec![(some(SECRET_KEY), None)]);
}

#[tokio::test]
async fn a_user_call_sends_the_publishable_key_and_the_users_token() {
    let gateway = fake_gateway().await;
    let app = app_behind(
        &gateway,
        &[
            ("SUPABASE_SECRET_KEY", SECRET_KEY),
            ("SUPABASE_PUBLISHABLE_KEY", PUBLISHABLE_KEY),
        ],
    )
    .await;
    app.db()
        .from("orgs", Caller::User(USER_TOKEN))
        .fetch::<Value>()
        .await
        .expect("orgs");
    assert_eq!(
        sent_headers(&gateway).await,
        vec![(some(PUBLISHABLE_KEY), Some(format!("Bearer {USER_TOKEN}")))]
    );
}

#[tokio::test]
async fn a_legacy_service_role_jwt_is_sent_as_apikey_and_bearer() {
    let gateway = fake_gateway().await;
    let legacy = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2ln";
    let anon = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln";
    let app = app_behind(
        &gateway,
        &[
            ("SUPABASE_SERVICE_ROLE_KEY", legacy),
            ("SUPABASE_ANON_KEY", anon),
        ],
    )
    .await;
    let (_, body) = app.get_health().await;
    assert_eq!(body["services"]["database"]["status"], "up", "{body}");
    app.db()
        .from("orgs", Caller::User(USER_TOKEN))
        .fetch::<Value>()
        .await
        .expect("orgs");
    assert_eq!(
        sent_headers(&gateway).await,
        vec![
            (some(legacy), Some(format!("Bearer {legacy}"))),
            (some(anon), Some(format!("Bearer {USER_TOKEN}"))),
        ]
    );
}

#[tokio::test]
async fn the_same_key_under_both_names_is_fine() {
    let gateway = fake_gateway().await;
    let app = app_behind(
        &gateway,
        &[
            ("SUPABASE_SECRET_KEY", SECRET_KEY),
            ("SUPABASE_SERVICE_ROLE_KEY", SECRET_KEY),
        ],
    )
    .await;
    let (_, body) = app.get_health().await;
    assert_eq!(body["services"]["database"]["status"], "up", "{body}");
    assert_eq!(body["configuration"]["status"], "ok", "{body}");
}

#[tokio::test]
async fn a_legacy_and_a_new_key_that_differ_are_an_error_naming_both() {
    let gateway = fake_gateway().await;
    let app = app_behind(
        &gateway,
        &[
            ("SUPABASE_SECRET_KEY", SECRET_KEY),
            ("SUPABASE_SERVICE_ROLE_KEY", "eyJ.some.other-key"),
        ],
    )
    .await;
    let (status, body) = app.get_health().await;
    assert_eq!(status, 503);
    assert_eq!(body["services"]["database"]["status"], "down");
    assert_eq!(body["configuration"]["status"], "warnings");
    let ignored: Vec<&str> = body["configuration"]["ignored"]
        .as_array()
        .expect("ignored")
        .iter()
        .map(|entry| entry["variable"].as_str().expect("name"))
        .collect();
    assert_eq!(
        ignored,
        ["SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"]
    );
    assert!(
        !body.to_string().contains(SECRET_KEY),
        "no value in the report"
    );
    let error = app.state.db().err().expect("not configured").to_string();
    assert!(
        error.contains("SUPABASE_SECRET_KEY and SUPABASE_SERVICE_ROLE_KEY"),
        "{error}"
    );
    assert!(
        sent_headers(&gateway).await.is_empty(),
        "neither key was used"
    );
}

// =============================================================================================
// STRIPE_WEBHOOK_SECRET, the conventional name
// =============================================================================================

async fn stripe_app(vars: &[(&str, &str)]) -> TestApp {
    spawn_app_with(|env| {
        env.remove("STRIPE_WEBHOOK_SECRETS");
        set(env, vars);
    })
    .await
}

#[tokio::test]
async fn stripe_webhook_secret_alone_accepts_an_event_signed_with_it() {
    let app = stripe_app(&[("STRIPE_WEBHOOK_SECRET", "whsec_conventional_name")]).await;
    let body = body_of(&customer_created());
    let (status, answer) = app
        .post_billing(&body, Some(&signed("whsec_conventional_name", &body)))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = app
        .post_billing(&body, Some(&signed("whsec_someone_else", &body)))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn stripe_webhook_secret_takes_a_list_for_rotation() {
    let app = stripe_app(&[("STRIPE_WEBHOOK_SECRET", "whsec_old_one, whsec_new_one")]).await;
    for secret in ["whsec_old_one", "whsec_new_one"] {
        let body = body_of(&customer_created());
        let (status, answer) = app.post_billing(&body, Some(&signed(secret, &body))).await;
        assert_eq!(status, 200, "{secret}: {answer}");
    }
}

#[tokio::test]
async fn both_stripe_names_with_different_values_are_refused_and_reported() {
    let app = stripe_app(&[
        ("STRIPE_WEBHOOK_SECRET", "whsec_user_set"),
        ("STRIPE_WEBHOOK_SECRETS", "whsec_local"),
    ])
    .await;
    let body = body_of(&customer_created());
    let (status, answer) = app
        .post_billing(&body, Some(&signed("whsec_user_set", &body)))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "not_configured");
    assert!(has_text(
        &answer["error"]["message"],
        "STRIPE_WEBHOOK_SECRET and STRIPE_WEBHOOK_SECRETS"
    ));
    let (_, health) = app.get_health().await;
    assert_eq!(health["configuration"]["status"], "warnings");
    assert!(!health.to_string().contains("whsec_"), "{health}");
}

#[tokio::test]
async fn without_either_stripe_name_the_error_names_both() {
    let app = stripe_app(&[]).await;
    let body = body_of(&customer_created());
    let (status, answer) = app
        .post_billing(&body, Some(&signed("whsec_x", &body)))
        .await;
    assert_eq!(status, 503);
    assert!(has_text(
        &answer["error"]["message"],
        "STRIPE_WEBHOOK_SECRET (or STRIPE_WEBHOOK_SECRETS)"
    ));
}

// =============================================================================================
// scripts/dev's precedence: a local default never shadows a variable the user set
// =============================================================================================

/// The variables `scripts/env.sh` leaves, printed after `load_dotenv` and `load_local_defaults`
/// (what `scripts/dev` runs) with `vars` set in the environment.
fn after_local_defaults(vars: &[(&str, &str)], print: &[&str]) -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!(
        ". scripts/env.sh; load_dotenv; load_local_defaults; {}",
        print
            .iter()
            .map(|name| format!("echo \"{name}=${{{name}:-}}\""))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut command = Command::new("bash");
    command.current_dir(root).arg("-c").arg(script);
    for name in [
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_WEBHOOK_SECRETS",
        "SUPABASE_SECRET_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_PUBLISHABLE_KEY",
        "SUPABASE_ANON_KEY",
    ] {
        command.env_remove(name);
    }
    command.env("STACK_NAME", "test");
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().expect("bash");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn scripts_dev_defaults_never_shadow_a_user_set_alias() {
    let lines = after_local_defaults(
        &[
            ("STRIPE_WEBHOOK_SECRET", "whsec_user"),
            ("SUPABASE_SECRET_KEY", SECRET_KEY),
            ("SUPABASE_PUBLISHABLE_KEY", PUBLISHABLE_KEY),
        ],
        &[
            "STRIPE_WEBHOOK_SECRET",
            "STRIPE_WEBHOOK_SECRETS",
            "SUPABASE_SECRET_KEY",
            "SUPABASE_SERVICE_ROLE_KEY",
            "SUPABASE_ANON_KEY",
        ],
    );
    assert_eq!(
        lines,
        [
            "STRIPE_WEBHOOK_SECRET=whsec_user",
            "STRIPE_WEBHOOK_SECRETS=",
            &format!("SUPABASE_SECRET_KEY={SECRET_KEY}"),
            "SUPABASE_SERVICE_ROLE_KEY=",
            "SUPABASE_ANON_KEY=",
        ]
    );
    // Nothing set: the local defaults apply.
    let lines = after_local_defaults(&[], &["STRIPE_WEBHOOK_SECRETS"]);
    assert_eq!(lines, ["STRIPE_WEBHOOK_SECRETS=whsec_local"]);
}
