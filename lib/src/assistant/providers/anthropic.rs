//! Anthropic Messages (`POST {base}/v1/messages`, `anthropic-version: 2023-06-01`) with
//! `tool_use` / `tool_result` blocks, and thinking as the model table says ([`Thinking`]):
//! a model that thinks gets `thinking: {"type": "adaptive"}` and a `max_tokens` that leaves
//! room for the answer after the thinking; its `thinking` / `redacted_thinking` blocks are sent
//! back unmodified with the tool calls they came with ("Extended thinking with tool use",
//! <https://platform.claude.com/docs/en/build-with-claude/extended-thinking>), and thinking is
//! turned off for a request whose pending tool calls came without them (answered by OpenAI).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    post, ChatMessage, ChatRequest, Completion, Provider, ProviderError, Thinking, ToolCall, Usage,
};

const VERSION: &str = "2023-06-01";

pub(super) async fn complete(
    provider: &Provider,
    model: (&str, Thinking),
    request: &ChatRequest,
    timeout: Duration,
) -> Result<Completion, ProviderError> {
    let http = provider
        .http
        .post(format!("{}/v1/messages", provider.base_url))
        .header("x-api-key", provider.api_key.expose())
        .header("anthropic-version", VERSION)
        .json(&body(model, request));
    let bytes = post(http, timeout, classify).await?;
    parse(&bytes)
}

/// The request body. Messages alternate user / assistant (consecutive ones of a role are
/// merged) and start with the user, as the API requires.
pub(super) fn body((model, thinking): (&str, Thinking), request: &ChatRequest) -> Value {
    let mut messages: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            ChatMessage::User { text, image } => {
                let mut blocks = vec![json!({"type": "text", "text": text})];
                if let Some(image) = image {
                    blocks.push(json!({"type": "image", "source": {
                        "type": "base64", "media_type": image.mime_type, "data": image.base64}}));
                }
                ("user", blocks)
            }
            ChatMessage::Assistant {
                text,
                tool_calls,
                thinking,
            } => {
                // Thinking first, as received: the API checks the blocks' signatures.
                let mut blocks = thinking.clone();
                blocks.extend(text.iter().map(|t| json!({"type": "text", "text": t})));
                blocks.extend(tool_calls.iter().map(|call| {
                    let input = match &call.arguments {
                        Value::Object(_) => call.arguments.clone(),
                        _ => json!({}),
                    };
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
                }));
                ("assistant", blocks)
            }
            ChatMessage::ToolResults(results) => {
                let blocks = results
                    .iter()
                    .map(|result| {
                        json!({"type": "tool_result", "tool_use_id": result.call_id,
                               "content": result.content, "is_error": result.is_error})
                    })
                    .collect();
                ("user", blocks)
            }
        };
        match messages.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            None if role == "assistant" => {}
            _ => messages.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_output_tokens,
        "system": request.system,
        "messages": messages,
    });
    let thinks = match thinking {
        Thinking::None => None,
        Thinking::Adaptive => Some(!pending_calls_without_thinking(&request.messages)),
        Thinking::Always => Some(true),
    };
    match thinks {
        Some(true) => {
            body["thinking"] = json!({"type": "adaptive"});
            body["max_tokens"] = json!(request
                .max_output_tokens
                .saturating_add(request.thinking_tokens));
        }
        Some(false) => body["thinking"] = json!({"type": "disabled"}),
        None => {}
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"name": tool.name, "description": tool.description,
                       "input_schema": tool.parameters})
            })
            .collect();
        body["tools"] = Value::from(tools);
    }
    body
}

/// Whether the conversation ends with the results of tool calls whose assistant turn carries
/// no thinking block (it came from another provider, or the model did not think): thinking
/// cannot be on for that request.
fn pending_calls_without_thinking(messages: &[ChatMessage]) -> bool {
    matches!(
        messages,
        [.., ChatMessage::Assistant { thinking, .. }, ChatMessage::ToolResults(_)]
            if thinking.is_empty()
    )
}

#[derive(Deserialize)]
struct Response {
    content: Vec<Value>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// The block types kept verbatim and sent back ([`Completion::thinking`]).
const THINKING_BLOCKS: [&str; 2] = ["thinking", "redacted_thinking"];

#[derive(Deserialize)]
struct ResponseUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

/// Anthropic's `input_tokens` exclude cache reads and writes: they are added back so that
/// `Usage::input` counts every input token, as with OpenAI.
pub(super) fn parse(bytes: &[u8]) -> Result<Completion, ProviderError> {
    let response: Response = super::decode(bytes)?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut thinking = Vec::new();
    for raw in response.content {
        if THINKING_BLOCKS.iter().any(|t| raw["type"] == *t) {
            thinking.push(raw);
            continue;
        }
        let block =
            serde_json::from_value(raw).map_err(|e| ProviderError::Decode(e.to_string()))?;
        match block {
            Block::Text { text } => texts.push(text),
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                arguments: input,
            }),
            Block::Other => {}
        }
    }
    let usage = response
        .usage
        .map(|u| {
            let cached = u.cache_read_input_tokens.unwrap_or(0);
            Usage {
                // Counts are the provider's numbers: saturate rather than overflow.
                input: u
                    .input_tokens
                    .saturating_add(cached)
                    .saturating_add(u.cache_creation_input_tokens.unwrap_or(0)),
                output: u.output_tokens,
                cached,
                seconds: 0,
            }
        })
        .unwrap_or_default();
    let text = texts.join("\n");
    Ok(super::storable_completion(Completion {
        text: (!text.trim().is_empty()).then_some(text),
        tool_calls,
        thinking,
        usage,
    }))
}

