//! Groups answered in the group when the org enables it (never privately), and reactions on
//! the assistant's replies reported as feedback (issue 23). Meta's documented payloads
//! (`tests/fixtures/whatsapp/README.md`) on the real stack, the Graph API faked.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::admin::World;
use crate::helpers::*;

/// The group of `group_text.json`.
const GROUP: &str = "120363025246125486";

/// An app whose Graph API answers every send, and a fresh org that answers groups.
async fn app_answering_groups() -> (wiremock::MockServer, TestApp, TestOrg) {
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = spawn_app_with_graph(&graph, &[]).await;
    let org = TestOrg::create(app.db()).await;
    org.update(
        app.db(),
        "assistant_settings",
        json!({"answer_groups": true}),
    )
    .await;
    (graph, app, org)
}

/// `group_text.json` from `sender` to `org`, sent at `at` (unix seconds); its wamid.
async fn group_text(app: &TestApp, org: &TestOrg, sender: &str, at: i64) -> String {
    group_say(app, org, sender, at, "Who is bringing the cake?").await
}

/// `group_text.json` saying `text`.
async fn group_say(app: &TestApp, org: &TestOrg, sender: &str, at: i64, text: &str) -> String {
    let mut payload = fixture("group_text.json");
    let value = &mut payload["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = json!(org.phone_number_id);
    value["contacts"][0]["wa_id"] = json!(sender);
    let wamid = new_wamid();
    let message = &mut value["messages"][0];
    message["from"] = json!(sender);
    message["id"] = json!(wamid);
    message["timestamp"] = json!(at.to_string());
    message["text"]["body"] = json!(text);
    assert_eq!(app.post_webhook_json(&payload).await.status(), 200);
    wamid
}

/// Every body the fake Graph API received addressed to `address` (`to` or `recipient`).
async fn sent_to(graph: &wiremock::MockServer, address: &str) -> Vec<Value> {
    let requests = graph.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["to"] == address || b["recipient"] == address)
        .collect()
}

#[tokio::test]
async fn with_answer_groups_a_group_text_is_answered_in_the_group_never_privately() {
    let (graph, app, org) = app_answering_groups().await;
    let sender = new_wa_id();
    let wamid = group_text(&app, &org, &sender, chrono::Utc::now().timestamp()).await;
    let reply = app.reply_to(&wamid).await.expect("answered");
    assert_eq!(reply["status"], "sent", "{reply}");
    let sent = sends_of(&graph, reply["id"].as_str().expect("id")).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["recipient_type"], "group", "{}", sent[0]);
    assert_eq!(sent[0]["to"], GROUP, "{}", sent[0]);
    assert!(
        sent_to(&graph, &sender).await.is_empty(),
        "nothing to the sender"
    );
    let conversation = &org.rows(app.db(), "conversations", &[]).await[0];
    assert_eq!(conversation["group_id"], GROUP);
    assert!(
        !conversation["last_inbound_at"].is_null(),
        "the group's window"
    );
}

#[tokio::test]
async fn in_a_group_the_persons_own_tools_are_off() {
    let (graph, app, org) = app_answering_groups().await;
    let sender = new_wa_id();
    let now = chrono::Utc::now().timestamp();
    let wamid = group_say(&app, &org, &sender, now, "spent 12.50 on lunch").await;
    let reply = app.reply_to(&wamid).await.expect("answered");
    let sent = sends_of(&graph, reply["id"].as_str().expect("id")).await;
    assert_eq!(sent[0]["to"], GROUP, "{}", sent[0]);
    assert!(
        rows(&app, "expenses", &org).await.is_empty(),
        "no expense logged from a group: {reply}"
    );
}

#[tokio::test]
async fn a_stop_in_a_group_opts_the_sender_out_confirmed_in_the_group() {
    let (graph, app, org) = app_answering_groups().await;
    let sender = new_wa_id();
    let now = chrono::Utc::now().timestamp();
    let stop = group_say(&app, &org, &sender, now, "STOP").await;
    let confirmation = app.reply_to(&stop).await.expect("one confirmation");
    let sent = sends_of(&graph, confirmation["id"].as_str().expect("id")).await;
    assert_eq!(sent[0]["to"], GROUP, "{}", sent[0]);
    let contact = &org
        .rows(app.db(), "contacts", &[("wa_id", eq(&sender))])
        .await[0];
    assert_eq!(contact["opted_out"], true);
    let later = group_say(&app, &org, &sender, now, "hello?").await;
    assert!(
        app.reply_to(&later).await.is_none(),
        "not answered after STOP"
    );
    assert!(sent_to(&graph, &sender).await.is_empty());
}

