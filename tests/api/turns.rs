//! Exactly once, in order: one turn at a time per conversation (a burst answered together, with
//! every message in its context, under real concurrency), fenced outcomes (a stale worker's
//! finish or fail refused), tool calls that run once through a failure and its retry, and the
//! rate limit counting each stored message once.

use std::time::Duration;

use chrono::{Duration as Days, Utc};
use futures_util::future::join_all;
use serde_json::{json, Value};
use wiremock::MockServer;

use crate::helpers::lib::{Caller, Postgrest};
use crate::helpers::*;

/// The inbound messages with these wamids, once each is `processed` (or `failed`).
async fn settled(app: &TestApp, wamids: &[String]) -> Vec<Value> {
    let mut rows = Vec::new();
    for wamid in wamids {
        rows.push(app.processed(wamid).await);
    }
    rows
}

/// The replies recorded in `org`'s conversations, oldest first.
async fn replies(app: &TestApp, org: &TestOrg) -> Vec<Value> {
    let mut rows = org
        .rows(app.db(), "messages", &[("direction", eq("outbound"))])
        .await;
    rows.retain(|r| r["reply_to"].is_string());
    rows.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
    rows
}

/// The chat requests the fake provider received, each as one string.
async fn chats(openai: &MockServer) -> Vec<String> {
    bodies(openai).await.iter().map(Value::to_string).collect()
}

const BUBBLES: [&str; 3] = ["bubble one", "bubble two", "bubble three"];

#[tokio::test]
async fn three_bubbles_in_one_second_are_answered_as_one_turn_that_sees_them_all() {
    let script = Script::new(vec![openai_text("All three noted.", 50, 5, 0)]);
    let openai = fake_openai(&script).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[("COALESCE_MS", "700")]).await;
    let contact = new_wa_id();
    let mut wamids = Vec::new();
    for text in BUBBLES {
        wamids.push(app.post_text(&org, &contact, text).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let messages = settled(&app, &wamids).await;
    assert!(
        messages.iter().all(|m| m["status"] == "processed"),
        "{messages:?}"
    );

    let chats = chats(&openai).await;
    assert_eq!(chats.len(), 1, "one turn for the burst");
    assert!(BUBBLES.iter().all(|b| chats[0].contains(b)), "{}", chats[0]);
    let replies = replies(&app, &org).await;
    assert_eq!(replies.len(), 1, "one reply for the turn");
    assert_eq!(
        replies[0]["reply_to"], messages[2]["id"],
        "it answers the last"
    );
    assert_eq!(replies[0]["body"], "All three noted.");
}

#[tokio::test]
async fn concurrent_workers_answer_one_conversation_one_turn_at_a_time_in_order() {
    const THINKING: Duration = Duration::from_millis(400);
    let script = Script::new(vec![openai_text("Noted.", 50, 5, 0).set_delay(THINKING)]);
    let openai = fake_openai(&script).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[]).await;
    let contact = new_wa_id();
    let deliveries: Vec<(Vec<u8>, String)> = BUBBLES
        .iter()
        .map(|text| text_delivery(&org, &contact, text))
        .collect();
    let wamids: Vec<String> = deliveries.iter().map(|(_, w)| w.clone()).collect();
    // The first bubble starts a turn; the others arrive during it, each delivered twice at
    // once, and every stored message is also re-driven at once (as the cron would).
    app.post_webhook(&deliveries[0].0).await;
    for (body, _) in &deliveries[1..] {
        join_all([app.post_webhook(body), app.post_webhook(body)]).await;
    }
    let stored = join_all(wamids.iter().map(|w| async {
        messages_with_wamid(app.db(), w).await[0]["id"]
            .as_str()
            .expect("id")
            .to_string()
    }))
    .await;
    join_all(stored.iter().map(|id| app.reprocess(id))).await;
    let messages = settled(&app, &wamids).await;
    assert!(
        messages.iter().all(|m| m["status"] == "processed"),
        "{messages:?}"
    );

    let times = script.times();
    assert!(!times.is_empty());
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= THINKING,
            "a turn began while another was running: {times:?}"
        );
    }
    let chats = chats(&openai).await;
    let last = chats.last().expect("a chat");
    assert!(BUBBLES.iter().all(|b| last.contains(b)), "{last}");
    let replies = replies(&app, &org).await;
    assert_eq!(replies.len(), chats.len(), "one reply per turn");
    let order: Vec<usize> = replies
        .iter()
        .map(|r| {
            messages
                .iter()
                .position(|m| m["id"] == r["reply_to"])
                .expect("answers a bubble")
        })
        .collect();
    assert!(order.windows(2).all(|p| p[0] < p[1]), "in order: {order:?}");
    assert_eq!(
        order.last(),
        Some(&2),
        "the last turn answers the last bubble"
    );
}