/// The error's message, and whether it is about billing or the spend limit (402,
/// `billing_error`, `enforced_spend_limit_reached`, a credit balance too low).
fn classify(status: u16, body: &[u8]) -> (String, bool) {
    let error: Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &error["error"];
    let message = error["message"].as_str().unwrap_or_default().to_string();
    let quota = status == 402
        || error["type"] == "billing_error"
        || error["details"]["error_code"] == "enforced_spend_limit_reached"
        || message.to_lowercase().contains("credit balance");
    let kind = error["type"].as_str().unwrap_or("error");
    (format!("{kind}: {message}"), quota)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assistant::providers::ToolResult;

    #[test]
    fn roles_alternate_and_start_with_the_user() {
        let request = ChatRequest {
            system: "s".into(),
            messages: vec![
                ChatMessage::Assistant {
                    text: Some("an old greeting".into()),
                    tool_calls: vec![],
                    thinking: vec![],
                },
                ChatMessage::User {
                    text: "one".into(),
                    image: None,
                },
                ChatMessage::User {
                    text: "two".into(),
                    image: None,
                },
                ChatMessage::Assistant {
                    text: None,
                    tool_calls: vec![ToolCall {
                        id: "toolu_1".into(),
                        name: "list_reminders".into(),
                        arguments: json!({}),
                    }],
                    thinking: vec![],
                },
                ChatMessage::ToolResults(vec![ToolResult {
                    call_id: "toolu_1".into(),
                    content: "{}".into(),
                    is_error: false,
                }]),
            ],
            tools: vec![],
            max_output_tokens: 100,
            thinking_tokens: 1000,
        };
        let body = body(("claude-3-5-haiku-latest", Thinking::None), &request);
        let roles: Vec<&str> = body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["role"].as_str().expect("role"))
            .collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(
            body["messages"][0]["content"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
        assert!(body.get("tools").is_none());
        assert!(body.get("thinking").is_none());
        assert_eq!(body["max_tokens"], 100);
    }

    fn tool_loop(thinking: Vec<Value>) -> ChatRequest {
        ChatRequest {
            system: "s".into(),
            messages: vec![
                ChatMessage::User {
                    text: "list".into(),
                    image: None,
                },
                ChatMessage::Assistant {
                    text: Some("Looking.".into()),
                    tool_calls: vec![ToolCall {
                        id: "toolu_1".into(),
                        name: "list_reminders".into(),
                        arguments: json!({}),
                    }],
                    thinking,
                },
                ChatMessage::ToolResults(vec![ToolResult {
                    call_id: "toolu_1".into(),
                    content: "{}".into(),
                    is_error: false,
                }]),
            ],
            tools: vec![],
            max_output_tokens: 600,
            thinking_tokens: 4000,
        }
    }

    #[test]
    fn thinking_blocks_go_back_first_and_unmodified_with_room_for_the_answer() {
        let blocks = vec![
            json!({"type": "thinking", "thinking": "The user wants a list.", "signature": "EqQBCgIYAh"}),
            json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}),
        ];
        let sent = body(
            ("claude-haiku-5-5", Thinking::Adaptive),
            &tool_loop(blocks.clone()),
        );
        assert_eq!(sent["thinking"], json!({"type": "adaptive"}));
        assert_eq!(sent["max_tokens"], 4600);
        let assistant = sent["messages"][1]["content"].as_array().expect("blocks");
        assert_eq!(assistant[..2], blocks[..]);
        assert_eq!(assistant[2]["type"], "text");
        assert_eq!(assistant[3]["type"], "tool_use");
    }

    #[test]
    fn thinking_is_off_for_tool_calls_that_came_without_it() {
        let sent = body(("claude-haiku-5-5", Thinking::Adaptive), &tool_loop(vec![]));
        assert_eq!(sent["thinking"], json!({"type": "disabled"}));
        assert_eq!(sent["max_tokens"], 600);
        let sent = body(("claude-opus-5-5", Thinking::Always), &tool_loop(vec![]));
        assert_eq!(
            sent["thinking"],
            json!({"type": "adaptive"}),
            "cannot be off"
        );
    }

    #[test]
    fn thinking_blocks_are_kept_verbatim() {
        let answer = br#"{"content":[
            {"type":"thinking","thinking":"Let me check.","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"},
            {"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"},
            {"type":"text","text":"Checking."},
            {"type":"tool_use","id":"toolu_1","name":"list_reminders","input":{}}],
            "usage":{"input_tokens":10,"output_tokens":90}}"#;
        let completion = parse(answer).expect("decoded");
        assert_eq!(completion.thinking.len(), 2);
        assert_eq!(
            completion.thinking[0]["signature"],
            "EqQBCgIYAhIM1gbcDa9GJwZA"
        );
        assert_eq!(completion.thinking[1]["data"], "EmwKAhgBEgy3va3pzix");
        assert_eq!(completion.text.as_deref(), Some("Checking."));
        assert_eq!(completion.tool_calls.len(), 1);
    }

    #[test]
    fn spend_limits_and_billing_are_quota_errors() {
        let spend = br#"{"type":"error","error":{"type":"rate_limit_error","message":"spend limit","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        assert!(classify(429, spend).1);
        let rate = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
        assert!(!classify(429, rate).1);
        let overloaded =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            classify(529, overloaded),
            ("overloaded_error: Overloaded".into(), false)
        );
        assert!(classify(402, b"{}").1);
    }
}
