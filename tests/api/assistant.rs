//! The assistant end to end: WhatsApp message in, reply recorded, against the real database
//! with OpenAI, Anthropic (and Graph, Google) faked. Covers the command parser without keys,
//! tool-call round trips on both providers, retries and fallback, the ledger, the budget and
//! the bound on tool rounds.

use std::time::Duration;

use chrono::{Duration as Days, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

fn body(reply: &Option<Value>) -> String {
    reply
        .as_ref()
        .and_then(|r| r["body"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Sends `text` from `contact` and returns the recorded reply's text.
async fn say(app: &TestApp, org: &TestOrg, contact: &str, text: &str) -> String {
    let (delivery, wamid) = text_delivery(org, contact, text);
    assert_eq!(app.post_webhook(&delivery).await.status(), 200);
    body(&app.reply_to(&wamid).await)
}

/// The last message of a chat request the fake provider received.
fn last_message(request: &Value) -> &Value {
    request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .expect("a last message")
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .expect("number")
}

#[tokio::test]
async fn without_an_ai_key_the_command_parser_serves_commands() {
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let contact = new_wa_id();

    let reply = say(&app, &org, &contact, "remind me to stretch in 10 minutes").await;
    assert!(reply.contains("Reminder set: “stretch”"), "{reply}");
    let reminders = rows(&app, "reminders", &org).await;
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0]["text"], "stretch");
    assert_eq!(reminders[0]["recurrence"], "none");
    assert_eq!(reminders[0]["status"], "pending");
    let due: chrono::DateTime<Utc> = reminders[0]["due_at"]
        .as_str()
        .expect("due")
        .parse()
        .expect("time");
    let minutes = (due - Utc::now()).num_seconds();
    assert!(
        (500..=600).contains(&minutes),
        "due in ~10 minutes, got {minutes}s"
    );

    let reply = say(&app, &org, &contact, "my reminders").await;
    assert!(reply.contains("1. stretch"), "{reply}");
    let reply = say(&app, &org, &contact, "cancel reminder 1").await;
    assert!(reply.contains("Cancelled reminder 1"), "{reply}");
    assert_eq!(
        rows(&app, "reminders", &org).await[0]["status"],
        "cancelled"
    );
    let reply = say(&app, &org, &contact, "cancel reminder 7").await;
    assert!(reply.contains("couldn't find that reminder"), "{reply}");

    let reply = say(&app, &org, &contact, "spent 12.50 on lunch").await;
    assert!(reply.contains("Logged 12.50 USD (food)"), "{reply}");
    let reply = say(&app, &org, &contact, "gasté 20 en taxi").await;
    assert!(
        reply.contains("Gasto anotado: 20.00 USD (transporte)"),
        "{reply}"
    );
    let expenses = rows(&app, "expenses", &org).await;
    assert_eq!(expenses.len(), 2);
    assert_eq!(number(&expenses[0]["amount"]), 12.5);
    assert_eq!(expenses[0]["category"], "food");
    let reply = say(&app, &org, &contact, "expenses this month").await;
    assert!(
        reply.contains("32.50 USD (transport 20.00, food 12.50)"),
        "{reply}"
    );

    let reply = say(&app, &org, &contact, "remind me to call mom").await;
    assert!(
        reply.contains("When should I remind you?"),
        "refused, not guessed: {reply}"
    );
    let reply = say(&app, &org, &contact, "what's the weather?").await;
    assert!(reply.contains("I can help with"), "{reply}");

    let executions = rows(&app, "tool_executions", &org).await;
    let tools: Vec<&str> = executions
        .iter()
        .map(|t| t["tool"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        tools,
        [
            "create_reminder",
            "list_reminders",
            "cancel_reminder",
            "cancel_reminder",
            "log_expense",
            "log_expense",
            "expense_summary"
        ]
    );
    assert!(executions.iter().all(|t| t["ai_request_id"].is_null()));
    assert_eq!(executions[3]["status"], "error");
    assert!(
        rows(&app, "ai_requests", &org).await.is_empty(),
        "no AI was called"
    );
}

#[tokio::test]
async fn an_openai_tool_call_round_trip_is_recorded_in_the_ledger() {
    let tomorrow = (Utc::now() + Days::days(1)).format("%Y-%m-%d").to_string();
    let script = Script::new(vec![
        openai_tool_call(
            "call_12345xyz",
            "create_reminder",
            json!({"text": "call mom", "due": format!("{tomorrow}T09:00")}),
            (250, 30, 100),
        ),
        openai_text("Done! I'll remind you tomorrow at 9.", 300, 12, 0),
    ]);
    let openai = fake_openai(&script).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[]).await;

    let reply = say(
        &app,
        &org,
        &new_wa_id(),
        "could you make sure I call my mom tomorrow morning?",
    )
    .await;
    assert_eq!(reply, "Done! I'll remind you tomorrow at 9.");

    let reminders = rows(&app, "reminders", &org).await;
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0]["text"], "call mom");
    assert!(reminders[0]["due_at"]
        .as_str()
        .is_some_and(|d| d.starts_with(&format!("{tomorrow}T09:00"))));

    let requests = wait_for_rows(&app, "ai_requests", &org, 2).await;
    assert_eq!(requests.len(), 2);
    for (row, (tokens_in, tokens_out, cached, cost)) in requests
        .iter()
        .zip([(250, 30, 100, 0.000031), (300, 12, 0, 0.000036)])
    {
        assert_eq!(row["provider"], "openai");
        assert_eq!(row["model"], "gpt-6-luna");
        assert_eq!(row["status"], "success");
        assert_eq!(row["tokens_in"], tokens_in);
        assert_eq!(row["tokens_out"], tokens_out);
        assert_eq!(row["tokens_cached"], cached);
        assert_eq!(number(&row["cost_usd"]), cost, "{row}");
        assert!(row["message_id"].is_string() && row["contact_id"].is_string());
    }
    let executions = rows(&app, "tool_executions", &org).await;
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0]["tool"], "create_reminder");
    assert_eq!(executions[0]["status"], "success");
    assert_eq!(
        executions[0]["ai_request_id"], requests[0]["id"],
        "linked to the attempt that asked"
    );

    let sent = bodies(&openai).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["model"], "gpt-6-luna");
    assert_eq!(sent[0]["tools"].as_array().map(Vec::len), Some(10));
    assert_eq!(sent[0]["messages"][0]["role"], "system");
    assert!(has_text(
        &sent[0]["messages"][0]["content"],
        "time zone UTC"
    ));
    let last = last_message(&sent[1]);
    assert_eq!(last["role"], "tool");
    assert_eq!(last["tool_call_id"], "call_12345xyz");
    assert!(has_text(&last["content"], "call mom"));
    let auth = &openai.received_requests().await.expect("requests")[0].headers["authorization"];
    assert_eq!(auth, "Bearer sk-test-openai-000000000000");
}

