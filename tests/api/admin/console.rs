//! What the admin console needs from the service: its public configuration (never a secret
//! key), and the local-only sign-in path, which only the dev server's console serves.

use std::sync::Arc;

use serde_json::Value;

use crate::helpers::app::{set, spawn_app_with, status_and_json};
use crate::helpers::lib::{serve, serve_with, Console, LOCAL_SESSION_PATH, ROUTES};

const CONFIG: &str = "/api/admin/config.json";

#[tokio::test]
async fn the_config_names_the_project_and_its_public_key_only() {
    let app = spawn_app_with(|env| set(env, &[("SUPABASE_URL", "https://abc.supabase.co/")])).await;
    let (status, body) = status_and_json(app.get(CONFIG).await).await;
    assert_eq!(status, 200, "public, no token");
    assert_eq!(body["supabase_url"], "https://abc.supabase.co");
    let anon = std::env::var("SUPABASE_ANON_KEY").expect("the stack's anon key");
    assert_eq!(body["supabase_key"], anon.as_str());

    // The service-role key put where the public key belongs is never handed out.
    let service = std::env::var("SUPABASE_SERVICE_ROLE_KEY").expect("the stack's service key");
    let app = spawn_app_with(|env| set(env, &[("SUPABASE_ANON_KEY", &service)])).await;
    let (status, body) = status_and_json(app.get(CONFIG).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["supabase_key"], Value::Null);
    assert_eq!(
        body["supabase_url"],
        Value::Null,
        "no SUPABASE_URL: the local stack"
    );
}

/// Serves `routes` (and `console`) on a free port; its base URL.
async fn start(console: Option<Console>) -> String {
    let app = spawn_app_with(|_| {}).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let state = Arc::clone(&app.state);
    tokio::spawn(async move {
        match console {
            Some(console) => serve_with(listener, ROUTES, Some(console), state).await,
            None => serve(listener, ROUTES, state).await,
        }
    });
    address
}

#[tokio::test]
async fn only_the_dev_servers_console_serves_the_local_session_path() {
    let public = concat!(env!("CARGO_MANIFEST_DIR"), "/public");
    let dev = start(Some(Console::new(public))).await;
    let routes_alone = start(None).await;
    let get = |url: String| async move { reqwest::get(url).await.expect("request") };

    let session = get(format!("{dev}{LOCAL_SESSION_PATH}")).await;
    assert_eq!(session.status(), 200);
    let body: Value = session.json().await.expect("json");
    assert_eq!(body["local"], true);
    let page = get(format!("{dev}/admin")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("text").contains("/admin/app.js"));

    // The security headers vercel.json gives /admin on Vercel, sent by the dev server too.
    let vercel: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vercel.json"))
            .expect("vercel.json"),
    )
    .expect("json");
    let wanted = vercel["headers"]
        .as_array()
        .and_then(|all| all.iter().find(|h| h["source"] == "/admin"))
        .expect("vercel.json's headers for /admin");
    for path in ["/admin", "/admin/app.js", "/admin/style.css"] {
        let response = get(format!("{dev}{path}")).await;
        for header in wanted["headers"].as_array().expect("list") {
            let key = header["key"].as_str().expect("key");
            assert_eq!(
                response.headers().get(key).map(|v| v.to_str().ok()),
                Some(header["value"].as_str()),
                "{path} {key}"
            );
        }
    }

    // The routes as every deployed binary hosts them: no console, no local session.
    for path in [LOCAL_SESSION_PATH, "/admin"] {
        let response = get(format!("{routes_alone}{path}")).await;
        assert_eq!(response.status(), 404, "{path}");
    }
}
