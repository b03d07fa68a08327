//! Test doubles for WhatsApp: Meta's documented payloads, signed deliveries, a fake Graph API,
//! and an org of each test's own on the real database.

use std::path::Path;
use std::time::Duration;

use assistant::supabase::{Caller, Postgrest};
use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{TestApp, APP_SECRET};

/// A documented webhook payload from `tests/fixtures/whatsapp/`.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/whatsapp")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An org with its own WhatsApp number, settings and (for tests that need it) a template.
pub struct TestOrg {
    pub id: String,
    pub phone_number_id: String,
}

impl TestOrg {
    pub async fn create(db: &Postgrest) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let phone_number_id = format!("9{}", &uuid::Uuid::new_v4().as_u128().to_string()[..14]);
        insert(db, "orgs", json!({"id": id, "name": "Test org"})).await;
        insert(db, "whatsapp_numbers", json!({
            "org_id": id, "phone_number_id": phone_number_id, "display_phone_number": "+1 555 000 0000",
        }))
        .await;
        insert(
            db,
            "assistant_settings",
            json!({
                "org_id": id, "reply_template": "assistant_reply", "template_language": "en_US",
            }),
        )
        .await;
        Self {
            id,
            phone_number_id,
        }
    }

    pub async fn update(&self, db: &Postgrest, table: &str, values: Value) {
        let column = if table == "orgs" { "id" } else { "org_id" };
        db.from(table, Caller::Service)
            .eq(column, &self.id)
            .update(&values)
            .execute()
            .await
            .expect("update");
    }
}

pub async fn insert(db: &Postgrest, table: &str, row: Value) {
    db.from(table, Caller::Service)
        .insert(&row)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("insert {table}: {e}"));
}

pub async fn select(db: &Postgrest, table: &str, filters: &[(&str, String)]) -> Vec<Value> {
    let mut query = db.from(table, Caller::Service).select("*");
    for (column, value) in filters {
        query = query.param(column, value);
    }
    query.fetch::<Vec<Value>>().await.expect("select").data
}

/// A fresh WhatsApp user id (tests never share a contact, so rate limits stay apart).
pub fn new_wa_id() -> String {
    format!("1{}", &uuid::Uuid::new_v4().as_u128().to_string()[..11])
}

/// Rewrites a documented payload for `org`: every message from `wa_id` with a fresh wamid,
/// sent `age_secs` ago; returns it with the wamids.
pub fn personalize(
    mut payload: Value,
    org: &TestOrg,
    wa_id: &str,
    age_secs: i64,
) -> (Value, Vec<String>) {
    let now = chrono::Utc::now().timestamp() - age_secs;
    let mut wamids = Vec::new();
    for entry in payload["entry"].as_array_mut().into_iter().flatten() {
        for change in entry["changes"].as_array_mut().into_iter().flatten() {
            let value = &mut change["value"];
            value["metadata"]["phone_number_id"] = json!(org.phone_number_id);
            for contact in value["contacts"].as_array_mut().into_iter().flatten() {
                contact["wa_id"] = json!(wa_id);
            }
            for message in value["messages"].as_array_mut().into_iter().flatten() {
                let wamid = format!("wamid.test.{}", unique());
                message["id"] = json!(wamid);
                message["from"] = json!(wa_id);
                message["timestamp"] = json!(now.to_string());
                wamids.push(wamid);
            }
        }
    }
    (payload, wamids)
}

/// A text message delivery for `org` from `wa_id`; returns the body and the wamid.
pub fn text_delivery(org: &TestOrg, wa_id: &str, text: &str) -> (Vec<u8>, String) {
    let mut payload = fixture("text.json");
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = json!(text);
    let (payload, wamids) = personalize(payload, org, wa_id, 0);
    (
        serde_json::to_vec(&payload).expect("json"),
        wamids[0].clone(),
    )
}

pub fn signature(body: &[u8]) -> String {
    assistant::whatsapp::signature::sign(APP_SECRET.as_bytes(), body)
}

impl TestApp {
    /// POSTs `body` to the webhook, signed with the app secret.
    pub async fn deliver(&self, body: &[u8]) -> reqwest::Response {
        self.client
            .post(self.url("/api/webhook"))
            .header("x-hub-signature-256", signature(body))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .expect("webhook request")
    }

    /// The stored inbound message, once background processing has finished with it.
    pub async fn processed(&self, wamid: &str) -> Value {
        let db = self.state.db().expect("db");
        for _ in 0..200 {
            let rows = select(db, "messages", &[("wa_message_id", format!("eq.{wamid}"))]).await;
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
        let db = self.state.db().expect("db");
        let id = inbound["id"].as_str().expect("id").to_string();
        select(db, "messages", &[("reply_to", format!("eq.{id}"))])
            .await
            .into_iter()
            .next()
    }
}

/// Meta's Graph API, faked: answers sends with fresh wamids and mark-as-read with success;
/// text sends fail with `text_error` when set (e.g. 131047), every send with `error` when set.
pub struct FakeGraph {
    pub text_error: Option<Value>,
    pub error: Option<(u16, Value)>,
}

impl FakeGraph {
    pub fn ok() -> Self {
        Self {
            text_error: None,
            error: None,
        }
    }

    /// Every send fails with `status` and the documented Graph error `key`.
    pub fn failing(status: u16, key: &str) -> Self {
        Self {
            text_error: None,
            error: Some((status, graph_error(key))),
        }
    }
}

impl Respond for FakeGraph {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        if body["status"] == "read" {
            return ResponseTemplate::new(200).set_body_json(json!({"success": true}));
        }
        if let Some((status, error)) = &self.error {
            return ResponseTemplate::new(*status).set_body_json(error);
        }
        if let (Some(error), "text") = (&self.text_error, body["type"].as_str().unwrap_or_default())
        {
            return ResponseTemplate::new(400).set_body_json(error);
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": format!("wamid.out.{}", unique())}],
        }))
    }
}

/// Starts a fake Graph API.
pub async fn fake_graph(graph: FakeGraph) -> MockServer {
    fake_graph_with_delay(graph, Duration::ZERO).await
}

/// A fake Graph API that takes `delay` to answer each call.
pub async fn fake_graph_with_delay(graph: FakeGraph, delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v23\.0/[0-9]+/messages$"))
        .respond_with(Slow(graph, delay))
        .mount(&server)
        .await;
    server
}

/// Accepts the first text send, then answers every later one with `error` (a long reply
/// whose second part fails).
pub struct FirstTextOnly {
    pub texts: std::sync::atomic::AtomicUsize,
    pub error: Value,
}

impl Respond for FirstTextOnly {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let is_text = body["type"] == "text";
        if is_text && self.texts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            return ResponseTemplate::new(429).set_body_json(&self.error);
        }
        FakeGraph::ok().respond(request)
    }
}

/// A fake Graph API answering with `responder`.
pub async fn fake_graph_with(responder: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v23\.0/[0-9]+/messages$"))
        .respond_with(responder)
        .mount(&server)
        .await;
    server
}

struct Slow(FakeGraph, Duration);

impl Respond for Slow {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request).set_delay(self.1)
    }
}

/// The requests the fake Graph API received whose body `type` is `kind` (sends, not reads).
pub async fn sends(server: &MockServer, kind: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["type"] == kind)
        .collect()
}

/// A documented Graph error envelope from `graph_responses.json`.
pub fn graph_error(key: &str) -> Value {
    fixture("graph_responses.json")[key].clone()
}
