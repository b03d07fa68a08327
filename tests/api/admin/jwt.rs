//! Access-token verification in detail: the JWKS cache and its bounded refresh, algorithm
//! confusion, and claims that are not a signed-in user's.

use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::admin::admin_app;
use crate::helpers::jwt::{
    claims, es256, hs256, hs256_with, relabelled, rs256, sign, test_jwks, TEST_KID,
};
use crate::helpers::{
    create_users, fake_jwks, fake_jwks_answering, has_text, mount_jwks, stack_var, TestApp,
};

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    app.get_admin_me(token).await
}

async fn fetches(jwks: &MockServer) -> usize {
    jwks.received_requests().await.unwrap_or_default().len()
}

#[tokio::test]
async fn es256_keys_are_fetched_once_and_cached() {
    let jwks = fake_jwks().await;
    let app = admin_app(&jwks, |_| {}).await;
    let user = create_users(1).await[0];
    for _ in 0..3 {
        let (status, body) = me(&app, &es256(&claims(user), TEST_KID)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["id"], user.to_string());
    }
    assert_eq!(fetches(&jwks).await, 1);
}

#[tokio::test]
async fn rs256_tokens_verify_with_the_rsa_key_of_the_set() {
    let jwks = fake_jwks().await;
    let app = admin_app(&jwks, |_| {}).await;
    let user = create_users(1).await[0];
    let (status, body) = me(&app, &rs256(&claims(user))).await;
    assert_eq!(status, 200, "{body}");
    let as_es256 = relabelled(
        &rs256(&claims(user)),
        r#"{"alg":"ES256","kid":"test-only-rs256"}"#,
    );
    assert_eq!(
        me(&app, &as_es256).await.0,
        401,
        "an RSA key never verifies ES256"
    );
}