/// Claims the turn of `message_id`'s conversation.
async fn claim(db: &Postgrest, message_id: &str) -> Value {
    rpc(
        db,
        "whatsapp_claim_message",
        json!({"p_message_id": message_id}),
    )
    .await
}

/// Makes the answered message `id` unanswered again: its reply deleted, its status `status`.
async fn reopen(db: &Postgrest, id: &str, status: &str) {
    psql(&format!(
        "delete from public.messages where reply_to = '{id}'"
    ))
    .await;
    update(db, "messages", ("id", id), json!({"status": status})).await;
}

async fn rpc(db: &Postgrest, function: &str, args: Value) -> Value {
    db.rpc(function, Caller::Service)
        .args(&args)
        .fetch()
        .await
        .expect(function)
        .data
}

/// Runs out the lease of the turn holding the inbound `message` (as when its worker died).
async fn expire_turn(db: &Postgrest, message: &Value) {
    let past = (Utc::now() - Days::seconds(5)).to_rfc3339();
    let id = message["id"].as_str().expect("id");
    update(db, "messages", ("id", id), json!({"lease_until": past})).await;
    let conversation = message["conversation_id"].as_str().expect("conversation");
    update(
        db,
        "conversations",
        ("id", conversation),
        json!({"turn_lease_until": past}),
    )
    .await;
}

#[tokio::test]
async fn a_stale_worker_cannot_fail_finish_or_begin_a_turn_claimed_again() {
    let app = spawn_app().await;
    let db = app.db();
    let org = TestOrg::create(db).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let message = app.processed(&wamid).await;
    let id = message["id"].as_str().expect("id").to_string();
    update(db, "messages", ("id", &id), json!({"status": "received"})).await;

    // Worker A claims the turn, then stalls past its lease; worker B claims it again.
    let stale = claim(db, &id).await["token"].clone();
    assert!(stale.is_string());
    expire_turn(db, &message).await;
    let holder = claim(db, &id).await["token"].clone();
    assert!(holder.is_string() && holder != stale);
    let finished = rpc(
        db,
        "whatsapp_finish_message",
        json!({"p_message_id": id, "p_token": holder, "p_result": {}}),
    )
    .await;
    assert_eq!(finished["held"], true);
    assert_eq!(row(db, "messages", &id).await["status"], "processed");

    let failed = rpc(
        db,
        "whatsapp_fail_message",
        json!({"p_message_id": id, "p_token": stale, "p_error": "late failure"}),
    )
    .await;
    assert_eq!(failed, false, "the stale worker's failure is refused");
    let finished = rpc(
        db,
        "whatsapp_finish_message",
        json!({"p_message_id": id, "p_token": stale,
               "p_result": {"opt_out": true, "transcript": "late"}}),
    )
    .await;
    assert_eq!(finished["held"], false, "and its finish");
    let begun = rpc(
        db,
        "whatsapp_begin_reply",
        json!({"p_message_id": id, "p_token": stale, "p_type": "text", "p_body": "late reply"}),
    )
    .await;
    assert_eq!(begun, Value::Null, "and its reply");

    let after = row(db, "messages", &id).await;
    assert_eq!(after["status"], "processed", "still processed");
    assert!(after["error"].is_null(), "{after}");
    assert!(
        dead_letters(db, &id).await.is_empty(),
        "never dead-lettered"
    );
    let contacts = org.rows(db, "contacts", &[]).await;
    assert_eq!(
        contacts[0]["opted_out"], false,
        "the stale opt-out is not applied"
    );
}