#[tokio::test]
async fn an_anthropic_tool_use_round_trip_is_recorded_in_the_ledger() {
    let script = Script::new(vec![
        anthropic_message(
            json!([
                {"type": "text", "text": "Let me log that."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "log_expense",
                 "input": {"amount": 8.5, "currency": "EUR", "category": "food", "note": "pizza"}},
            ]),
            "tool_use",
            (400, 50, 200),
        ),
        anthropic_text("Logged €8.50 for pizza.", (500, 20, 0)),
    ]);
    let anthropic = fake_anthropic(&script).await;
    let (app, org) = app_with_ai(None, Some(&anthropic), &[]).await;

    let reply = say(
        &app,
        &org,
        &new_wa_id(),
        "I just paid for a pizza, 8.50 euros",
    )
    .await;
    assert_eq!(reply, "Logged €8.50 for pizza.");
    let expenses = rows(&app, "expenses", &org).await;
    assert_eq!(expenses.len(), 1);
    assert_eq!(number(&expenses[0]["amount"]), 8.5);
    assert_eq!(expenses[0]["currency"], "EUR");
    assert_eq!(expenses[0]["note"], "pizza");

    let requests = wait_for_rows(&app, "ai_requests", &org, 2).await;
    assert_eq!(requests[0]["provider"], "anthropic");
    assert_eq!(requests[0]["model"], "claude-haiku-5-5");
    assert_eq!(
        requests[0]["tokens_in"], 600,
        "input_tokens plus cache reads"
    );
    assert_eq!(requests[0]["tokens_cached"], 200);
    assert_eq!(requests[0]["tokens_out"], 50);
    // 400 uncached at 0.10, 200 cached at 0.01, 50 out at 0.50 per million.
    assert_eq!(number(&requests[0]["cost_usd"]), 0.000067);
    let executions = rows(&app, "tool_executions", &org).await;
    assert_eq!(executions[0]["ai_request_id"], requests[0]["id"]);

    let received = anthropic.received_requests().await.expect("requests");
    assert_eq!(received[0].headers["x-api-key"], "sk-ant-test-000000000000");
    assert_eq!(received[0].headers["anthropic-version"], "2023-06-01");
    let sent = bodies(&anthropic).await;
    assert_eq!(sent[0]["tools"][0]["input_schema"]["type"], "object");
    let result = &last_message(&sent[1])["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_01A09q90qw90lq917835lq9");
}