#[tokio::test]
async fn a_group_whose_window_closed_gets_no_template_and_the_sender_nothing() {
    let (graph, app, org) = app_answering_groups().await;
    let sender = new_wa_id();
    let two_days_ago = chrono::Utc::now().timestamp() - 2 * 86_400;
    let wamid = group_text(&app, &org, &sender, two_days_ago).await;
    let stored = app.processed(&wamid).await;
    assert_eq!(stored["status"], "failed", "{stored}");
    let letters = dead_letters(app.db(), stored["id"].as_str().expect("id")).await;
    let error = letters[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("never sent to a group"), "{letters:?}");
    assert!(sends(&graph, "template").await.is_empty(), "no template");
    assert!(sent_to(&graph, GROUP).await.is_empty());
    assert!(sent_to(&graph, &sender).await.is_empty());
}

/// A reply of org A (answering its seeded inbound message) sent with a fresh wamid; the wamid.
async fn reply(w: &World) -> String {
    let wamid = new_wamid();
    insert(
        w.db(),
        "messages",
        json!({
            "id": Uuid::new_v4(), "org_id": w.a.org.id, "conversation_id": w.a.conversation,
            "contact_id": w.a.contact, "direction": "outbound", "wa_message_id": wamid,
            "type": "text", "body": "an answer", "status": "sent", "reply_to": w.a.inbound,
        }),
    )
    .await;
    wamid
}

/// Org A's person reacts to `target` with `emoji` (Meta's documented reaction).
async fn react(w: &World, target: &str, emoji: &str) {
    let mut payload = fixture("reaction.json");
    let value = &mut payload["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = json!(w.a.org.phone_number_id);
    value["contacts"][0]["wa_id"] = json!(w.a.wa_id);
    let message = &mut value["messages"][0];
    message["from"] = json!(w.a.wa_id);
    message["id"] = json!(new_wamid());
    message["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
    message["reaction"] = json!({"message_id": target, "emoji": emoji});
    assert_eq!(w.post_webhook_json(&payload).await.status(), 200);
}

async fn feedback(w: &World, org: &str, user: Uuid) -> Value {
    let (status, overview) = w
        .admin_get(&format!("/api/admin/overview?org_id={org}"), &w.token(user))
        .await;
    assert_eq!(status, 200, "{overview}");
    overview["feedback"].clone()
}

#[tokio::test]
async fn a_reaction_on_a_reply_is_feedback_in_the_overview_and_a_change_moves_it() {
    let w = World::new().await;
    let answer = reply(&w).await;
    react(&w, &answer, "👍").await;
    assert_eq!(
        feedback(&w, &w.a.org.id, w.viewer_a).await,
        json!({"positive": 1, "negative": 0})
    );
    react(&w, &answer, "👎").await;
    assert_eq!(
        feedback(&w, &w.a.org.id, w.viewer_a).await,
        json!({"positive": 0, "negative": 1}),
        "the changed reaction moved"
    );
    assert_eq!(
        feedback(&w, &w.b.org.id, w.admin_b).await,
        json!({"positive": 0, "negative": 0}),
        "another org sees none"
    );
}

#[tokio::test]
async fn a_staff_reply_in_a_group_conversation_goes_to_the_group_inside_its_window_only() {
    let graph = fake_graph(FakeGraph::ok()).await;
    let w = World::with_graph(&graph).await;
    let conversation = ("id", w.a.conversation.as_str());
    let now = chrono::Utc::now();
    let group = json!({"group_id": GROUP, "last_inbound_at": now});
    update(w.db(), "conversations", conversation, group).await;
    let path = format!("/api/admin/conversations/{}/messages", w.a.conversation);
    let token = w.token(w.admin_a);

    let (status, body) = w
        .admin_post(&path, &token, &json!({"text": "See you all at 3."}))
        .await;
    assert_eq!(status, 201, "{body}");
    let texts = sends(&graph, "text").await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["recipient_type"], "group");
    assert_eq!(texts[0]["to"], GROUP);
    assert!(sent_to(&graph, &w.a.wa_id).await.is_empty());

    let closed = json!({"last_inbound_at": now - chrono::Duration::days(2)});
    update(w.db(), "conversations", conversation, closed).await;
    let (status, body) = w
        .admin_post(&path, &token, &json!({"text": "Anyone?"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("never sent to a group"), "{body}");
    assert!(sends(&graph, "template").await.is_empty(), "no template");
}
