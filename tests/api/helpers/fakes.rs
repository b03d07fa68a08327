//! The external APIs, faked with wiremock and answering with payloads shaped as their owners
//! document them: Meta's Graph API, OpenAI, Anthropic, Google Calendar, Stripe and Supabase
//! Auth's JWKS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockBuilder, MockServer, Request, Respond, ResponseTemplate};

use super::app::{spawn_app_with, TestApp};
use super::db::TestOrg;
use super::fixtures::{fixture, graph_error};
use super::jwt::test_jwks;
use super::unique;

// =============================================================================================
// Meta's Graph API
// =============================================================================================

/// The Graph API version the app calls by default (`GRAPH_API_VERSION`).
pub const GRAPH: &str = assistant::assistant::lifecycle::DEFAULT_GRAPH_VERSION;

/// The path of a Graph API send: `/{GRAPH}/{phone_number_id}/messages`.
fn sends_path() -> String {
    format!(r"^/{}/[0-9]+/messages$", GRAPH.replace('.', r"\."))
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
        .and(path_regex(sends_path()))
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
        .and(path_regex(sends_path()))
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
    let mut found = bodies(server).await;
    found.retain(|b| b["type"] == kind);
    found
}

/// Answers sends with the wamids `wamids` in order (then fresh ones), so that a test can post
/// a status for a part before the send that gets its wamid.
pub struct KnownWamids(pub Mutex<std::collections::VecDeque<String>>);

impl KnownWamids {
    pub fn new(wamids: &[&str]) -> Self {
        Self(Mutex::new(wamids.iter().map(|w| w.to_string()).collect()))
    }
}

impl Respond for KnownWamids {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let next = (body["status"] != "read")
            .then(|| self.0.lock().expect("wamids").pop_front())
            .flatten();
        match next {
            Some(wamid) => ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            })),
            _ => FakeGraph::ok().respond(request),
        }
    }
}

/// The sends the fake Graph API received for our outbound message `id` (its callback data).
pub async fn sends_of(server: &MockServer, id: &str) -> Vec<Value> {
    let mut found = bodies(server).await;
    found.retain(|b| b["biz_opaque_callback_data"] == id);
    found
}

// =============================================================================================
// OpenAI and Anthropic
// =============================================================================================

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