#[tokio::test]
async fn a_worker_lost_between_the_tools_and_the_reply_never_runs_a_tool_twice() {
    let tomorrow = (Utc::now() + Days::days(1)).format("%Y-%m-%d").to_string();
    let call = || {
        openai_tool_call(
            "call_abc123",
            "create_reminder",
            json!({"text": "call mom", "due": format!("{tomorrow}T09:00")}),
            (250, 30, 0),
        )
    };
    let script = Script::new(vec![
        call(),
        // The first worker's tool ran; it then hangs (as if killed) before its reply.
        openai_text("the lost worker's reply", 300, 12, 0).set_delay(Duration::from_secs(3)),
        // The retry, once its lease ran out: the model asks for the same call, then answers.
        call(),
        openai_text("Done! I'll remind you tomorrow at 9.", 300, 12, 0),
    ]);
    let openai = fake_openai(&script).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[]).await;
    let db = app.db();
    let (delivery, wamid) = text_delivery(
        &org,
        &new_wa_id(),
        "could you make sure I call my mom tomorrow morning?",
    );
    app.post_webhook(&delivery).await;
    eventually("the tool ran and the worker hangs", || async {
        script.times().len() == 2 && rows(&app, "reminders", &org).await.len() == 1
    })
    .await;

    // Its lease runs out; the retry cron's stuck-message path processes it again.
    let message = messages_with_wamid(db, &wamid).await.remove(0);
    let id = message["id"].as_str().expect("id").to_string();
    expire_turn(db, &message).await;
    app.reprocess(&id).await;
    assert_eq!(row(db, "messages", &id).await["status"], "processed");
    let reply = app.reply_to(&wamid).await.expect("reply");
    assert_eq!(reply["body"], "Done! I'll remind you tomorrow at 9.");

    // The lost worker wakes up: its reply is refused (the turn was claimed again).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reminders = rows(&app, "reminders", &org).await;
    assert_eq!(reminders.len(), 1, "one reminder, not two: {reminders:?}");
    assert_eq!(replies(&app, &org).await.len(), 1);
    assert_eq!(
        app.reply_to(&wamid).await.expect("reply")["body"],
        reply["body"]
    );
    assert!(dead_letters(db, &id).await.is_empty());
}

#[tokio::test]
async fn a_redrive_does_not_count_against_the_rate_limit() {
    // Both messages in one 60 s window of the limit.
    let second = Utc::now().timestamp() % 60;
    if second > 45 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
    let (app, org) = app_with_ai(None, None, &[]).await;
    let db = app.db();
    org.update(
        db,
        "assistant_settings",
        json!({"rate_limit_per_minute": 1}),
    )
    .await;
    let contact = new_wa_id();
    let wamid = app.post_text(&org, &contact, "help").await;
    let message = app.processed(&wamid).await;
    let id = message["id"].as_str().expect("id").to_string();
    let first = app.reply_to(&wamid).await.expect("answered");
    assert!(!has_text(&first["body"], "quickly"), "{first}");

    // Re-driven (its reply lost, the message failed): still within the limit.
    reopen(db, &id, "failed").await;
    app.reprocess(&id).await;
    let again = app.reply_to(&wamid).await.expect("answered again");
    assert!(!has_text(&again["body"], "quickly"), "not counted: {again}");
    let windows = org.rows(db, "rate_limits", &[]).await;
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_eq!(windows[0]["count"], 1, "counted once, when stored");

    // A second message is a second one: over the limit.
    let wamid = app.post_text(&org, &contact, "help").await;
    let notice = app.reply_to(&wamid).await.expect("a notice");
    assert!(has_text(&notice["body"], "quickly"), "{notice}");
}