#[tokio::test]
async fn a_tool_turn_on_the_thinking_fallback_sends_its_thinking_back_unmodified() {
    // OpenAI is down: the fallback (Claude Haiku 5.5, which thinks by default) runs the tool
    // loop, against a fake that refuses a tool loop whose thinking blocks were dropped.
    let down = Script::new(vec![openai_error(
        500,
        "server_error",
        "server_error",
        "down",
    )]);
    let openai = fake_openai(&down).await;
    let script = Script::new(vec![
        anthropic_thinking_tool_use(
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "log_expense",
            json!({"amount": 12, "currency": "EUR", "category": "food", "note": "sushi"}),
            (400, 900, 0),
        ),
        anthropic_text("Logged €12 for sushi.", (500, 300, 0)),
    ]);
    let anthropic = fake_anthropic(&script).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[("AI_MAX_RETRIES", "0")]).await;

    let reply = say(&app, &org, &new_wa_id(), "Sushi for 12 euros").await;
    assert_eq!(reply, "Logged €12 for sushi.");
    assert_eq!(rows(&app, "expenses", &org).await.len(), 1);
    let sent = bodies(&anthropic).await;
    assert_eq!(sent.len(), 2, "no refused request");
    for request in &sent {
        assert_eq!(request["model"], "claude-haiku-5-5");
        assert_eq!(request["thinking"]["type"], "adaptive");
        assert_eq!(
            request["max_tokens"],
            600 + 4000,
            "room for thinking and the answer"
        );
    }
    let turn = &sent[1]["messages"].as_array().expect("messages")[1];
    assert_eq!(turn["role"], "assistant");
    let thought = "The user wants log_expense; I will call it.";
    assert_eq!(
        turn["content"][0],
        json!({"type": "thinking", "thinking": thought, "signature": thinking_signature(thought)})
    );
    assert_eq!(turn["content"][1]["type"], "redacted_thinking");
    assert_eq!(turn["content"][2]["type"], "tool_use");
    assert_eq!(last_message(&sent[1])["content"][0]["type"], "tool_result");
}

