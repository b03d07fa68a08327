//! `spawn_app()`: the dev server's router on a free port, with the test stack's settings, and
//! one method per endpoint the tests call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use wiremock::MockServer;

use super::db::select;
use super::db::TestOrg;
use super::eq;
use super::fixtures::fixture;
use super::lib::{AppState, Postgrest, Settings};
use super::new_wa_id;
use super::whatsapp::{personalize, signature, text_delivery};

/// The environment an app reads its settings from.
pub type Env = HashMap<String, String>;

/// A running instance of every route, and a client to call it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
}

/// The WhatsApp secrets every test app is configured with.
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The bearer secret of the cron routes in every test app.
pub const CRON_SECRET: &str = "test-cron-secret";
/// The Graph API access token of apps that send through a fake Graph API.
pub const GRAPH_TOKEN: &str = "EAAtesttoken000000000000";
/// A PostgREST nobody listens on.
pub const NO_DATABASE: &str = "http://127.0.0.1:9";

pub const WEBHOOK: &str = "/api/webhook";
pub const HEALTH: &str = "/api/health";
pub const CHECK_REMINDERS: &str = "/api/cron/check-reminders";
pub const RETRY_FAILED: &str = "/api/cron/retry-failed";
pub const RETENTION: &str = "/api/cron/retention";
pub const MONITOR: &str = "/api/cron/monitor";
pub const BILLING_WEBHOOK: &str = "/api/billing/webhook";

/// The seeded demo users (supabase/seed.sql).
pub const ACME_ORG: &str = "11111111-1111-1111-1111-111111111111";
pub const ACME_VIEWER: &str = "aaaaaaaa-0000-0000-0000-000000000002";

/// The test stack's variables (exported by `scripts/test`), as a lookup map.
pub fn stack_env() -> Env {
    let mut env = HashMap::new();
    for name in [
        "POSTGREST_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_ANON_KEY",
        "SUPABASE_JWT_SECRET",
        "DATABASE_URL",
        "SUPABASE_JWT_ISSUER",
    ] {
        let value = std::env::var(name)
            .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"));
        env.insert(name.to_string(), value);
    }
    env.insert("APP_ENV".into(), "test".into());
    env.insert("HEALTH_CACHE_MS".into(), "0".into());
    env.insert("WHATSAPP_APP_SECRET".into(), APP_SECRET.into());
    env.insert("WHATSAPP_VERIFY_TOKEN".into(), VERIFY_TOKEN.into());
    env.insert("GRAPH_RETRY_BASE_MS".into(), "10".into());
    // Turns begin at once (the coalescing tests set their own wait).
    env.insert("COALESCE_MS".into(), "0".into());
    env.insert("CRON_SECRET".into(), CRON_SECRET.into());
    env
}

/// One variable of the test stack (exported by `scripts/test`).
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Sets the variables in `vars` (later settings on top of earlier ones).
pub fn set(env: &mut Env, vars: &[(&str, &str)]) {
    for (name, value) in vars {
        env.insert(name.to_string(), value.to_string());
    }
}

/// Sends through `graph` with the test access token.
pub fn use_graph(env: &mut Env, graph: &MockServer) {
    set(
        env,
        &[
            ("GRAPH_API_BASE_URL", &graph.uri()),
            ("WHATSAPP_ACCESS_TOKEN", GRAPH_TOKEN),
        ],
    );
}

