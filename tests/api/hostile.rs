//! Hostile input (issue 11): content PostgreSQL refuses never fails a delivery, media ids and
//! media URLs from outside never steer a request with the access token, and PostgREST calls
//! never follow a redirect with the service key.

use std::collections::HashMap;
use std::time::Duration;

use assistant::configuration::{DatabaseSettings, Secret, Settings};
use assistant::supabase::{Caller, Postgrest};
use assistant::whatsapp::graph::{GraphError, WhatsApp};
use serde_json::{json, Value};
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A delivery of two texts from one sender: `hostile` (its body) and a good one; the
/// contact's profile name is `name`. Returns the JSON text and both wamids.
fn two_texts(org: &TestOrg, wa_id: &str, hostile: &str, name: &str) -> (String, [String; 2]) {
    let mut payload = fixture("text.json");
    let value = &mut payload["entry"][0]["changes"][0]["value"];
    let good = value["messages"][0].clone();
    value["messages"] = json!([good.clone(), good]);
    value["messages"][0]["text"]["body"] = json!(hostile);
    value["messages"][1]["text"]["body"] = json!("a good message");
    value["contacts"][0]["profile"]["name"] = json!(name);
    let (payload, wamids) = personalize(payload, org, wa_id, 0);
    let text = serde_json::to_string(&payload).expect("json");
    (text, [wamids[0].clone(), wamids[1].clone()])
}

async fn stored(db: &Postgrest, wamid: &str) -> Value {
    select(db, "messages", &[("wa_message_id", format!("eq.{wamid}"))])
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{wamid} was not stored"))
}

async fn contact_name(db: &Postgrest, org: &TestOrg, wa_id: &str) -> Value {
    let filters = [
        ("org_id", format!("eq.{}", org.id)),
        ("wa_id", format!("eq.{wa_id}")),
    ];
    select(db, "contacts", &filters).await[0]["name"].clone()
}

#[tokio::test]
async fn a_nul_in_a_text_and_a_profile_name_never_fails_the_batch() {
    let app = spawn_app().await;
    let db = app.state.db().expect("db");
    let org = TestOrg::create(db).await;
    let wa_id = new_wa_id();
    let (body, [hostile, good]) = two_texts(&org, &wa_id, "call\u{0}me", "Ana\u{0}Nul");
    assert!(body.contains("\\u0000"), "the JSON carries NUL escapes");

    let response = app.post_webhook(body.as_bytes()).await;
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["new"], 2, "{answer}");

    let row = stored(db, &hostile).await;
    assert_eq!(row["body"], "call\u{FFFD}me");
    assert_eq!(row["payload"]["text"]["body"], "call\u{FFFD}me");
    assert_eq!(stored(db, &good).await["body"], "a good message");
    assert_eq!(contact_name(db, &org, &wa_id).await, "Ana\u{FFFD}Nul");
}

#[tokio::test]
async fn a_lone_surrogate_escape_never_fails_the_batch() {
    let app = spawn_app().await;
    let db = app.state.db().expect("db");
    let org = TestOrg::create(db).await;
    let wa_id = new_wa_id();
    let (body, [hostile, good]) = two_texts(&org, &wa_id, "half LONE_HIGH pair", "LONE_LOW Ana");
    // serde_json cannot write a lone surrogate: splice the escapes into the JSON text.
    let body = body
        .replace("LONE_HIGH", "\\ud800")
        .replace("LONE_LOW", "\\udfff");
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "plain serde_json refuses it"
    );

    let response = app.post_webhook(body.as_bytes()).await;
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["new"], 2, "{answer}");

    assert_eq!(stored(db, &hostile).await["body"], "half \u{FFFD} pair");
    assert_eq!(stored(db, &good).await["body"], "a good message");
    assert_eq!(contact_name(db, &org, &wa_id).await, "\u{FFFD} Ana");
}