#[tokio::test]
async fn the_fake_anthropic_refuses_a_tool_loop_without_its_thinking() {
    let script = Script::new(vec![anthropic_text("unused", (1, 1, 0))]);
    let anthropic = fake_anthropic(&script).await;
    let dropped = json!({
        "model": "claude-haiku-5-5", "max_tokens": 4600, "thinking": {"type": "adaptive"},
        "messages": [
            {"role": "user", "content": "Sushi for 12 euros"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                "name": "log_expense", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                "content": "{}"}]}]
    });
    let post = |body: Value| {
        let url = format!("{}/v1/messages", anthropic.uri());
        async move { reqwest::Client::new().post(url).json(&body).send().await }
    };
    let refused = post(dropped.clone()).await.expect("answered");
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.expect("json");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let mut disabled = dropped.clone();
    disabled["thinking"] = json!({"type": "disabled"});
    assert_eq!(post(disabled).await.expect("answered").status(), 200);
    let mut forged = dropped;
    forged["messages"][1]["content"]
        .as_array_mut()
        .expect("blocks")
        .insert(
            0,
            json!({"type": "thinking", "thinking": "x", "signature": "forged"}),
        );
    assert_eq!(post(forged).await.expect("answered").status(), 400);
}

#[tokio::test]
async fn a_500_is_retried_then_the_fallback_answers() {
    let failing = Script::new(vec![openai_error(
        500,
        "server_error",
        "server_error",
        "The server had an error while processing your request.",
    )]);
    let openai = fake_openai(&failing).await;
    let fallback = Script::new(vec![anthropic_text("Hi from the fallback.", (20, 5, 0))]);
    let anthropic = fake_anthropic(&fallback).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[("AI_MAX_RETRIES", "1")]).await;

    let reply = say(&app, &org, &new_wa_id(), "hi there, how are you?").await;
    assert_eq!(reply, "Hi from the fallback.");
    assert_eq!(failing.times().len(), 2, "one retry");
    let requests = wait_for_rows(&app, "ai_requests", &org, 3).await;
    let summary: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            (
                r["provider"].as_str().unwrap_or_default().into(),
                r["status"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("openai".into(), "error".into()),
            ("openai".into(), "error".into()),
            ("anthropic".into(), "success".into())
        ]
    );
    assert!(has_text(&requests[0]["error"], "HTTP 500"));
    assert_eq!(requests[0]["tokens_in"], 0);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_then_falls_back() {
    let limited = Script::new(vec![openai_error(
        429,
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for gpt-4o-mini.",
    )
    .insert_header("retry-after", "1")]);
    let openai = fake_openai(&limited).await;
    let fallback = Script::new(vec![anthropic_text("Fallback answer.", (20, 5, 0))]);
    let anthropic = fake_anthropic(&fallback).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[("AI_MAX_RETRIES", "1")]).await;

    let reply = say(&app, &org, &new_wa_id(), "what should I cook tonight?").await;
    assert_eq!(reply, "Fallback answer.");
    let times = limited.times();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "retry-after honoured"
    );
    assert_eq!(fallback.times().len(), 1);

    // A retry-after beyond the turn's deadline is not waited for: straight to the fallback.
    let slow = Script::new(vec![openai_error(
        429,
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached.",
    )
    .insert_header("retry-after", "120")]);
    let openai = fake_openai(&slow).await;
    let fallback = Script::new(vec![anthropic_text("Fallback again.", (20, 5, 0))]);
    let anthropic = fake_anthropic(&fallback).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[("AI_MAX_RETRIES", "2")]).await;
    let reply = say(&app, &org, &new_wa_id(), "what should I cook tonight?").await;
    assert_eq!(reply, "Fallback again.");
    assert_eq!(slow.times().len(), 1);
}

#[tokio::test]
async fn a_timeout_falls_back_and_is_recorded_as_a_timeout() {
    let slow = Script::new(vec![
        openai_text("too late", 10, 2, 0).set_delay(Duration::from_secs(3))
    ]);
    let openai = fake_openai(&slow).await;
    let fallback = Script::new(vec![anthropic_text("On time.", (20, 5, 0))]);
    let anthropic = fake_anthropic(&fallback).await;
    let (app, org) = app_with_ai(
        Some(&openai),
        Some(&anthropic),
        &[("AI_REQUEST_TIMEOUT_MS", "300")],
    )
    .await;

    let reply = say(&app, &org, &new_wa_id(), "tell me something nice").await;
    assert_eq!(reply, "On time.");
    assert_eq!(
        slow.times().len(),
        1,
        "a timeout is not retried on the same provider"
    );
    let requests = wait_for_rows(&app, "ai_requests", &org, 2).await;
    assert_eq!(requests[0]["provider"], "openai");
    assert_eq!(requests[0]["status"], "timeout");
    assert!(number(&requests[0]["latency_ms"]) >= 300.0);
    assert_eq!(requests[1]["status"], "success");
}