#[tokio::test]
async fn unknown_kids_refetch_the_keys_at_most_once_per_interval() {
    let jwks = fake_jwks().await;
    let app = admin_app(&jwks, |_| {}).await;
    let user = create_users(1).await[0];
    for kid in ["forged-1", "forged-2", "forged-3"] {
        let (status, body) = me(&app, &es256(&claims(user), kid)).await;
        assert_eq!(status, 401, "{kid}: {body}");
    }
    assert_eq!(
        fetches(&jwks).await,
        1,
        "one fetch for a burst of unknown kids"
    );
    let (status, _) = me(&app, &es256(&claims(user), TEST_KID)).await;
    assert_eq!(status, 200);
    assert_eq!(fetches(&jwks).await, 1, "known keys need no fetch");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_first_use() {
    let jwks =
        fake_jwks_answering(ResponseTemplate::new(200).set_body_json(json!({"keys": []}))).await;
    let app = admin_app(&jwks, |env| {
        env.insert("JWKS_MIN_REFRESH_SECONDS".into(), "0".into());
    })
    .await;
    let user = create_users(1).await[0];
    let token = es256(&claims(user), TEST_KID);
    assert_eq!(me(&app, &token).await.0, 401, "not published yet");

    jwks.reset().await;
    mount_jwks(&jwks, ResponseTemplate::new(200).set_body_json(test_jwks())).await;
    assert_eq!(
        me(&app, &token).await.0,
        200,
        "published: refetched on the unknown kid"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_503_and_hs256_keeps_working() {
    let jwks = fake_jwks_answering(ResponseTemplate::new(500)).await;
    let app = admin_app(&jwks, |_| {}).await;
    let user = create_users(1).await[0];
    let (status, body) = me(&app, &es256(&claims(user), TEST_KID)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(me(&app, &hs256(&claims(user))).await.0, 200);
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let jwks = fake_jwks().await;
    let app = admin_app(&jwks, |_| {}).await;
    let user = create_users(1).await[0];
    let claims = claims(user);
    // HS256 keyed with the public key's coordinates or its JWK text.
    let key = &test_jwks()["keys"][0];
    for public in [
        key["x"].as_str().unwrap_or_default().to_string(),
        key.to_string(),
    ] {
        let key = EncodingKey::from_secret(public.as_bytes());
        let token = sign(Algorithm::HS256, Some(TEST_KID), &claims, &key);
        assert_eq!(me(&app, &token).await.0, 401);
    }
    // An ES256 header on an HS256 signature, and other algorithms.
    let es256_header = format!(r#"{{"alg":"ES256","kid":"{TEST_KID}"}}"#);
    let relabelled = relabelled(&hs256(&claims), &es256_header);
    assert_eq!(me(&app, &relabelled).await.0, 401);
    let secret = EncodingKey::from_secret(stack_var("SUPABASE_JWT_SECRET").as_bytes());
    let hs384 = sign(Algorithm::HS384, None, &claims, &secret);
    assert_eq!(me(&app, &hs384).await.0, 401, "only HS256, ES256, RS256");
    assert_eq!(fetches(&jwks).await, 1);
}

#[tokio::test]
async fn only_a_signed_in_users_current_token_from_this_project_passes() {
    let jwks = fake_jwks().await;
    let app = admin_app(&jwks, |_| {}).await;
    let user = create_users(1).await[0];
    let now = chrono::Utc::now().timestamp();
    let with = |change: Value| {
        let mut token = claims(user);
        for (key, value) in change.as_object().expect("object") {
            match value {
                Value::Null => token.as_object_mut().expect("object").remove(key),
                value => token
                    .as_object_mut()
                    .expect("object")
                    .insert(key.clone(), value.clone()),
            };
        }
        hs256(&token)
    };
    assert_eq!(
        me(&app, &with(json!({"exp": now - 10}))).await.0,
        200,
        "within the leeway"
    );
    for (what, token) in [
        ("expired", with(json!({"exp": now - 120}))),
        ("not valid yet", with(json!({"nbf": now + 3600}))),
        ("no exp", with(json!({"exp": null}))),
        ("no aud", with(json!({"aud": null}))),
        (
            "another issuer",
            with(json!({"iss": "https://other.supabase.co/auth/v1"})),
        ),
        ("anon role", with(json!({"role": "anon"}))),
        ("service role", with(json!({"role": "service_role"}))),
        ("sub not a user id", with(json!({"sub": "admin"}))),
        (
            "signed with another secret",
            hs256_with(&claims(user), b"0123456789abcdef0123456789abcdef"),
        ),
        ("the anon key", stack_var("SUPABASE_ANON_KEY")),
        (
            "the service-role key",
            stack_var("SUPABASE_SERVICE_ROLE_KEY"),
        ),
        ("not a JWT", "definitely-not-a-jwt".to_string()),
    ] {
        let (status, body) = me(&app, &token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "invalid_token", "{what}");
    }
    let basic_auth = format!("Basic {}", hs256(&claims(user)));
    let basic = app
        .request_with_headers(
            Method::GET,
            "/api/admin/me",
            &[("authorization", &basic_auth)],
        )
        .await;
    assert_eq!(basic.status(), 401);
    assert_eq!(
        basic.headers()["www-authenticate"],
        r#"Bearer realm="admin""#
    );
}

#[tokio::test]
async fn without_keys_or_an_issuer_the_admin_api_is_not_configured() {
    let jwks = fake_jwks().await;
    let no_keys = admin_app(&jwks, |env| {
        env.remove("SUPABASE_JWT_SECRET");
        env.remove("SUPABASE_JWKS_URL");
    })
    .await;
    let user = create_users(1).await[0];
    let (status, body) = me(&no_keys, &hs256(&claims(user))).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "not_configured");
    let no_issuer = admin_app(&jwks, |env| {
        env.remove("SUPABASE_JWT_ISSUER");
    })
    .await;
    let (status, body) = me(&no_issuer, &hs256(&claims(user))).await;
    assert_eq!(status, 503);
    assert!(has_text(&body["error"]["message"], "SUPABASE_JWT_ISSUER"));
}
