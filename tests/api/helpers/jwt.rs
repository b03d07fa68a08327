//! The one token signer of the tests: Supabase access tokens signed here, independently of the
//! code under test (HS256 with the stack's secret, ES256 and RS256 with the test-only keys of
//! `tests/fixtures/jwt/`, which [`super::fakes::fake_jwks`] publishes), and unsigned ones.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use uuid::Uuid;

use super::fixtures::{fixture_json, fixture_text};
use super::stack_var;

/// The `kid` of the test-only ES256 key.
pub const TEST_KID: &str = "test-only-es256";

/// The `kid` of the test-only RS256 key.
pub const RSA_KID: &str = "test-only-rs256";

/// The public test key set, as `/auth/v1/.well-known/jwks.json` serves it.
pub fn test_jwks() -> Value {
    fixture_json("jwt/test-only-jwks.json")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a Supabase access token for `user`, valid for an hour.
pub fn claims(user: Uuid) -> Value {
    let issuer = stack_var("SUPABASE_JWT_ISSUER");
    json!({
        "iss": issuer, "sub": user, "aud": "authenticated", "role": "authenticated",
        "email": format!("{user}@test.invalid"), "iat": now(), "exp": now() + 3600,
        "session_id": Uuid::new_v4(), "is_anonymous": false,
    })
}

/// `claims` signed with `algorithm` and `key`, with `kid` in the header when given.
pub fn sign(algorithm: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap_or_else(|e| panic!("sign {algorithm:?}: {e}"))
}

/// `claims` signed HS256 with the stack's JWT secret.
pub fn hs256(claims: &Value) -> String {
    hs256_with(claims, stack_var("SUPABASE_JWT_SECRET").as_bytes())
}

/// `claims` signed HS256 with `secret`.
pub fn hs256_with(claims: &Value, secret: &[u8]) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// `claims` signed ES256 with the test-only key, under `kid`.
pub fn es256(claims: &Value, kid: &str) -> String {
    let pem = fixture_text("jwt/test-only-es256-private.pem");
    let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("test key");
    sign(Algorithm::ES256, Some(kid), claims, &key)
}

/// `claims` signed RS256 with the test-only RSA key.
pub fn rs256(claims: &Value) -> String {
    let pem = fixture_text("jwt/test-only-rs256-private.pem");
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key");
    sign(Algorithm::RS256, Some(RSA_KID), claims, &key)
}

/// A token with `alg: none` and no signature.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// `token` with its header replaced by `header` (the signature kept): algorithm confusion.
pub fn relabelled(token: &str, header: &str) -> String {
    let (_, rest) = token.split_once('.').expect("jwt");
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
}

/// An HS256 access token for `user` as Supabase Auth issued them before issuers and sessions
/// (`sub`, `role`, `aud`, `exp`), for PostgREST's row-level security.
pub fn user_token(user: &str) -> String {
    hs256(&json!({
        "sub": user, "role": "authenticated", "aud": "authenticated", "exp": now() + 3600,
    }))
}