#[tokio::test]
async fn a_quota_error_is_never_retried() {
    let quota = Script::new(vec![openai_error(
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    )]);
    let openai = fake_openai(&quota).await;
    let fallback = Script::new(vec![anthropic_text("Served by the fallback.", (20, 5, 0))]);
    let anthropic = fake_anthropic(&fallback).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[("AI_MAX_RETRIES", "3")]).await;

    let reply = say(&app, &org, &new_wa_id(), "hello assistant").await;
    assert_eq!(reply, "Served by the fallback.");
    assert_eq!(quota.times().len(), 1, "no retry on insufficient_quota");
    let requests = wait_for_rows(&app, "ai_requests", &org, 2).await;
    assert!(has_text(
        &requests[0]["error"],
        "exceeded your current quota"
    ));
}

#[tokio::test]
async fn when_every_provider_fails_the_message_is_dead_lettered_with_its_ledger() {
    let down = Script::new(vec![openai_error(
        503,
        "server_error",
        "server_error",
        "The engine is currently overloaded.",
    )]);
    let openai = fake_openai(&down).await;
    let overloaded = Script::new(vec![anthropic_error(529, "overloaded_error", "Overloaded")]);
    let anthropic = fake_anthropic(&overloaded).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[("AI_MAX_RETRIES", "1")]).await;

    let wamid = app.post_text(&org, &new_wa_id(), "are you there?").await;
    let message = app.processed(&wamid).await;
    assert_eq!(message["status"], "failed");
    assert!(app.reply_to(&wamid).await.is_none(), "nothing sent");
    let dead = rows(&app, "dead_letter_queue", &org).await;
    assert_eq!(dead.len(), 1);
    assert!(has_text(&dead[0]["error"], "529"));
    let requests = rows(&app, "ai_requests", &org).await;
    assert_eq!(
        requests.len(),
        4,
        "two tries on each provider, all recorded"
    );
    assert!(requests.iter().all(|r| r["status"] == "error"));
    assert_eq!(overloaded.times().len(), 2, "529 is retried");
}

#[tokio::test]
async fn with_the_budget_spent_the_parser_serves_commands_and_no_provider_is_called() {
    let openai_script = Script::new(vec![openai_text("should not be called", 1, 1, 0)]);
    let openai = fake_openai(&openai_script).await;
    let anthropic_script = Script::new(vec![anthropic_text("should not be called", (1, 1, 0))]);
    let anthropic = fake_anthropic(&anthropic_script).await;
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[]).await;
    let db = app.db();
    org.update(db, "orgs", json!({"monthly_token_budget": 0}))
        .await;
    let contact = new_wa_id();

    let reply = say(&app, &org, &contact, "remind me to stretch in 10 minutes").await;
    assert!(reply.contains("Reminder set"), "{reply}");
    assert_eq!(rows(&app, "reminders", &org).await.len(), 1);
    let reply = say(&app, &org, &contact, "write me a poem about the sea").await;
    assert!(reply.contains("only handle simple commands"), "{reply}");
    let alerts = rows(&app, "alerts", &org).await;
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["kind"] == "budget_exhausted")
            .count(),
        1
    );

    // A contact past the daily cap: the same, without an org alert.
    let (app, org) = app_with_ai(Some(&openai), Some(&anthropic), &[]).await;
    org.update(
        app.db(),
        "assistant_settings",
        json!({"contact_daily_token_cap": 0}),
    )
    .await;
    let reply = say(&app, &org, &new_wa_id(), "spent 3 on coffee").await;
    assert!(reply.contains("Logged 3.00 USD (food)"), "{reply}");
    assert!(rows(&app, "alerts", &org).await.is_empty());

    assert!(
        openai_script.times().is_empty() && anthropic_script.times().is_empty(),
        "no provider called"
    );
}

