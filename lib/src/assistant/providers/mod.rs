//! Chat models with tools behind one interface: OpenAI Chat Completions (primary) and
//! Anthropic Messages (fallback). [`complete`] tries the candidates in order, retrying one on
//! 429, 5xx and 529 with jittered backoff that honours `retry-after` (never on quota or billing
//! errors), falls back to the next on any failure or timeout, stays inside the turn's deadline,
//! and records every attempt in the ledger.

mod anthropic;
mod openai;

use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::ledger::{AiRequest, AttemptStatus, Ledger};
pub use super::models::Usage;
use super::models::{Models, Thinking};
use super::tools::ToolSpec;
use crate::configuration::{ProviderSettings, Secret};
use crate::supabase::storable;

pub use openai::Transcript;

/// A conversation to continue.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub system: String,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    /// The longest answer, thinking left out.
    pub max_output_tokens: u32,
    /// What a thinking model may spend thinking, on top of `max_output_tokens`.
    pub thinking_tokens: u32,
}

impl ChatRequest {
    /// The same conversation with every image left out (for models that cannot read them).
    pub fn without_images(&self) -> Self {
        let mut request = self.clone();
        for message in &mut request.messages {
            if let ChatMessage::User { text, image } = message {
                if image.take().is_some() {
                    text.push_str("\n[The user attached an image this model cannot see.]");
                }
            }
        }
        request
    }
}

/// One message of the conversation.
#[derive(Clone, Debug)]
pub enum ChatMessage {
    User {
        text: String,
        image: Option<Image>,
    },
    Assistant {
        text: Option<String>,
        tool_calls: Vec<ToolCall>,
        /// The thinking blocks that came with the tool calls ([`Completion::thinking`]).
        thinking: Vec<Value>,
    },
    ToolResults(Vec<ToolResult>),
}

/// An image sent to a model that accepts images.
#[derive(Clone, Debug)]
pub struct Image {
    pub mime_type: String,
    pub base64: String,
}

/// A tool the model asked to call.
#[derive(Clone, Debug)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON (a string when the model sent text that is not JSON).
    pub arguments: Value,
}

/// A tool's answer to a call.
#[derive(Clone, Debug)]
pub struct ToolResult {
    pub call_id: String,
    pub content: String,
    pub is_error: bool,
}

/// A model's answer.
#[derive(Clone, Debug)]
pub struct Completion {
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// Anthropic's `thinking` and `redacted_thinking` blocks exactly as received (signatures
    /// included): sent back unmodified with the tool calls they came with, as a tool loop on a
    /// thinking model requires. Never stored.
    pub thinking: Vec<Value>,
    pub usage: Usage,
}

/// The model's output is input too: what a completion says ends up in `messages`,
/// `tool_executions` and tool rows, so NUL becomes U+FFFD everywhere in it (lone surrogates
/// were already replaced in the answer's bytes, [`storable::repair_json`]).
fn storable_completion(mut completion: Completion) -> Completion {
    completion.text = completion.text.map(|t| storable::text(&t).into_owned());
    for call in &mut completion.tool_calls {
        call.id = storable::text(&call.id).into_owned();
        call.name = storable::text(&call.name).into_owned();
        storable::json(&mut call.arguments, usize::MAX);
    }
    completion
}

/// Decodes a provider's JSON answer, lone surrogate escapes replaced first.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(&storable::repair_json(bytes))
        .map_err(|e| ProviderError::Decode(e.to_string()))
}

/// Why one call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// Quota or billing: retrying cannot help.
        quota: bool,
        retry_after: Option<Duration>,
    },
    #[error("timed out")]
    Timeout,
    #[error("unreachable: {0}")]
    Transport(String),
    #[error("unexpected response: {0}")]
    Decode(String),
    #[error("no time left in the turn")]
    Deadline,
    #[error("the token budget is exhausted")]
    Budget,
}

impl ProviderError {
    /// 429 (not quota), 5xx and 529 and lost connections may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, quota, .. } => !quota && (*status == 429 || *status >= 500),
            Self::Transport(_) => true,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn from_reqwest(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport(error.without_url().to_string())
        }
    }
}