#[tokio::test]
async fn a_turn_that_could_end_past_the_invocations_max_duration_is_not_begun() {
    let app = spawn_app().await;
    let db = app.db();
    let org = TestOrg::create(db).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let id = app.processed(&wamid).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    reopen(db, &id, "received").await;
    let uuid = id.parse().expect("uuid");

    // 21 s into the invocation, a turn's worst case (40 s with the defaults) ends past 60 s.
    let late = std::time::Instant::now() - Duration::from_secs(21);
    crate::helpers::lib::process_message(&app.state, uuid, late).await;
    let left = row(db, "messages", &id).await;
    assert_eq!(
        left["status"], "received",
        "left for the next worker: {left}"
    );
    assert_eq!(left["attempts"], 1, "not claimed");

    app.reprocess(&id).await;
    assert_eq!(row(db, "messages", &id).await["status"], "processed");
}

#[tokio::test]
async fn a_finish_claims_the_conversations_next_turn_for_its_holder_alone() {
    let app = spawn_app().await;
    let db = app.db();
    let org = TestOrg::create(db).await;
    let contact = new_wa_id();
    let first = app.post_text(&org, &contact, "hello").await;
    let message = app.processed(&first).await;
    let id = message["id"].as_str().expect("id").to_string();
    reopen(db, &id, "received").await;

    // This worker holds the turn; a message arrives meanwhile (its own worker finds the
    // conversation busy and leaves it).
    let token = claim(db, &id).await["token"].clone();
    let second = app.post_text(&org, &contact, "and another thing").await;
    let waiting = messages_with_wamid(db, &second).await.remove(0);
    let next_id = waiting["id"].as_str().expect("id").to_string();
    let args = json!({"p_lease_seconds": 120, "p_history": 20, "p_max_attempts": 5,
                      "p_turn_limit": 20});

    let stale = rpc(
        db,
        "whatsapp_finish_message",
        json!({"p_message_id": id, "p_token": uuid::Uuid::new_v4(), "p_result": {},
               "p_claim": args}),
    )
    .await;
    assert_eq!(stale["held"], false);
    assert!(
        stale["claim"].is_null(),
        "a stale finish claims nothing: {stale}"
    );

    let finished = rpc(
        db,
        "whatsapp_finish_message",
        json!({"p_message_id": id, "p_token": token, "p_result": {}, "p_claim": args}),
    )
    .await;
    assert_eq!(finished["held"], true);
    let next = &finished["claim"];
    assert_eq!(next["message"]["id"], next_id.as_str(), "{finished}");
    assert_eq!(next["turn"]["ids"], json!([next_id]));
    assert!(
        next["history"].to_string().contains("hello"),
        "the finished turn is its history: {next}"
    );
    let claimed = row(db, "messages", &next_id).await;
    assert_eq!(claimed["status"], "processing");
    assert_eq!(claimed["claim_token"], next["token"]);
    assert_eq!(claimed["attempts"], 1, "one attempt, counted by this claim");
    assert_eq!(row(db, "messages", &id).await["status"], "processed");

    // The claim is the next turn's fence: the old token can no longer record anything.
    let again = rpc(
        db,
        "whatsapp_finish_message",
        json!({"p_message_id": id, "p_token": token, "p_result": {}, "p_claim": args}),
    )
    .await;
    assert_eq!(again["held"], false, "{again}");
    assert!(
        claim(db, &next_id).await.is_null(),
        "held by the finish's claim"
    );
    let done = rpc(
        db,
        "whatsapp_finish_message",
        json!({"p_message_id": next_id, "p_token": next["token"], "p_result": {},
               "p_claim": args}),
    )
    .await;
    assert_eq!(done["held"], true);
    assert!(done["next"].is_null() && done["claim"].is_null(), "{done}");
    assert_eq!(row(db, "messages", &next_id).await["status"], "processed");
}
