//! The admin API against the real stack: tokens signed here (HS256 with the stack's secret,
//! ES256 with the test-only key of `tests/fixtures/jwt/`, served by a wiremock JWKS), users
//! created in `auth.users` with psql (PostgREST does not expose it), and two orgs of each
//! test's own seeded through the service role.

mod cors;
mod flows;
mod jwt;
mod matrix;
mod openapi;
mod postgrest;

use std::collections::HashMap;

use assistant::supabase::{Caller, Postgrest};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{spawn_app_with, TestApp};
use crate::whatsapp::{insert, new_wa_id, TestOrg};

/// The `kid` of the test-only ES256 key.
pub const TEST_KID: &str = "test-only-es256";

/// The `kid` of the test-only RS256 key.
pub const RSA_KID: &str = "test-only-rs256";

/// The JWKS path of a Supabase project.
pub const JWKS_PATH: &str = "/auth/v1/.well-known/jwks.json";

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name);
    std::fs::read_to_string(path).expect("JWT fixture")
}

/// The public test key set, as `/auth/v1/.well-known/jwks.json` serves it.
pub fn test_jwks() -> Value {
    serde_json::from_str(&fixture("test-only-jwks.json")).expect("JWKS JSON")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a Supabase access token for `user`, valid for an hour.
pub fn claims(user: Uuid) -> Value {
    let issuer = std::env::var("SUPABASE_JWT_ISSUER").expect("SUPABASE_JWT_ISSUER");
    json!({
        "iss": issuer, "sub": user, "aud": "authenticated", "role": "authenticated",
        "email": format!("{user}@test.invalid"), "iat": now(), "exp": now() + 3600,
        "session_id": Uuid::new_v4(), "is_anonymous": false,
    })
}

/// `claims` signed HS256 with the stack's JWT secret.
pub fn hs256(claims: &Value) -> String {
    let secret = std::env::var("SUPABASE_JWT_SECRET").expect("SUPABASE_JWT_SECRET");
    hs256_with(claims, secret.as_bytes())
}

pub fn hs256_with(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign HS256")
}

/// `claims` signed ES256 with the test-only key, under `kid`.
pub fn es256(claims: &Value, kid: &str) -> String {
    let key = EncodingKey::from_ec_pem(fixture("test-only-es256-private.pem").as_bytes())
        .expect("test key");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key).expect("sign ES256")
}

/// `claims` signed RS256 with the test-only RSA key.
pub fn rs256(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(fixture("test-only-rs256-private.pem").as_bytes())
        .expect("test key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(RSA_KID.to_string());
    jsonwebtoken::encode(&header, claims, &key).expect("sign RS256")
}

/// A wiremock Supabase Auth serving the test key set.
pub async fn fake_jwks() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(test_jwks()))
        .mount(&server)
        .await;
    server
}

/// An app that verifies ES256 tokens with `jwks` (and HS256 with the stack's secret).
pub async fn admin_app(
    jwks: &MockServer,
    configure: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    let url = format!("{}{JWKS_PATH}", jwks.uri());
    spawn_app_with(|env| {
        env.insert("SUPABASE_JWKS_URL".into(), url);
        env.insert(
            "ADMIN_ALLOWED_ORIGINS".into(),
            "https://admin.example.com".into(),
        );
        configure(env);
    })
    .await
}

/// New users in `auth.users` (through psql: PostgREST does not expose the auth schema).
pub async fn create_users(count: usize) -> Vec<Uuid> {
    let users: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    let values: Vec<String> = users
        .iter()
        .map(|id| format!("('{id}', '{id}@test.invalid')"))
        .collect();
    let sql = format!(
        "insert into auth.users (id, email) values {}",
        values.join(", ")
    );
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let output = tokio::process::Command::new("psql")
        .args([
            url.as_str(),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &sql,
        ])
        .output()
        .await
        .expect("psql");
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    users
}

/// An org with a conversation, messages, dead letters, an alert, AI usage and rate-limit
/// counters, all seeded through the service role.
pub struct Seeded {
    pub org: TestOrg,
    pub contact: String,
    pub wa_id: String,
    pub conversation: String,
    pub inbound: String,
    pub dead_letters: [String; 2],
    pub alert: String,
}