#[tokio::test]
async fn tool_rounds_are_bounded() {
    let looping = Script::new(vec![openai_tool_call(
        "call_loop",
        "list_reminders",
        json!({}),
        (100, 10, 0),
    )]);
    let openai = fake_openai(&looping).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[("AI_MAX_TOOL_ROUNDS", "2")]).await;

    let reply = say(&app, &org, &new_wa_id(), "what do I have coming up?").await;
    assert_eq!(
        looping.times().len(),
        3,
        "two tool rounds, then one last answer"
    );
    assert!(
        reply.contains("no pending reminders"),
        "answered with what was done: {reply}"
    );
    let executions = wait_for_rows(&app, "tool_executions", &org, 2).await;
    assert_eq!(executions.len(), 2, "the last round's calls are not run");
    assert_eq!(wait_for_rows(&app, "ai_requests", &org, 3).await.len(), 3);
}

#[tokio::test]
async fn invalid_tool_input_is_refused_and_the_model_is_told_why() {
    let script = Script::new(vec![
        openai_tool_call(
            "call_bad",
            "create_reminder",
            json!({"text": "call mom", "due": "sometime next week"}),
            (100, 10, 0),
        ),
        openai_tool_call("call_unknown", "delete_everything", json!({}), (100, 10, 0)),
        openai_text("When exactly should I remind you?", 120, 8, 0),
    ]);
    let openai = fake_openai(&script).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[]).await;

    let reply = say(&app, &org, &new_wa_id(), "make sure I call mom").await;
    assert_eq!(reply, "When exactly should I remind you?");
    assert!(rows(&app, "reminders", &org).await.is_empty());
    let executions = wait_for_rows(&app, "tool_executions", &org, 2).await;
    assert_eq!(executions[0]["status"], "error");
    assert!(has_text(&executions[0]["error"], "invalid input"));
    assert!(has_text(&executions[1]["error"], "unknown tool"));
    let sent = bodies(&openai).await;
    let told = last_message(&sent[1]);
    assert!(has_text(&told["content"], "due must be"), "{told}");
}

#[tokio::test]
async fn the_model_sees_the_recent_conversation() {
    let script = Script::new(vec![
        openai_text("Nice to meet you, Ana!", 50, 5, 0),
        openai_text("Your name is Ana.", 80, 5, 0),
    ]);
    let openai = fake_openai(&script).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[]).await;
    let contact = new_wa_id();
    say(&app, &org, &contact, "Hi, my name is Ana").await;
    let reply = say(&app, &org, &contact, "What is my name?").await;
    assert_eq!(reply, "Your name is Ana.");
    let sent = bodies(&openai).await;
    let roles: Vec<(&str, &str)> = sent[1]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .skip(1)
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default(),
                m["content"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("user", "Hi, my name is Ana"),
            ("assistant", "Nice to meet you, Ana!"),
            ("user", "What is my name?")
        ]
    );
}

#[tokio::test]
async fn a_voice_note_is_transcribed_then_handled_as_text() {
    let graph = graph_with_media("1908647269898587", "audio/ogg", b"OggS-voice-note").await;
    let chat = Script::new(vec![openai_text("should not be needed", 1, 1, 0)]);
    let openai = fake_openai(&chat).await;
    mount_transcription(&openai, "Remind me to stretch in 10 minutes.").await;
    let (app, org) = app_with_ai_and_graph(&openai, &graph).await;
    let wamid = app.post_webhook_fixture("audio_voice.json", &org).await;
    let reply = body(&app.reply_to(&wamid).await);
    assert!(reply.contains("Reminder set: “stretch”"), "{reply}");
    assert!(
        chat.times().is_empty(),
        "a certain command needs no chat model"
    );
    let inbound = app.processed(&wamid).await;
    assert_eq!(
        inbound["body"], "Remind me to stretch in 10 minutes.",
        "the transcript is kept"
    );
    let requests = rows(&app, "ai_requests", &org).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["model"], "gpt-transcribe");
    // 40 seconds at $0.0045 a minute.
    assert_eq!(number(&requests[0]["cost_usd"]), 0.003);
    let upload = openai
        .received_requests()
        .await
        .expect("requests")
        .into_iter()
        .find(|r| r.url.path() == "/v1/audio/transcriptions")
        .expect("transcription request");
    let form = String::from_utf8_lossy(&upload.body);
    assert!(form.contains("gpt-transcribe") && form.contains("OggS-voice-note"));

    // Without an OpenAI key a voice note gets a polite answer.
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let wamid = app.post_webhook_fixture("audio_voice.json", &org).await;
    let reply = body(&app.reply_to(&wamid).await);
    assert!(reply.contains("can't listen to voice notes"), "{reply}");
}

