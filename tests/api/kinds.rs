//! Who writes and what they send (issue 23): people known only by a business-scoped user id
//! (a WhatsApp username withholds the number), identity changes that keep one contact, and
//! every inbound kind answered the right way (welcome, order, captions) or stored and never
//! answered (system notices, edits, revokes, group messages). Meta's documented payloads
//! (`tests/fixtures/whatsapp/README.md`) on the real stack, the Graph API faked.

use serde_json::{json, Value};

use crate::helpers::*;

/// An app whose Graph API answers every send, and a fresh org.
async fn app() -> (wiremock::MockServer, TestApp, TestOrg) {
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = spawn_app_with_graph(&graph, &[]).await;
    let org = TestOrg::create(app.db()).await;
    (graph, app, org)
}

/// A fresh BSUID.
fn new_user_id() -> String {
    format!("US.{}", uuid::Uuid::new_v4().as_u128())
}

/// The documented `file` for `org`, its first message sent now with a fresh wamid, `edit`
/// applied to that message; returns the wamid.
async fn deliver(
    app: &TestApp,
    org: &TestOrg,
    file: &str,
    edit: impl FnOnce(&mut Value),
) -> String {
    let mut payload = fixture(file);
    let value = &mut payload["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = json!(org.phone_number_id);
    let wamid = new_wamid();
    let message = &mut value["messages"][0];
    message["id"] = json!(wamid);
    message["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
    edit(value);
    let response = app.post_webhook_json(&payload).await;
    assert_eq!(response.status(), 200);
    wamid
}

/// A text from the username-only person `user_id` (no phone number in the delivery).
async fn username_text(app: &TestApp, org: &TestOrg, user_id: &str, text: &str) -> String {
    deliver(app, org, "username_text.json", |value| {
        value["contacts"][0]["user_id"] = json!(user_id);
        value["messages"][0]["from_user_id"] = json!(user_id);
        value["messages"][0]["text"]["body"] = json!(text);
    })
    .await
}

/// The org's contacts with `column` = `value`.
async fn contacts(app: &TestApp, org: &TestOrg, column: &str, value: &str) -> Vec<Value> {
    org.rows(app.db(), "contacts", &[(column, eq(value))]).await
}

#[tokio::test]
async fn a_username_only_person_is_stored_and_answered_by_their_bsuid() {
    let (graph, app, org) = app().await;
    let user_id = new_user_id();
    let wamid = username_text(&app, &org, &user_id, "help").await;
    let reply = app.reply_to(&wamid).await.expect("answered");
    assert_eq!(reply["status"], "sent", "{reply}");
    let sent = sends_of(&graph, reply["id"].as_str().expect("id")).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["recipient"], user_id.as_str(), "{}", sent[0]);
    assert!(sent[0].get("to").is_none(), "no phone number: {}", sent[0]);
    let contact = &contacts(&app, &org, "user_id", &user_id).await[0];
    assert!(contact["wa_id"].is_null());
    assert_eq!(contact["username"], "@ana.lopez");
}

#[tokio::test]
async fn a_stop_survives_a_user_id_change_and_the_notice_is_never_answered() {
    let (_graph, app, org) = app().await;
    let (old, new) = (new_user_id(), new_user_id());
    let stop = username_text(&app, &org, &old, "STOP").await;
    assert!(app.reply_to(&stop).await.is_some(), "one confirmation");

    let notice = deliver(&app, &org, "system_user_changed_user_id.json", |value| {
        value["messages"][0]["from_user_id"] = json!(old);
        value["messages"][0]["system"]["user_id"] = json!(new);
    })
    .await;
    assert!(
        app.reply_to(&notice).await.is_none(),
        "a notice is not answered"
    );

    let after = username_text(&app, &org, &new, "hello again").await;
    assert!(app.reply_to(&after).await.is_none(), "still opted out");
    assert!(contacts(&app, &org, "user_id", &old).await.is_empty());
    let contact = &contacts(&app, &org, "user_id", &new).await[0];
    assert_eq!(contact["opted_out"], true);
    let history = org
        .rows(
            app.db(),
            "messages",
            &[("contact_id", eq(contact["id"].as_str().unwrap()))],
        )
        .await;
    assert!(
        history.len() >= 4,
        "STOP, its confirmation, the notice, the text: {history:?}"
    );
}

#[tokio::test]
async fn a_changed_number_keeps_one_contact_with_its_history_and_opt_out() {
    let (_graph, app, org) = app().await;
    let (old, new) = (new_wa_id(), new_wa_id());
    let stop = app.post_text(&org, &old, "STOP").await;
    assert!(app.reply_to(&stop).await.is_some());
    let contact = contacts(&app, &org, "wa_id", &old).await[0]["id"].clone();

    let notice = deliver(&app, &org, "system_user_changed_number.json", |value| {
        value["messages"][0]["from"] = json!(old);
        value["messages"][0]["system"]["wa_id"] = json!(new);
    })
    .await;
    assert!(
        app.reply_to(&notice).await.is_none(),
        "a notice is not answered"
    );
    let stored = &messages_with_wamid(app.db(), &notice).await[0];
    assert_eq!(stored["type"], "system");
    assert_eq!(stored["contact_id"], contact);

    let after = app.post_text(&org, &new, "hello?").await;
    assert!(
        app.reply_to(&after).await.is_none(),
        "the opt-out followed the number"
    );
    assert!(contacts(&app, &org, "wa_id", &old).await.is_empty());
    let moved = &contacts(&app, &org, "wa_id", &new).await[0];
    assert_eq!(moved["id"], contact, "one contact");
    assert_eq!(moved["opted_out"], true);
    let conversations = org.rows(app.db(), "conversations", &[]).await;
    assert_eq!(
        conversations.len(),
        1,
        "one conversation: {conversations:?}"
    );
}

#[tokio::test]
async fn two_contacts_that_turn_out_to_be_one_person_are_merged() {
    let (_graph, app, org) = app().await;
    let (number, user_id) = (new_wa_id(), new_user_id());
    let first = app.post_text(&org, &number, "STOP").await;
    app.processed(&first).await;
    let second = username_text(&app, &org, &user_id, "hello").await;
    app.processed(&second).await;
    assert_eq!(org.rows(app.db(), "contacts", &[]).await.len(), 2);

    // A delivery naming both ids: one person.
    let both = deliver(&app, &org, "username_text.json", |value| {
        value["contacts"][0]["user_id"] = json!(user_id);
        value["contacts"][0]["wa_id"] = json!(number);
        value["messages"][0]["from_user_id"] = json!(user_id);
        value["messages"][0]["from"] = json!(number);
    })
    .await;
    assert!(
        app.reply_to(&both).await.is_none(),
        "the STOP of either stands"
    );
    let all = org.rows(app.db(), "contacts", &[]).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["wa_id"], number.as_str());
    assert_eq!(all[0]["user_id"], user_id.as_str());
    let history = org.rows(app.db(), "messages", &[]).await;
    assert!(
        history.iter().all(|m| m["contact_id"] == all[0]["id"]),
        "{history:?}"
    );
    assert_eq!(org.rows(app.db(), "conversations", &[]).await.len(), 1);
}