impl Seeded {
    pub async fn create(db: &Postgrest) -> Self {
        let org = TestOrg::create(db).await;
        let number: Vec<Value> = db
            .from("whatsapp_numbers", Caller::Service)
            .select("id")
            .eq("phone_number_id", &org.phone_number_id)
            .fetch()
            .await
            .expect("number")
            .data;
        let number = number[0]["id"].as_str().expect("number id").to_string();
        let [contact, conversation, inbound, outbound, dead1, dead2, alert] =
            std::array::from_fn(|_| Uuid::new_v4().to_string());
        let org_id = &org.id;
        let now = chrono::Utc::now();
        let wa_id = new_wa_id();
        insert(
            db,
            "contacts",
            json!({"id": contact, "org_id": org_id, "wa_id": wa_id, "name": "Ana"}),
        )
        .await;
        insert(db, "conversations", json!({
            "id": conversation, "org_id": org_id, "contact_id": contact, "whatsapp_number_id": number,
            "last_inbound_at": now, "last_message_at": now,
        }))
        .await;
        insert(db, "messages", json!([
            {"id": inbound, "org_id": org_id, "conversation_id": conversation, "contact_id": contact,
             "direction": "inbound", "wa_message_id": format!("wamid.admin.{inbound}"), "type": "text",
             "body": "hello", "status": "failed", "attempts": 1},
            {"id": outbound, "org_id": org_id, "conversation_id": conversation, "contact_id": contact,
             "direction": "outbound", "wa_message_id": format!("wamid.admin.{outbound}"), "type": "text",
             "body": "hi!", "status": "sent", "attempts": 0},
        ]))
        .await;
        insert(db, "dead_letter_queue", json!([
            {"id": dead1, "org_id": org_id, "kind": "inbound_message", "ref": inbound,
             "payload": {"message_id": inbound}, "error": "Graph API answered 400 with error 131026"},
            {"id": dead2, "org_id": org_id, "kind": "outbound_message", "ref": outbound,
             "payload": {}, "error": "Graph API answered 400 with error 131026"},
        ]))
        .await;
        insert(
            db,
            "alerts",
            json!({"id": alert, "org_id": org_id, "kind": "processing_failures",
            "severity": "critical", "message": "WhatsApp messages keep failing"}),
        )
        .await;
        insert(
            db,
            "ai_requests",
            json!({"org_id": org_id, "contact_id": contact, "provider": "openai",
            "model": "gpt-4o-mini", "tokens_in": 1200, "tokens_out": 300, "cost_usd": 0.00036,
            "status": "success"}),
        )
        .await;
        insert(
            db,
            "rate_limits",
            json!({"key": format!("contact:{contact}"),
            "window_start": now, "count": 11, "org_id": org_id}),
        )
        .await;
        Self {
            org,
            contact,
            wa_id,
            conversation,
            inbound,
            dead_letters: [dead1, dead2],
            alert,
        }
    }
}

/// Two seeded orgs and their people: the owner, an admin and a viewer of org A, and an admin
/// of org B (also the owner of B, so that B is complete).
pub struct World {
    pub app: TestApp,
    /// The JWKS endpoint, running as long as the app.
    _jwks: MockServer,
    pub a: Seeded,
    pub b: Seeded,
    pub owner_a: Uuid,
    pub admin_a: Uuid,
    pub viewer_a: Uuid,
    pub admin_b: Uuid,
}

impl World {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(configure: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let jwks = fake_jwks().await;
        let app = admin_app(&jwks, configure).await;
        let db = app.state.db().expect("db");
        let (a, b) = tokio::join!(Seeded::create(db), Seeded::create(db));
        let users = create_users(4).await;
        let (owner_a, admin_a, viewer_a, admin_b) = (users[0], users[1], users[2], users[3]);
        insert(
            db,
            "org_members",
            json!([
                {"org_id": a.org.id, "user_id": owner_a, "role": "owner"},
                {"org_id": a.org.id, "user_id": admin_a, "role": "admin"},
                {"org_id": a.org.id, "user_id": viewer_a, "role": "viewer"},
                {"org_id": b.org.id, "user_id": admin_b, "role": "owner"},
            ]),
        )
        .await;
        Self {
            app,
            _jwks: jwks,
            a,
            b,
            owner_a,
            admin_a,
            viewer_a,
            admin_b,
        }
    }

    /// Calls the app with `token` (none when `None`) and returns the status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let response = self.send(method, path, token, body).await;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.app.client.request(method, self.app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }

    /// An HS256 token of `user`.
    pub fn token(&self, user: Uuid) -> String {
        hs256(&claims(user))
    }

    /// The service-role client, for checking what landed.
    pub fn db(&self) -> &Postgrest {
        self.app.state.db().expect("db")
    }

    /// The audit rows of org A for `action`.
    pub async fn audit(&self, action: &str) -> Vec<Value> {
        crate::whatsapp::select(
            self.db(),
            "audit_log_entries",
            &[
                ("org_id", format!("eq.{}", self.a.org.id)),
                ("action", format!("eq.{action}")),
            ],
        )
        .await
    }
}
