//! `spawn_app()`: the dev server's router on a free port, with the test stack's settings.

use std::collections::HashMap;
use std::sync::Arc;

use assistant::configuration::Settings;
use assistant::startup::AppState;

/// A running instance of every route, and a client to call it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }
}

/// The test stack's variables (exported by `scripts/test`), as a lookup map.
pub fn stack_env() -> HashMap<String, String> {
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
    env.insert("CRON_SECRET".into(), CRON_SECRET.into());
    env
}

/// Starts the app with the stack's settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `configure` has changed the environment it reads.
pub async fn spawn_app_with(configure: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let mut env = stack_env();
    configure(&mut env);
    let settings = Settings::from_lookup(move |name| env.get(name).cloned());
    let state = Arc::new(AppState::new(settings).expect("app state"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let serving = state.clone();
    tokio::spawn(async move {
        assistant::host::local::serve(listener, assistant::routes::ROUTES, serving).await
    });
    TestApp {
        address,
        client: reqwest::Client::new(),
        state,
    }
}

/// The WhatsApp secrets every test app is configured with.
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The bearer secret of the cron routes in every test app.
pub const CRON_SECRET: &str = "test-cron-secret";

/// The seeded demo users (supabase/seed.sql).
pub const ACME_ORG: &str = "11111111-1111-1111-1111-111111111111";
pub const ACME_VIEWER: &str = "aaaaaaaa-0000-0000-0000-000000000002";

/// An HS256 access token for `user` signed with the stack's JWT secret, as Supabase Auth
/// issues them (signed here independently of the code under test).
pub fn user_token(user: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::Mac;

    let secret = std::env::var("SUPABASE_JWT_SECRET").expect("SUPABASE_JWT_SECRET");
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let claims = serde_json::json!({
        "sub": user, "role": "authenticated", "aud": "authenticated", "exp": exp,
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}