/// Which API a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
}

impl ProviderKind {
    /// The name recorded in `ai_requests.provider`.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// A configured provider.
pub struct Provider {
    pub kind: ProviderKind,
    http: reqwest::Client,
    base_url: String,
    api_key: Secret,
}

impl Provider {
    pub fn new(kind: ProviderKind, http: reqwest::Client, settings: &ProviderSettings) -> Self {
        Self {
            kind,
            http,
            base_url: settings.base_url.clone(),
            api_key: settings.api_key.clone(),
        }
    }

    /// One call, without retries; `thinking` is how `model` thinks (Anthropic only).
    pub async fn complete(
        &self,
        (model, thinking): (&str, Thinking),
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Completion, ProviderError> {
        match self.kind {
            ProviderKind::OpenAi => openai::complete(self, model, request, timeout).await,
            ProviderKind::Anthropic => {
                anthropic::complete(self, (model, thinking), request, timeout).await
            }
        }
    }

    /// Transcribes audio (OpenAI only).
    pub async fn transcribe(
        &self,
        model: &str,
        audio: bytes::Bytes,
        mime_type: &str,
        timeout: Duration,
    ) -> Result<Transcript, ProviderError> {
        openai::transcribe(self, model, audio, mime_type, timeout).await
    }
}

/// A provider and the model to ask it for.
pub struct Candidate<'a> {
    pub provider: &'a Provider,
    pub model: &'a str,
}

/// Timeouts and retries of one turn.
pub struct Policy {
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    /// When the turn must be over.
    pub deadline: Instant,
}

/// A completion and the ledger id of the attempt that produced it.
pub struct Answered {
    pub completion: Completion,
    pub request_id: Uuid,
}

/// Asks the candidates in order until one answers; every attempt goes to `ledger`. `allowed`
/// says whether the budget permits another call after the tokens spent so far.
pub async fn complete(
    candidates: &[Candidate<'_>],
    request: &ChatRequest,
    policy: &Policy,
    models: &Models,
    ledger: &mut Ledger,
    allowed: &(dyn Fn(u64) -> bool + Sync),
) -> Result<Answered, ProviderError> {
    let mut last = ProviderError::Deadline;
    for candidate in candidates {
        let mut attempt = 0;
        loop {
            if !allowed(ledger.tokens()) {
                return Err(ProviderError::Budget);
            }
            let Some(remaining) = policy.deadline.checked_duration_since(Instant::now()) else {
                return Err(last);
            };
            let timeout = policy.request_timeout.min(remaining);
            let started = Instant::now();
            let model = (candidate.model, models.thinking(candidate.model));
            let result = match models.accepts_images(candidate.model) {
                true => candidate.provider.complete(model, request, timeout).await,
                false => {
                    let request = request.without_images();
                    candidate.provider.complete(model, &request, timeout).await
                }
            };
            let usage = result.as_ref().map(|c| c.usage);
            let attempt_of = (candidate.provider.kind, candidate.model);
            let id = record(ledger, attempt_of, models, usage, started.elapsed());
            let error = match result {
                Ok(completion) => {
                    return Ok(Answered {
                        completion,
                        request_id: id,
                    })
                }
                Err(error) => error,
            };
            tracing::warn!(
                provider = candidate.provider.kind.name(),
                model = candidate.model,
                error = %error,
                "AI provider call failed"
            );
            attempt += 1;
            let wait = error
                .retry_after()
                .unwrap_or_else(|| crate::backoff::backoff(policy.retry_base, attempt));
            let time_left = Instant::now()
                .checked_add(wait)
                .and_then(|then| policy.deadline.checked_duration_since(then))
                .is_some_and(|left| left >= Duration::from_secs(1));
            let retry = error.is_retryable() && attempt <= policy.max_retries && time_left;
            last = error;
            if !retry {
                break;
            }
            tokio::time::sleep(wait).await;
        }
    }
    Err(last)
}

/// Writes one attempt's ledger row (`provider`, `model`, what it used or why it failed);
/// returns its id.
pub fn record(
    ledger: &mut Ledger,
    (provider, model): (ProviderKind, &str),
    models: &Models,
    usage: Result<Usage, &ProviderError>,
    latency: Duration,
) -> Uuid {
    let id = Uuid::new_v4();
    let status = match usage {
        Ok(_) => AttemptStatus::Success,
        Err(ProviderError::Timeout) => AttemptStatus::Timeout,
        Err(_) => AttemptStatus::Error,
    };
    let error = usage
        .as_ref()
        .err()
        .map(|e| e.to_string().chars().take(300).collect());
    let usage = usage.unwrap_or_default();
    ledger.ai_requests.push(AiRequest {
        id,
        provider: provider.name(),
        model: model.to_string(),
        tokens_in: usage.input,
        tokens_out: usage.output,
        tokens_cached: usage.cached,
        cost_usd: models.cost(model, &usage),
        latency_ms: latency.as_millis() as u64,
        status,
        error,
        at: chrono::Utc::now() - latency,
    });
    id
}

/// The longest wait a provider's `retry-after` is taken at (a longer one is this long; the
/// turn's deadline then rules the retry out).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `retry-after-ms` (milliseconds) or `retry-after` (seconds) of an answer, at most
/// [`MAX_RETRY_AFTER`].
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    header("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| header("retry-after"))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::try_from_secs_f64(s).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER)))
}

/// Posts `body` as JSON; returns the answer's bytes, or the provider's error.
async fn post(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    classify: fn(u16, &[u8]) -> (String, bool),
) -> Result<bytes::Bytes, ProviderError> {
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(ProviderError::from_reqwest)?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let bytes = response
        .bytes()
        .await
        .map_err(ProviderError::from_reqwest)?;
    if (200..300).contains(&status) {
        return Ok(bytes);
    }
    let (message, quota) = classify(status, &bytes);
    Err(ProviderError::Status {
        status,
        message: message.chars().take(200).collect(),
        quota,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        let status = |status, quota| ProviderError::Status {
            status,
            message: String::new(),
            quota,
            retry_after: None,
        };
        assert!(status(429, false).is_retryable());
        assert!(status(500, false).is_retryable());
        assert!(status(529, false).is_retryable());
        assert!(!status(429, true).is_retryable(), "quota");
        assert!(!status(400, false).is_retryable());
        assert!(!status(401, false).is_retryable());
        assert!(!ProviderError::Timeout.is_retryable(), "timeouts fall back");
    }

    #[test]
    fn model_output_is_made_storable() {
        let body = br#"{"choices":[{"message":{"content":"hi\u0000 \ud800",
            "tool_calls":[{"id":"c1","type":"function","function":{"name":"create_reminder",
            "arguments":"{\"text\":\"x\\u0000y\",\"due\":\"2026-01-01T09:00\"}"}}]}}]}"#;
        let completion = openai::parse(body).expect("decoded");
        assert_eq!(completion.text.as_deref(), Some("hi\u{FFFD} \u{FFFD}"));
        assert_eq!(completion.tool_calls[0].arguments["text"], "x\u{FFFD}y");
        let body = br#"{"content":[{"type":"text","text":"a\u0000"},
            {"type":"tool_use","id":"t","name":"n\u0000","input":{"k\u0000":"\udfff"}}],
            "usage":{"input_tokens":18446744073709551615,"output_tokens":1,
                     "cache_read_input_tokens":5}}"#;
        let completion = anthropic::parse(body).expect("decoded");
        assert_eq!(completion.text.as_deref(), Some("a\u{FFFD}"));
        assert_eq!(completion.tool_calls[0].name, "n\u{FFFD}");
        assert_eq!(completion.tool_calls[0].arguments["k\u{FFFD}"], "\u{FFFD}");
        assert_eq!(completion.usage.input, u64::MAX, "saturated, no overflow");
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
        headers.clear();
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "1e300".parse().expect("header"));
        assert_eq!(
            retry_after(&headers),
            Some(MAX_RETRY_AFTER),
            "no overflow panic"
        );
    }
}