#[tokio::test]
async fn postgrest_redirects_are_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&elsewhere)
        .await;
    let redirecting = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/orgs", elsewhere.uri()).as_str()),
        )
        .mount(&redirecting)
        .await;
    let db = Postgrest::new(&DatabaseSettings {
        rest_url: redirecting.uri(),
        service_role_key: Secret::new("service-role-key-that-must-stay-home"),
        anon_key: None,
        timeout: Duration::from_secs(5),
    });

    let answer = db
        .from("orgs", Caller::Service)
        .select("id")
        .fetch::<Vec<Value>>()
        .await;
    let error = answer.expect_err("a redirect is an error");
    assert!(error.to_string().contains("redirect"), "{error}");
    let write = db
        .rpc("whatsapp_ingest", Caller::Service)
        .args(&json!({}))
        .execute()
        .await;
    assert!(write.is_err());
    assert_eq!(
        redirecting
            .received_requests()
            .await
            .expect("recorded")
            .len(),
        2
    );
    assert!(
        elsewhere
            .received_requests()
            .await
            .expect("recorded")
            .is_empty(),
        "the redirect target saw a request (and the keys)"
    );
}

/// A Graph client whose base URL is `graph`, with a token.
fn whatsapp(graph: &MockServer) -> WhatsApp {
    let env: HashMap<&str, String> = HashMap::from([
        ("GRAPH_API_BASE_URL", graph.uri()),
        ("WHATSAPP_ACCESS_TOKEN", "EAAtesttoken000000000000".into()),
    ]);
    let settings = Settings::from_lookup(move |name| env.get(name).cloned());
    WhatsApp::new(
        reqwest::Client::new(),
        &settings.whatsapp,
        Duration::from_millis(10),
    )
}

/// `graph` answers the media lookup of `id` with `url`.
async fn media_url(graph: &MockServer, id: &str, url: String) {
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH}/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "url": url, "mime_type": "image/jpeg", "id": id,
        })))
        .mount(graph)
        .await;
}

#[tokio::test]
async fn media_urls_on_foreign_hosts_are_refused_without_a_request() {
    let foreign = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"stolen".to_vec(), "image/jpeg"))
        .mount(&foreign)
        .await;
    let graph = MockServer::start().await;
    media_url(&graph, "111", format!("{}/lookaside/111", foreign.uri())).await;
    media_url(
        &graph,
        "222",
        "https://lookaside.fbsbx.com.evil.example/x".into(),
    )
    .await;
    // On the Graph base's origin (allowed), but redirecting to a foreign host.
    media_url(&graph, "333", format!("{}/lookaside/333", graph.uri())).await;
    Mock::given(method("GET"))
        .and(path("/lookaside/333"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/x", foreign.uri()).as_str()),
        )
        .mount(&graph)
        .await;
    let whatsapp = whatsapp(&graph);

    for id in ["111", "222"] {
        let error = whatsapp.download_media(id).await.expect_err("refused");
        assert!(matches!(error, GraphError::Refused(_)), "{id}: {error}");
    }
    let error = whatsapp
        .download_media("333")
        .await
        .expect_err("not followed");
    assert!(
        matches!(error, GraphError::Api { status: 302, .. }),
        "{error}"
    );
    assert!(
        foreign
            .received_requests()
            .await
            .expect("recorded")
            .is_empty(),
        "the foreign host saw the access token"
    );

    // Ids that would steer the Graph URL never leave the process.
    let before = graph.received_requests().await.expect("recorded").len();
    for id in [
        "../me",
        "1/messages",
        "1?fields=access_token",
        "1#",
        "%2e%2e",
        "١٢٣",
    ] {
        let error = whatsapp.download_media(id).await.expect_err("refused");
        assert!(matches!(error, GraphError::Refused(_)), "{id}: {error}");
    }
    let after = graph.received_requests().await.expect("recorded").len();
    assert_eq!(before, after, "no request for a malformed media id");
}

#[tokio::test]
async fn an_out_of_range_reminder_is_refused_in_words_not_a_panic() {
    let app = spawn_app().await;
    let org = TestOrg::create(app.state.db().expect("db")).await;
    for (text, refusal) in [
        ("remind me in 999999999999999min to x", "doesn't exist"),
        (
            "recuérdame en 99999999999999999999 horas llamar",
            "no existe",
        ),
        ("remind me on 25/12/999999 to pay", "doesn't exist"),
    ] {
        let (body, wamid) = text_delivery(&org, &new_wa_id(), text);
        assert_eq!(app.post_webhook(&body).await.status(), 200, "{text}");
        assert_eq!(app.processed(&wamid).await["status"], "processed", "{text}");
        let reply = app.reply_to(&wamid).await.expect("a reply");
        let said = reply["body"].as_str().unwrap_or_default();
        assert!(said.contains(refusal), "{text}: {said}");
    }
}