/// A fake Anthropic: `POST /v1/messages` answers with `script`, except a request that breaks
/// the thinking rule of tool loops ([`DropsThinking`]), refused with the API's 400.
pub async fn fake_anthropic(script: &Script) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(DropsThinking)
        .respond_with(anthropic_error(
            400,
            "invalid_request_error",
            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
             `tool_use`. When `thinking` is enabled, a final `assistant` message must start with \
             a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` \
             blocks). To avoid this requirement, disable `thinking`.",
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    server
}

/// Anthropic's rule for tool use with thinking ("Extended thinking with tool use",
/// <https://platform.claude.com/docs/en/build-with-claude/extended-thinking>): with thinking on,
/// the assistant turn whose `tool_use` blocks the request answers must start with its thinking
/// blocks, unmodified (the fake checks the signature [`thinking_signature`] gave them).
pub struct DropsThinking;

impl wiremock::Match for DropsThinking {
    fn matches(&self, request: &Request) -> bool {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return false;
        };
        let thinking_on = ["adaptive", "enabled"]
            .iter()
            .any(|kind| body["thinking"]["type"] == *kind);
        let Some(turn) = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "assistant"))
        else {
            return false;
        };
        let blocks = turn["content"].as_array().cloned().unwrap_or_default();
        let calls = blocks.iter().any(|b| b["type"] == "tool_use");
        let intact = |b: &Value| match b["type"].as_str() {
            Some("thinking") => {
                b["signature"].as_str()
                    == Some(&thinking_signature(b["thinking"].as_str().unwrap_or("")))
            }
            Some("redacted_thinking") => b["data"].is_string(),
            _ => false,
        };
        let thinking: Vec<&Value> = blocks
            .iter()
            .take_while(|b| b["type"] != "text" && b["type"] != "tool_use")
            .collect();
        thinking_on && calls && (thinking.is_empty() || !thinking.iter().all(|b| intact(b)))
    }
}

/// The signature the fake gives a thinking block of `text` (opaque to the service).
pub fn thinking_signature(text: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    format!("EqQBCgIYAhIM{:016x}", hasher.finish())
}

/// A Messages answer of a thinking model calling one tool: a `thinking` block (signed), a
/// `redacted_thinking` block, then the `tool_use`, as the extended thinking docs show them.
pub fn anthropic_thinking_tool_use(
    id: &str,
    name: &str,
    input: Value,
    usage: (u64, u64, u64),
) -> ResponseTemplate {
    let thought = format!("The user wants {name}; I will call it.");
    anthropic_message(
        json!([
            {"type": "thinking", "thinking": thought, "signature": thinking_signature(&thought)},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
            {"type": "tool_use", "id": id, "name": name, "input": input},
        ]),
        "tool_use",
        usage,
    )
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
    let org = TestOrg::create(app.db()).await;
    (app, org)
}

/// An app whose chat model is the fake `openai` and whose Graph API is `graph`, and an org.
pub async fn app_with_ai_and_graph(openai: &MockServer, graph: &MockServer) -> (TestApp, TestOrg) {
    let graph_url = graph.uri();
    app_with_ai(
        Some(openai),
        None,
        &[
            ("GRAPH_API_BASE_URL", &graph_url),
            ("WHATSAPP_ACCESS_TOKEN", super::app::GRAPH_TOKEN),
        ],
    )
    .await
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

/// A fake Graph API that also serves media `id` (documented URL lookup, then the bytes).
pub async fn graph_with_media(id: &str, mime_type: &str, bytes: &[u8]) -> MockServer {
    let server = fake_graph(FakeGraph::ok()).await;
    let mut info = fixture("graph_responses.json")["media_url_ok"].clone();
    info["url"] = json!(format!("{}/lookaside/{id}", server.uri()));
    info["id"] = json!(id);
    info["mime_type"] = json!(mime_type);
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH}/{id}")))
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

/// Mounts OpenAI's transcription endpoint on `server`, answering `text` with the usage of a
/// model billed by duration (`gpt-transcribe`): `{"type": "duration", "seconds": 40}`, as the
/// audio API reference shows for duration-billed models.
pub async fn mount_transcription(server: &MockServer, text: &str) {
    Mock::given(method("POST"))
        .and(path("/v1/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "text": text,
            "usage": {"type": "duration", "seconds": 40},
        })))
        .mount(server)
        .await;
}

/// A fake Google: OAuth token endpoint and Calendar v3 events of calendar `primary`: the
/// events inserted and `listed` are listed, filtered as Google filters
/// `privateExtendedProperty=key=value` (events whose private property `key` is `value`).
pub async fn fake_google(listed: Value) -> MockServer {
    let server = MockServer::start().await;
    let calendar = Arc::new(Mutex::new(listed.as_array().cloned().unwrap_or_default()));
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
    let inserted = calendar.clone();
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(move |request: &Request| {
            let mut event: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            event["kind"] = json!("calendar#event");
            // Google keeps an id the client chose (ours are derived from the call's key).
            if event["id"].is_null() {
                event["id"] = json!("evt0123456789abcdef");
            }
            event["status"] = json!("confirmed");
            event["htmlLink"] = json!("https://www.google.com/calendar/event?eid=ZXZ0MDEyMw");
            inserted.lock().expect("calendar").push(event.clone());
            ResponseTemplate::new(200).set_body_json(event)
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(move |request: &Request| {
            let wanted: Vec<(String, String)> = request
                .url
                .query_pairs()
                .filter(|(name, _)| name == "privateExtendedProperty")
                .filter_map(|(_, v)| v.split_once('=').map(|(k, v)| (k.into(), v.into())))
                .collect();
            let items: Vec<Value> = calendar
                .lock()
                .expect("calendar")
                .iter()
                .filter(|event| {
                    let private = &event["extendedProperties"]["private"];
                    wanted.iter().all(|(k, v)| private[k] == json!(v))
                })
                .cloned()
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({
                "kind": "calendar#events",
                "summary": "primary",
                "timeZone": "UTC",
                "items": items,
            }))
        })
        .mount(&server)
        .await;
    server
}

// =============================================================================================
// Supabase Auth's JWKS
// =============================================================================================

/// The JWKS path of a Supabase project.
pub const JWKS_PATH: &str = "/auth/v1/.well-known/jwks.json";

/// A wiremock Supabase Auth serving the test key set.
pub async fn fake_jwks() -> MockServer {
    fake_jwks_answering(ResponseTemplate::new(200).set_body_json(test_jwks())).await
}

/// A wiremock Supabase Auth answering its JWKS path with `answer`.
pub async fn fake_jwks_answering(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    mount_jwks(&server, answer).await;
    server
}

/// Mounts `answer` on the JWKS path of `server`.
pub async fn mount_jwks(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(answer)
        .mount(server)
        .await;
}

// =============================================================================================
// Stripe
// =============================================================================================

/// The Stripe API's `GET /v1/subscriptions/{id}` at the pinned `Stripe-Version`, to answer as
/// the test says (a refetch without the header gets the server's 404).
pub fn stripe_subscription(id: &str) -> MockBuilder {
    Mock::given(method("GET"))
        .and(path(format!("/v1/subscriptions/{id}")))
        .and(wiremock::matchers::header(
            "stripe-version",
            super::stripe::STRIPE_VERSION,
        ))
}
