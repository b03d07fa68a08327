//! OpenAI Chat Completions with `tools` (`POST {base}/chat/completions`) and audio
//! transcription (`POST {base}/audio/transcriptions`).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{post, ChatMessage, ChatRequest, Completion, Provider, ProviderError, ToolCall, Usage};

pub(super) async fn complete(
    provider: &Provider,
    model: &str,
    request: &ChatRequest,
    timeout: Duration,
) -> Result<Completion, ProviderError> {
    let http = provider
        .http
        .post(format!("{}/chat/completions", provider.base_url))
        .bearer_auth(provider.api_key.expose())
        .json(&body(model, request));
    let bytes = post(http, timeout, classify).await?;
    parse(&bytes)
}

/// The request body.
pub(super) fn body(model: &str, request: &ChatRequest) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for message in &request.messages {
        match message {
            ChatMessage::User { text, image: None } => {
                messages.push(json!({"role": "user", "content": text}));
            }
            ChatMessage::User {
                text,
                image: Some(image),
            } => {
                let url = format!("data:{};base64,{}", image.mime_type, image.base64);
                messages.push(json!({"role": "user", "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": url}},
                ]}));
            }
            ChatMessage::Assistant {
                text, tool_calls, ..
            } => {
                let mut message = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|call| {
                            let arguments = match &call.arguments {
                                Value::String(raw) => raw.clone(),
                                other => other.to_string(),
                            };
                            json!({"id": call.id, "type": "function",
                                   "function": {"name": call.name, "arguments": arguments}})
                        })
                        .collect();
                    message["tool_calls"] = Value::from(calls);
                }
                messages.push(message);
            }
            ChatMessage::ToolResults(results) => {
                messages.extend(results.iter().map(|result| {
                    json!({"role": "tool", "tool_call_id": result.call_id, "content": result.content})
                }));
            }
        }
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_completion_tokens": request.max_output_tokens,
    });
    // GPT-6 models reason by default, and Chat Completions calls tools only without reasoning;
    // GPT-6 Astra and GPT-6.1 Sol do not accept `none` (and are offered on no plan).
    let no_none = ["gpt-6-astra", "gpt-6.1-sol"];
    if model.starts_with("gpt-6") && !no_none.iter().any(|m| model.starts_with(m)) {
        body["reasoning_effort"] = json!("none");
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.name, "description": tool.description,
                    "parameters": tool.parameters}})
            })
            .collect();
        body["tools"] = Value::from(tools);
    }
    body
}

#[derive(Deserialize)]
struct Response {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct ResponseUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u64,
}

pub(super) fn parse(bytes: &[u8]) -> Result<Completion, ProviderError> {
    let response: Response = super::decode(bytes)?;
    let message = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Decode("no choices".into()))?
        .message;
    let tool_calls = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|call| ToolCall {
            id: call.id,
            name: call.function.name,
            arguments: serde_json::from_str(&call.function.arguments)
                .unwrap_or(Value::String(call.function.arguments)),
        })
        .collect();
    let usage = response
        .usage
        .map(|u| Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cached: u
                .prompt_tokens_details
                .map(|d| d.cached_tokens)
                .unwrap_or(0),
            seconds: 0,
        })
        .unwrap_or_default();
    Ok(super::storable_completion(Completion {
        text: message.content.filter(|t| !t.trim().is_empty()),
        tool_calls,
        thinking: Vec::new(),
        usage,
    }))
}

/// The error's message, and whether it is about quota or billing (`insufficient_quota`).
fn classify(_status: u16, body: &[u8]) -> (String, bool) {
    let error: Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &error["error"];
    let words = [&error["code"], &error["type"]]
        .iter()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let quota = ["quota", "billing"].iter().any(|w| words.contains(w));
    let message = error["message"].as_str().unwrap_or(&words).to_string();
    (message, quota)
}

/// A voice note as text, with the transcription's token use (or audio seconds) when reported.
#[derive(Debug)]
pub struct Transcript {
    pub text: String,
    pub usage: Usage,
}

#[derive(Deserialize)]
struct TranscriptionResponse {
    text: String,
    #[serde(default)]
    usage: Option<TranscriptionUsage>,
}

/// `{"type": "tokens", "input_tokens", "output_tokens", …}` for models billed by tokens,
/// `{"type": "duration", "seconds"}` for models billed by the minute (`gpt-transcribe`).
#[derive(Deserialize)]
struct TranscriptionUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    seconds: f64,
}

pub(super) async fn transcribe(
    provider: &Provider,
    model: &str,
    audio: Bytes,
    mime_type: &str,
    timeout: Duration,
) -> Result<Transcript, ProviderError> {
    let extension = match mime_type.split(';').next().unwrap_or_default().trim() {
        "audio/mpeg" => "mp3",
        "audio/mp4" | "audio/aac" => "m4a",
        "audio/amr" => "amr",
        _ => "ogg",
    };
    let file = reqwest::multipart::Part::stream(audio)
        .file_name(format!("voice.{extension}"))
        .mime_str(mime_type.split(';').next().unwrap_or("audio/ogg").trim())
        .map_err(|e| ProviderError::Decode(e.without_url().to_string()))?;
    let form = reqwest::multipart::Form::new()
        .text("model", model.to_string())
        .part("file", file);
    let http = provider
        .http
        .post(format!("{}/audio/transcriptions", provider.base_url))
        .bearer_auth(provider.api_key.expose())
        .multipart(form);
    let bytes = post(http, timeout, classify).await?;
    let response: TranscriptionResponse = super::decode(&bytes)?;
    let usage = response
        .usage
        .map(|u| Usage {
            input: u.input_tokens,
            output: u.output_tokens,
            cached: 0,
            // Seconds are billed whole: a fraction counts as a second.
            seconds: u.seconds.max(0.0).ceil() as u64,
        })
        .unwrap_or_default();
    Ok(Transcript {
        text: crate::supabase::storable::text(&response.text).into_owned(),
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_errors_are_told_apart_from_rate_limits() {
        let quota = br#"{"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}"#;
        assert!(classify(429, quota).1);
        let rate = br#"{"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}"#;
        let (message, is_quota) = classify(429, rate);
        assert!(!is_quota);
        assert!(message.starts_with("Rate limit reached"));
    }

    #[test]
    fn gpt_6_models_are_asked_without_reasoning_so_that_they_call_tools() {
        let request = ChatRequest {
            system: "s".into(),
            messages: vec![],
            tools: vec![],
            max_output_tokens: 100,
            thinking_tokens: 1000,
        };
        assert_eq!(body("gpt-6-luna", &request)["reasoning_effort"], "none");
        assert!(body("gpt-4o-mini", &request)
            .get("reasoning_effort")
            .is_none());
        assert!(body("gpt-6.1-sol", &request)
            .get("reasoning_effort")
            .is_none());
    }
}