#[tokio::test]
async fn a_group_message_is_stored_and_never_answered_privately() {
    let (graph, app, org) = app().await;
    let wamid = deliver(&app, &org, "group_text.json", |value| {
        let sender = new_wa_id();
        value["contacts"][0]["wa_id"] = json!(sender);
        value["messages"][0]["from"] = json!(sender);
    })
    .await;
    let stored = app.processed(&wamid).await;
    assert_eq!(stored["status"], "processed");
    assert!(app.reply_to(&wamid).await.is_none());
    assert!(sends(&graph, "text").await.is_empty(), "nothing sent");
    let conversation = &org.rows(app.db(), "conversations", &[]).await[0];
    assert_eq!(conversation["id"], stored["conversation_id"]);
    assert_eq!(
        conversation["group_id"], "120363025246125486",
        "the group's conversation"
    );
    assert!(
        conversation["last_inbound_at"].is_null(),
        "no private window opened"
    );
}

#[tokio::test]
async fn request_welcome_is_answered_with_the_orgs_welcome() {
    let (_graph, app, org) = app().await;
    let first = deliver(&app, &org, "request_welcome.json", |value| {
        let sender = new_wa_id();
        value["contacts"][0]["wa_id"] = json!(sender);
        value["messages"][0]["from"] = json!(sender);
    })
    .await;
    let reply = app.reply_to(&first).await.expect("welcomed");
    assert!(has_text(&reply["body"], "I'm your assistant"), "{reply}");

    org.update(
        app.db(),
        "assistant_settings",
        json!({"welcome_message": "Welcome to Acme!"}),
    )
    .await;
    let second = deliver(&app, &org, "request_welcome.json", |value| {
        let sender = new_wa_id();
        value["contacts"][0]["wa_id"] = json!(sender);
        value["messages"][0]["from"] = json!(sender);
    })
    .await;
    let reply = app.reply_to(&second).await.expect("welcomed");
    assert_eq!(reply["body"], "Welcome to Acme!");
}