/// Starts the app with the stack's settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `configure` has changed the environment it reads.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Env)) -> TestApp {
    let mut env = stack_env();
    configure(&mut env);
    let settings = Settings::from_lookup(move |name| env.get(name).cloned());
    let state = Arc::new(AppState::new(settings).expect("app state"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let serving = state.clone();
    tokio::spawn(async move { super::lib::serve(listener, super::lib::ROUTES, serving).await });
    TestApp {
        address,
        client: reqwest::Client::new(),
        state,
    }
}

/// Starts an app sending through `graph` with the test access token, then `vars`.
pub async fn spawn_app_with_graph(graph: &MockServer, vars: &[(&str, &str)]) -> TestApp {
    spawn_app_with(|env| {
        use_graph(env, graph);
        set(env, vars);
    })
    .await
}

/// The status and JSON body (`null` when there is none) of a response.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The service-role client of the app, for arranging rows and checking what landed.
    pub fn db(&self) -> &Postgrest {
        self.state.db().expect("db")
    }

    /// Calls `path` with `method`, with a bearer `token` and a JSON `body` when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }

    /// A request to `path` with `method` and these headers, no body.
    pub async fn request_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(Method::GET, path, None, None).await
    }

    // --- /api/health -----------------------------------------------------------------------

    /// `GET /api/health`: the status and the JSON report.
    pub async fn get_health(&self) -> (u16, Value) {
        let response = self.get(HEALTH).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    // --- /api/webhook ----------------------------------------------------------------------

    /// POSTs `body` to the webhook, signed with the app secret.
    pub async fn post_webhook(&self, body: &[u8]) -> reqwest::Response {
        self.client
            .post(self.url(WEBHOOK))
            .header("x-hub-signature-256", signature(body))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .expect("webhook request")
    }

    /// POSTs `payload` to the webhook, signed with the app secret.
    pub async fn post_webhook_json(&self, payload: &Value) -> reqwest::Response {
        self.post_webhook(&serde_json::to_vec(payload).expect("json"))
            .await
    }

    /// Delivers a text message `text` for `org` from `wa_id`; its wamid.
    pub async fn post_text(&self, org: &TestOrg, wa_id: &str, text: &str) -> String {
        let (body, wamid) = text_delivery(org, wa_id, text);
        self.post_webhook(&body).await;
        wamid
    }

    /// Delivers the documented payload `file` from a fresh contact of `org`; its first wamid.
    pub async fn post_webhook_fixture(&self, file: &str, org: &TestOrg) -> String {
        let (payload, wamids) = personalize(fixture(file), org, &new_wa_id(), 0);
        self.post_webhook_json(&payload).await;
        wamids[0].clone()
    }

    /// POSTs `body` to the webhook with `signature` as its signature header (none when `None`).
    pub async fn post_webhook_signed(
        &self,
        body: impl Into<reqwest::Body>,
        signature: Option<String>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(WEBHOOK)).body(body);
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.expect("post")
    }

    /// Meta's subscription handshake: `GET /api/webhook?hub.mode=…`.
    pub async fn get_webhook_handshake(&self, mode: &str, token: &str) -> reqwest::Response {
        self.get(&format!(
            "{WEBHOOK}?hub.mode={mode}&hub.verify_token={token}&hub.challenge=1158201444"
        ))
        .await
    }

    /// The stored inbound message, once background processing has finished with it.
    pub async fn processed(&self, wamid: &str) -> Value {
        for _ in 0..200 {
            let rows = select(self.db(), "messages", &[("wa_message_id", eq(wamid))]).await;
            if let Some(row) = rows.into_iter().next() {
                if ["processed", "failed"].contains(&row["status"].as_str().unwrap_or_default()) {
                    return row;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("message {wamid} was not processed in time");
    }

    /// The reply recorded for the inbound message `wamid`, if any.
    pub async fn reply_to(&self, wamid: &str) -> Option<Value> {
        let inbound = self.processed(wamid).await;
        let id = inbound["id"].as_str().expect("id").to_string();
        select(self.db(), "messages", &[("reply_to", eq(id))])
            .await
            .into_iter()
            .next()
    }

    /// Processes the stored inbound message `id` again, as the retry cron does.
    pub async fn reprocess(&self, id: &str) {
        let id: uuid::Uuid = id.parse().expect("uuid");
        super::lib::process_message(&self.state, id, std::time::Instant::now()).await;
    }

    // --- /api/cron/* -----------------------------------------------------------------------

    /// Runs a cron route with the right secret; its JSON summary (after asserting a 200).
    pub async fn cron(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(CRON_SECRET)
            .send()
            .await
            .expect("cron request");
        let status = response.status();
        let body: Value = response.json().await.expect("json summary");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `GET` a cron route with this `authorization` header (none when `None`).
    pub async fn get_cron(&self, path: &str, authorization: Option<&str>) -> reqwest::Response {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        self.request_with_headers(Method::GET, path, &headers).await
    }

    // --- /api/billing/webhook --------------------------------------------------------------

    /// POSTs `body` to the billing webhook with `signature` as its `Stripe-Signature` header.
    pub async fn post_billing(&self, body: &[u8], signature: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.url(BILLING_WEBHOOK))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        status_and_json(request.send().await.expect("post")).await
    }

    // --- /api/admin/* ----------------------------------------------------------------------

    /// Calls an admin endpoint with `token` (none when `None`): the status and JSON body.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        status_and_json(self.request(method, path, token, body).await).await
    }

    pub async fn admin_get(&self, path: &str, token: &str) -> (u16, Value) {
        self.admin(Method::GET, path, Some(token), None).await
    }

    pub async fn admin_post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.admin(Method::POST, path, Some(token), Some(body))
            .await
    }

    /// A POST without a body (replays, acknowledgements).
    pub async fn admin_post_empty(&self, path: &str, token: &str) -> (u16, Value) {
        self.admin(Method::POST, path, Some(token), None).await
    }

    pub async fn admin_put(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.admin(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn admin_patch(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.admin(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn admin_delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.admin(Method::DELETE, path, Some(token), None).await
    }

    /// `GET /api/admin/me` with `token`.
    pub async fn get_admin_me(&self, token: &str) -> (u16, Value) {
        self.admin_get("/api/admin/me", token).await
    }
}
