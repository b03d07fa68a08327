//! Test doubles for the AI providers and Google Calendar: scripted wiremock servers answering
//! with payloads shaped as OpenAI, Anthropic and Google document them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{spawn_app_with, TestApp};
use crate::whatsapp::{select, TestOrg};

/// Answers with `responses` in order, then repeats the last one; remembers when it was called.
#[derive(Clone)]
pub struct Script {
    responses: Arc<Vec<ResponseTemplate>>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    pub fn new(responses: Vec<ResponseTemplate>) -> Self {
        Self {
            responses: Arc::new(responses),
            calls: Arc::default(),
        }
    }

    /// When each call arrived.
    pub fn times(&self) -> Vec<Instant> {
        self.calls.lock().expect("lock").clone()
    }
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut calls = self.calls.lock().expect("lock");
        let n = calls.len().min(self.responses.len() - 1);
        calls.push(Instant::now());
        self.responses[n].clone()
    }
}

/// A fake OpenAI: `POST /v1/chat/completions` answers with `script`.
pub async fn fake_openai(script: &Script) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    server
}

/// A fake Anthropic: `POST /v1/messages` answers with `script`.
pub async fn fake_anthropic(script: &Script) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    server
}

/// A Chat Completions answer with text.
pub fn openai_text(text: &str, prompt: u64, completion: u64, cached: u64) -> ResponseTemplate {
    openai_message(
        json!({"role": "assistant", "content": text, "refusal": null}),
        "stop",
        (prompt, completion, cached),
    )
}

/// A Chat Completions answer calling one tool.
pub fn openai_tool_call(
    id: &str,
    name: &str,
    arguments: Value,
    usage: (u64, u64, u64),
) -> ResponseTemplate {
    let message = json!({
        "role": "assistant",
        "content": null,
        "tool_calls": [{"id": id, "type": "function",
                        "function": {"name": name, "arguments": arguments.to_string()}}],
        "refusal": null,
    });
    openai_message(message, "tool_calls", usage)
}

fn openai_message(
    message: Value,
    finish_reason: &str,
    (prompt, completion, cached): (u64, u64, u64),
) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }))
}

/// An OpenAI error envelope with `status`.
pub fn openai_error(status: u16, kind: &str, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"message": message, "type": kind, "param": null, "code": code},
    }))
}

/// A Messages answer: `content` blocks, with usage (input, output, cache read).
pub fn anthropic_message(
    content: Value,
    stop_reason: &str,
    (input, output, cache_read): (u64, u64, u64),
) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_01Aq9w938a90dw8q",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": cache_read},
    }))
}

pub fn anthropic_text(text: &str, usage: (u64, u64, u64)) -> ResponseTemplate {
    anthropic_message(json!([{"type": "text", "text": text}]), "end_turn", usage)
}

/// An Anthropic error envelope with `status`.
pub fn anthropic_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }))
}

/// An app whose providers are the given fakes (either may be absent), with `env` on top.
pub async fn app_with_ai(
    openai: Option<&MockServer>,
    anthropic: Option<&MockServer>,
    env: &[(&str, &str)],
) -> (TestApp, TestOrg) {
    let openai = openai.map(|s| format!("{}/v1", s.uri()));
    let anthropic = anthropic.map(MockServer::uri);
    let extra: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let app = spawn_app_with(move |vars| {
        if let Some(url) = openai {
            vars.insert(
                "OPENAI_API_KEY".into(),
                "sk-test-openai-000000000000".into(),
            );
            vars.insert("OPENAI_BASE_URL".into(), url);
        }
        if let Some(url) = anthropic {
            vars.insert(
                "ANTHROPIC_API_KEY".into(),
                "sk-ant-test-000000000000".into(),
            );
            vars.insert("ANTHROPIC_BASE_URL".into(), url);
        }
        vars.insert("AI_RETRY_BASE_MS".into(), "10".into());
        vars.extend(extra);
    })
    .await;
    let org = TestOrg::create(app.state.db().expect("db")).await;
    (app, org)
}

/// The JSON bodies a fake received.
pub async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

/// Rows of `table` for `org`, oldest first.
pub async fn rows(app: &TestApp, table: &str, org: &TestOrg) -> Vec<Value> {
    let db = app.state.db().expect("db");
    select(
        db,
        table,
        &[
            ("org_id", format!("eq.{}", org.id)),
            ("order", "created_at.asc".into()),
        ],
    )
    .await
}

/// Polls until `table` has at least `n` rows for `org` (ledger rows land with the outcome).
pub async fn wait_for_rows(app: &TestApp, table: &str, org: &TestOrg, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let found = rows(app, table, org).await;
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rows(app, table, org).await
}

/// A fake Graph API that also serves media `id` (documented URL lookup, then the bytes).
pub async fn graph_with_media(id: &str, mime_type: &str, bytes: &[u8]) -> MockServer {
    let server = crate::whatsapp::fake_graph(crate::whatsapp::FakeGraph::ok()).await;
    let mut info = crate::whatsapp::fixture("graph_responses.json")["media_url_ok"].clone();
    info["url"] = json!(format!("{}/lookaside/{id}", server.uri()));
    info["id"] = json!(id);
    info["mime_type"] = json!(mime_type);
    Mock::given(method("GET"))
        .and(path(format!("/v23.0/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(info))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/lookaside/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), mime_type))
        .mount(&server)
        .await;
    server
}

/// Mounts OpenAI's transcription endpoint on `server`, answering `text` with token usage.
pub async fn mount_transcription(server: &MockServer, text: &str) {
    Mock::given(method("POST"))
        .and(path("/v1/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "text": text,
            "usage": {"type": "tokens", "input_tokens": 40,
                      "input_token_details": {"text_tokens": 0, "audio_tokens": 40},
                      "output_tokens": 9, "total_tokens": 49},
        })))
        .mount(server)
        .await;
}

/// A fake Google: OAuth token endpoint and Calendar v3 events of calendar `primary`.
pub async fn fake_google(listed: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.a0AfH6SMBtest-access-token",
            "expires_in": 3599,
            "scope": "https://www.googleapis.com/auth/calendar.events",
            "token_type": "Bearer",
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(|request: &Request| {
            let mut event: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            event["kind"] = json!("calendar#event");
            event["id"] = json!("evt0123456789abcdef");
            event["status"] = json!("confirmed");
            event["htmlLink"] = json!("https://www.google.com/calendar/event?eid=ZXZ0MDEyMw");
            ResponseTemplate::new(200).set_body_json(event)
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "calendar#events",
            "summary": "primary",
            "timeZone": "UTC",
            "items": listed,
        })))
        .mount(&server)
        .await;
    server
}