/// A text and, in the same delivery (so before its turn), `file` about it.
async fn text_then(app: &TestApp, org: &TestOrg, text: &str, file: &str) -> (String, String) {
    let sender = new_wa_id();
    let (text_wamid, about) = (new_wamid(), new_wamid());
    let mut later = fixture(file)["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    later["id"] = json!(about);
    later["from"] = json!(sender);
    later[file.trim_end_matches(".json")]["original_message_id"] = json!(text_wamid);
    deliver(app, org, "text.json", |value| {
        value["contacts"][0]["wa_id"] = json!(sender);
        let message = &mut value["messages"][0];
        message["id"] = json!(text_wamid);
        message["from"] = json!(sender);
        message["text"]["body"] = json!(text);
        later["timestamp"] = message["timestamp"].clone();
        value["messages"] = json!([message.clone(), later]);
    })
    .await;
    (text_wamid, about)
}

#[tokio::test]
async fn an_edit_before_the_turn_is_what_the_turn_reads() {
    let (_graph, app, org) = app().await;
    let (text, edit) = text_then(
        &app,
        &org,
        "remind me to pay the electricity bill in 10 minutes",
        "edit.json",
    )
    .await;
    assert!(
        app.reply_to(&edit).await.is_none(),
        "an edit is not answered"
    );
    let original = app.processed(&text).await;
    assert!(has_text(&original["body"], "water bill"), "{original}");
    let reminders = wait_for_rows(&app, "reminders", &org, 1).await;
    assert!(has_text(&reminders[0]["text"], "water"), "{reminders:?}");
}

#[tokio::test]
async fn a_revoke_clears_the_message_and_cancels_its_turn() {
    let (graph, app, org) = app().await;
    let (text, revoke) = text_then(
        &app,
        &org,
        "remind me to call Ana in 10 minutes",
        "revoke.json",
    )
    .await;
    assert!(
        app.reply_to(&revoke).await.is_none(),
        "a revoke is not answered"
    );
    let original = app.processed(&text).await;
    assert!(original["body"].is_null(), "{original}");
    assert_eq!(original["payload"], json!({}));
    assert!(app.reply_to(&text).await.is_none(), "never answered");
    assert!(sends(&graph, "text").await.is_empty());
    assert!(org.rows(app.db(), "reminders", &[]).await.is_empty());
}

#[tokio::test]
async fn an_order_is_acknowledged_with_its_summary() {
    let (_graph, app, org) = app().await;
    let wamid = deliver(&app, &org, "order.json", |value| {
        let sender = new_wa_id();
        value["contacts"][0]["wa_id"] = json!(sender);
        value["messages"][0]["from"] = json!(sender);
    })
    .await;
    let reply = app.reply_to(&wamid).await.expect("acknowledged");
    assert!(has_text(&reply["body"], "3 items, 9.25 USD"), "{reply}");
}

#[tokio::test]
async fn captions_of_videos_and_documents_are_read_without_an_ai_key() {
    let (_graph, app, org) = app().await;
    for file in ["video.json", "document.json"] {
        let wamid = app.post_webhook_fixture(file, &org).await;
        let reply = app.reply_to(&wamid).await.expect("answered");
        assert!(
            !has_text(&reply["body"], "only read text"),
            "{file}: {reply}"
        );
    }
}

#[tokio::test]
async fn an_echo_from_the_business_app_hands_the_conversation_to_staff_until_they_are_idle() {
    let (graph, app, org) = app().await;
    let person = new_wa_id();
    let first = app.post_text(&org, &person, "help").await;
    assert!(app.reply_to(&first).await.is_some(), "the bot answers");

    let mut payload = fixture("smb_message_echo.json");
    let value = &mut payload["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = json!(org.phone_number_id);
    let echo = new_wamid();
    value["message_echoes"][0]["id"] = json!(echo);
    value["message_echoes"][0]["to"] = json!(person);
    value["message_echoes"][0]["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
    assert_eq!(app.post_webhook_json(&payload).await.status(), 200);
    let stored = &messages_with_wamid(app.db(), &echo).await[0];
    assert_eq!(stored["direction"], "outbound");
    assert_eq!(stored["payload"]["sent_by"], "business_app");
    assert!(has_text(&stored["body"], "order is ready"));
    let conversation = &org.rows(app.db(), "conversations", &[]).await[0];
    assert_eq!(conversation["mode"], "human");
    assert!(conversation["human_until"].is_string(), "{conversation}");

    let sent_before = sends(&graph, "text").await.len();
    let during = app.post_text(&org, &person, "thanks!").await;
    assert!(app.reply_to(&during).await.is_none(), "staff are answering");
    assert_eq!(sends(&graph, "text").await.len(), sent_before);

    // The staff has been idle for staff_idle_minutes: the bot answers again.
    let id = conversation["id"].as_str().expect("id");
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    update(
        app.db(),
        "conversations",
        ("id", id),
        json!({"human_until": past}),
    )
    .await;
    let after = app.post_text(&org, &person, "help").await;
    assert!(app.reply_to(&after).await.is_some(), "back to the bot");
    let conversation = &org.rows(app.db(), "conversations", &[]).await[0];
    assert_eq!(conversation["mode"], "bot");
}

#[tokio::test]
async fn a_reaction_to_a_reply_is_feedback_on_that_reply_and_is_not_answered() {
    let (_graph, app, org) = app().await;
    let person = new_wa_id();
    let question = app.post_text(&org, &person, "help").await;
    let reply = app.reply_to(&question).await.expect("answered");
    let reply_wamid = reply["wa_message_id"]
        .as_str()
        .expect("sent with a wamid")
        .to_string();

    let thumbs = deliver(&app, &org, "reaction.json", |value| {
        value["contacts"][0]["wa_id"] = json!(person);
        value["messages"][0]["from"] = json!(person);
        value["messages"][0]["reaction"]["message_id"] = json!(reply_wamid);
        value["messages"][0]["reaction"]["emoji"] = json!("👎");
    })
    .await;
    assert!(
        app.reply_to(&thumbs).await.is_none(),
        "a reaction is not answered"
    );
    let reacted = &messages_with_wamid(app.db(), &reply_wamid).await[0];
    assert_eq!(reacted["reaction"], "👎");
}

#[tokio::test]
async fn a_revoke_also_clears_the_edits_of_the_message_and_a_late_edit_does_not_restore_it() {
    let (_graph, app, org) = app().await;
    let (text, edit) = text_then(&app, &org, "my secret", "edit.json").await;
    app.processed(&text).await;
    let sender = messages_with_wamid(app.db(), &text).await[0]["contact_id"].clone();
    let sender = &org
        .rows(
            app.db(),
            "contacts",
            &[("id", eq(sender.as_str().unwrap()))],
        )
        .await[0];
    let wa_id = sender["wa_id"].as_str().expect("wa_id").to_string();
    for file in ["revoke.json", "edit.json"] {
        let wamid = deliver(&app, &org, file, |value| {
            value["contacts"][0]["wa_id"] = json!(wa_id);
            let message = &mut value["messages"][0];
            message["from"] = json!(wa_id);
            message[file.trim_end_matches(".json")]["original_message_id"] = json!(text);
        })
        .await;
        app.processed(&wamid).await;
    }
    for wamid in [&text, &edit] {
        let row = &messages_with_wamid(app.db(), wamid).await[0];
        assert!(row["body"].is_null(), "{row}");
        assert_eq!(row["payload"], json!({}), "{row}");
    }
}