#[tokio::test]
async fn an_image_is_shown_to_a_model_that_accepts_images() {
    let graph = graph_with_media("1003383421387256", "image/jpeg", b"\xff\xd8\xff-jpeg").await;
    let chat = Script::new(vec![openai_text(
        "That is an electricity bill for 42 EUR.",
        900,
        20,
        0,
    )]);
    let openai = fake_openai(&chat).await;
    let (app, org) = app_with_ai_and_graph(&openai, &graph).await;
    let wamid = app.post_webhook_fixture("image.json", &org).await;
    let reply = body(&app.reply_to(&wamid).await);
    assert_eq!(reply, "That is an electricity bill for 42 EUR.");
    let sent = bodies(&openai).await;
    let content = &last_message(&sent[0])["content"];
    assert_eq!(content[0]["text"], "Electricity bill", "the caption");
    assert!(content[1]["image_url"]["url"]
        .as_str()
        .is_some_and(|u| u.starts_with("data:image/jpeg;base64,")));
}

#[tokio::test]
async fn calendar_events_go_to_google_when_the_org_connected_it() {
    let start = (Utc::now() + Days::days(1))
        .format("%Y-%m-%dT10:00")
        .to_string();
    // Already in the org's calendar: a staff event, and another contact's.
    let google = fake_google(json!([{
        "kind": "calendar#event", "id": "evtstaffmeeting", "status": "confirmed",
        "summary": "Staff meeting", "start": {"dateTime": format!("{start}:00Z"), "timeZone": "UTC"},
        "end": {"dateTime": format!("{start}:00Z"), "timeZone": "UTC"},
    }, {
        "kind": "calendar#event", "id": "evtallday", "status": "confirmed",
        "summary": "Other contact's holiday", "start": {"date": "2030-01-01"},
        "end": {"date": "2030-01-02"},
        "extendedProperties": {"private": {"assistant_contact_id": uuid::Uuid::new_v4().to_string()}},
    }]))
    .await;
    let chat = Script::new(vec![
        openai_tool_call(
            "call_cal1",
            "create_calendar_event",
            json!({"title": "Dentist", "start": start, "duration_minutes": 30}),
            (200, 20, 0),
        ),
        openai_text("Added to your calendar.", 250, 8, 0),
        openai_tool_call(
            "call_cal2",
            "list_calendar_events",
            json!({"days": 7}),
            (200, 20, 0),
        ),
        openai_text("You have the dentist tomorrow.", 260, 8, 0),
    ]);
    let openai = fake_openai(&chat).await;
    let token_url = format!("{}/token", google.uri());
    let calendar_url = format!("{}/calendar/v3", google.uri());
    let (app, org) = app_with_ai(
        Some(&openai),
        None,
        &[
            ("GOOGLE_CLIENT_ID", "test-client.apps.googleusercontent.com"),
            ("GOOGLE_CLIENT_SECRET", "test-google-client-secret"),
            ("GOOGLE_OAUTH_TOKEN_URL", &token_url),
            ("GOOGLE_CALENDAR_BASE_URL", &calendar_url),
        ],
    )
    .await;
    let db = app.db();
    insert(
        db,
        "calendar_connections",
        json!({"org_id": org.id, "refresh_token": "1//test-refresh-token"}),
    )
    .await;
    let contact = new_wa_id();

    assert_eq!(
        say(
            &app,
            &org,
            &contact,
            "put the dentist in my calendar tomorrow at 10"
        )
        .await,
        "Added to your calendar."
    );
    let events = rows(&app, "calendar_events", &org).await;
    assert_eq!(events.len(), 1);
    let external_id = events[0]["external_id"].as_str().expect("external id");
    assert!(
        external_id.len() >= 5
            && external_id
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'a'..='v')),
        "a Google event id is base32hex: {external_id}"
    );
    let (starts, ends): (chrono::DateTime<Utc>, chrono::DateTime<Utc>) = (
        events[0]["starts_at"]
            .as_str()
            .expect("start")
            .parse()
            .expect("time"),
        events[0]["ends_at"]
            .as_str()
            .expect("end")
            .parse()
            .expect("time"),
    );
    assert_eq!(ends - starts, Days::minutes(30));

    assert_eq!(
        say(&app, &org, &contact, "what's on my calendar?").await,
        "You have the dentist tomorrow."
    );
    let received = google.received_requests().await.expect("requests");
    let token = String::from_utf8_lossy(&received[0].body).to_string();
    assert!(
        token.contains("grant_type=refresh_token")
            && token.contains("refresh_token=1%2F%2Ftest-refresh-token"),
        "{token}"
    );
    let insert_request = received
        .iter()
        .find(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/events"))
        .expect("insert");
    assert_eq!(
        insert_request.headers["authorization"],
        "Bearer ya29.a0AfH6SMBtest-access-token"
    );
    let inserted: Value = serde_json::from_slice(&insert_request.body).expect("json");
    assert_eq!(inserted["summary"], "Dentist");
    let contact_id = events[0]["contact_id"].as_str().expect("contact");
    assert_eq!(
        inserted["extendedProperties"]["private"]["assistant_contact_id"], contact_id,
        "the event names its contact"
    );
    assert_eq!(
        inserted["id"], external_id,
        "the event id is ours, derived from the call's key"
    );
    let listing = received
        .iter()
        .find(|r| r.method.as_str() == "GET")
        .expect("list");
    assert!(listing
        .url
        .query()
        .is_some_and(|q| q.contains("singleEvents=true") && q.contains("timeMin=")));
    assert!(
        listing
            .url
            .query_pairs()
            .any(|(k, v)| k == "privateExtendedProperty"
                && v == format!("assistant_contact_id={contact_id}")),
        "the listing asks for the contact's events only"
    );
    let result = last_message(&bodies(&openai).await[3])["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        result.contains("google_calendar") && result.contains("Dentist"),
        "{result}"
    );
    assert!(
        !result.contains("Staff meeting") && !result.contains("holiday"),
        "another contact's and the staff's events are not the contact's: {result}"
    );
}

#[tokio::test]
async fn without_google_calendar_events_are_stored_and_listed_from_the_database() {
    let start = (Utc::now() + Days::days(2))
        .format("%Y-%m-%dT18:30")
        .to_string();
    let chat = Script::new(vec![
        openai_tool_call(
            "call_a",
            "create_calendar_event",
            json!({"title": "Spinning class", "start": start}),
            (100, 10, 0),
        ),
        openai_tool_call("call_b", "list_calendar_events", json!({}), (100, 10, 0)),
        openai_text("Booked: spinning class.", 120, 6, 0),
    ]);
    let openai = fake_openai(&chat).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[]).await;
    let reply = say(
        &app,
        &org,
        &new_wa_id(),
        "book me the spinning class in two days at half past six pm",
    )
    .await;
    assert_eq!(reply, "Booked: spinning class.");
    let events = rows(&app, "calendar_events", &org).await;
    assert_eq!(events.len(), 1);
    assert!(events[0]["external_id"].is_null());
    let result = last_message(&bodies(&openai).await[2])["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        result.contains(r#""source":"stored""#) && result.contains("Spinning class"),
        "{result}"
    );
}
