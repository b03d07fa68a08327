//! The admin API's world: two orgs of each test's own, seeded through the service role, and
//! their staff (users created in `auth.users` with psql), behind an app that verifies ES256
//! tokens with a fake JWKS (and HS256 with the stack's secret).

use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::MockServer;

use super::app::{set, spawn_app_with, Env, TestApp};
use super::db::{create_users, insert, select, TestOrg};
use super::fakes::{fake_jwks, JWKS_PATH};
use super::jwt::{claims, hs256};
use super::lib::Postgrest;
use super::{eq, new_wa_id};

/// The origin the admin frontend is served from.
pub const ADMIN_ORIGIN: &str = "https://admin.example.com";

/// An app that verifies ES256 tokens with `jwks` (and HS256 with the stack's secret).
pub async fn admin_app(jwks: &MockServer, configure: impl FnOnce(&mut Env)) -> TestApp {
    let url = format!("{}{JWKS_PATH}", jwks.uri());
    spawn_app_with(|env| {
        set(
            env,
            &[
                ("SUPABASE_JWKS_URL", &url),
                ("ADMIN_ALLOWED_ORIGINS", ADMIN_ORIGIN),
            ],
        );
        configure(env);
    })
    .await
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
        let number = org.number_id(db).await;
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
/// of org B (also the owner of B, so that B is complete). Derefs to its [`TestApp`].
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

impl std::ops::Deref for World {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl World {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A world whose app sends through the fake Graph API `graph`.
    pub async fn with_graph(graph: &MockServer) -> Self {
        Self::with(|env| super::app::use_graph(env, graph)).await
    }

    pub async fn with(configure: impl FnOnce(&mut Env)) -> Self {
        let jwks = fake_jwks().await;
        let app = admin_app(&jwks, configure).await;
        let db = app.db();
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

    /// An HS256 token of `user`.
    pub fn token(&self, user: Uuid) -> String {
        hs256(&claims(user))
    }

    /// The audit rows of org A for `action`.
    pub async fn audit(&self, action: &str) -> Vec<Value> {
        select(
            self.db(),
            "audit_log_entries",
            &[("org_id", eq(&self.a.org.id)), ("action", eq(action))],
        )
        .await
    }

    /// Every audit row of org A.
    pub async fn audit_all(&self) -> Vec<Value> {
        select(
            self.db(),
            "audit_log_entries",
            &[("org_id", eq(&self.a.org.id))],
        )
        .await
    }
}
