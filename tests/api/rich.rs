//! Rich replies end to end (docs/webhook.md#rich-replies): reply buttons, lists and reactions
//! sent through the one send step to a fake Graph API that checks the interactive request's
//! shape as Meta's reference pages give it, the person's tap coming back as a documented
//! `interactive` webhook and reaching the tools as the chosen item, the model choosing a rich
//! reply through a tool, and a resend rebuilding the same content from what was stored.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Match, Mock, MockServer, Request};

use crate::cron::TURN;
use crate::helpers::*;

/// The Graph messages endpoint of the configured version (`/{GRAPH}/{phone_number_id}/messages`).
fn messages_path() -> String {
    format!(r"^/{}/[0-9]+/messages$", regex_escape(GRAPH))
}

fn regex_escape(text: &str) -> String {
    text.replace('.', r"\.")
}

fn chars(value: &Value) -> usize {
    value
        .as_str()
        .map(|s| s.chars().count())
        .unwrap_or(usize::MAX)
}

fn bounded(value: &Value, max: usize) -> bool {
    (1..=max).contains(&chars(value))
}

/// The envelope of every send of `POST /{phone-number-id}/messages`.
fn envelope(body: &Value, kind: &str) -> bool {
    body["messaging_product"] == "whatsapp"
        && body["recipient_type"] == "individual"
        && body["to"].is_string()
        && body["type"] == kind
        && body["biz_opaque_callback_data"].is_string()
}

/// "Interactive reply buttons messages": `interactive.type=button`, a body of at most 1024
/// characters, 1 to 3 `action.buttons[]` of `{type: reply, reply: {id ≤ 256, title ≤ 20}}`.
struct ButtonsShape;

impl Match for ButtonsShape {
    fn matches(&self, request: &Request) -> bool {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let interactive = &body["interactive"];
        let buttons = interactive["action"]["buttons"].as_array();
        envelope(&body, "interactive")
            && interactive["type"] == "button"
            && bounded(&interactive["body"]["text"], 1024)
            && buttons.is_some_and(|buttons| {
                (1..=3).contains(&buttons.len())
                    && buttons.iter().all(|b| {
                        b["type"] == "reply"
                            && bounded(&b["reply"]["id"], 256)
                            && bounded(&b["reply"]["title"], 20)
                            && b["reply"].as_object().map(|o| o.len()) == Some(2)
                    })
            })
    }
}

/// "Interactive list messages": `interactive.type=list`, `action.button` of at most 20
/// characters, `action.sections[].rows[]` of `{id ≤ 200, title ≤ 24, description ≤ 72}`, at
/// most 10 rows in all.
struct ListShape;

impl Match for ListShape {
    fn matches(&self, request: &Request) -> bool {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let interactive = &body["interactive"];
        let action = &interactive["action"];
        let rows: Vec<&Value> = action["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["rows"].as_array().into_iter().flatten())
            .collect();
        envelope(&body, "interactive")
            && interactive["type"] == "list"
            && bounded(&interactive["body"]["text"], 4096)
            && bounded(&action["button"], 20)
            && (1..=10).contains(&rows.len())
            && rows.iter().all(|r| {
                bounded(&r["id"], 200)
                    && bounded(&r["title"], 24)
                    && (r["description"].is_null() || bounded(&r["description"], 72))
            })
    }
}

/// A fake Graph API whose first mock takes only sends of `shape`, `expected` times (checked
/// by [`MockServer::verify`]); every other send and mark-as-read is answered as usual.
async fn graph_expecting(shape: impl Match + 'static, expected: u64) -> MockServer {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(messages_path()))
        .and(shape)
        .respond_with(FakeGraph::ok())
        .expect(expected)
        .named("a send of the documented interactive shape")
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(messages_path()))
        .respond_with(FakeGraph::ok())
        .mount(&graph)
        .await;
    graph
}

/// The sends (not mark-as-read calls) the fake received.
async fn sends(graph: &MockServer) -> Vec<Value> {
    bodies(graph)
        .await
        .into_iter()
        .filter(|b| b["status"] != "read")
        .collect()
}

/// A documented interactive reply (`interactive_button_reply.json`, `interactive_list_reply.json`)
/// or quick-reply `button.json` from `contact`, with the chosen `id` and `title`; its wamid.
async fn choose(
    app: &TestApp,
    org: &TestOrg,
    contact: &str,
    (file, id, title): (&str, &str, &str),
) -> String {
    let mut payload = fixture(file);
    let message = &mut payload["entry"][0]["changes"][0]["value"]["messages"][0];
    match file {
        "interactive_button_reply.json" => {
            message["interactive"]["button_reply"] = json!({"id": id, "title": title});
        }
        "interactive_list_reply.json" => {
            message["interactive"]["list_reply"]["id"] = json!(id);
            message["interactive"]["list_reply"]["title"] = json!(title);
        }
        _ => message["button"] = json!({"payload": id, "text": title}),
    }
    let (payload, wamids) = personalize(payload, org, contact, 0);
    assert_eq!(app.post_webhook_json(&payload).await.status(), 200);
    wamids[0].clone()
}

fn reply_body(reply: &Option<Value>) -> String {
    reply.as_ref().expect("a reply")["body"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_reminder_is_confirmed_with_reply_buttons_and_a_tap_on_cancel_cancels_it() {
    let graph = graph_expecting(ButtonsShape, 1).await;
    let app = spawn_app_with_graph(&graph, &[]).await;
    let org = TestOrg::create(app.db()).await;
    let contact = new_wa_id();

    let wamid = app
        .post_text(&org, &contact, "remind me to stretch in 10 minutes")
        .await;
    let reply = app.reply_to(&wamid).await.expect("a reply");
    assert_eq!(reply["type"], "interactive", "{reply}");
    assert_eq!(reply["status"], "sent");
    let body = reply["body"].as_str().unwrap_or_default();
    assert!(body.contains("Reminder set: “stretch”") && body.contains("[OK | Cancel]"));
    let rich = &reply["payload"]["rich"];
    assert_eq!(rich["kind"], "buttons", "what was sent is stored: {reply}");

    let sent = sends(&graph).await;
    assert_eq!(sent.len(), 1);
    let buttons = &sent[0]["interactive"]["action"]["buttons"];
    assert_eq!(
        buttons,
        &rich["buttons"]
            .as_array()
            .map(|b| {
                b.iter()
                    .map(|b| json!({"type": "reply", "reply": b}))
                    .collect::<Vec<_>>()
            })
            .map(Value::from)
            .expect("buttons")
    );
    assert_eq!(buttons[1]["reply"]["title"], "Cancel");
    let cancel = buttons[1]["reply"]["id"].as_str().expect("id").to_string();
    graph.verify().await;

    // The tap on "Cancel" comes back as Meta's button_reply and cancels that reminder.
    let tap = choose(
        &app,
        &org,
        &contact,
        ("interactive_button_reply.json", &cancel, "Cancel"),
    )
    .await;
    let tapped = app.processed(&tap).await;
    assert_eq!(tapped["type"], "interactive");
    assert_eq!(
        tapped["body"], "Cancel",
        "the choice's title is the person's text"
    );
    let answer = reply_body(&app.reply_to(&tap).await);
    assert!(answer.contains("Cancelled reminder: “stretch”"), "{answer}");
    let reminders = rows(&app, "reminders", &org).await;
    assert_eq!(reminders[0]["status"], "cancelled");
    let executions = rows(&app, "tool_executions", &org).await;
    let last = executions.last().expect("a tool run");
    assert_eq!(last["tool"], "cancel_reminder");
    assert_eq!(last["input"]["id"], reminders[0]["id"], "the chosen item");
}

#[tokio::test]
async fn cancel_without_a_number_lists_the_reminders_and_the_picked_row_is_cancelled() {
    let graph = graph_expecting(ListShape, 1).await;
    let app = spawn_app_with_graph(&graph, &[]).await;
    let org = TestOrg::create(app.db()).await;
    let contact = new_wa_id();
    for text in [
        "remind me to stretch in 10 minutes",
        "remind me to water the plants on the balcony in 20 minutes",
    ] {
        let wamid = app.post_text(&org, &contact, text).await;
        app.reply_to(&wamid).await.expect("a reply");
    }

    let wamid = app.post_text(&org, &contact, "cancel reminder").await;
    let reply = app.reply_to(&wamid).await.expect("a reply");
    assert_eq!(reply["type"], "interactive", "{reply}");
    graph.verify().await;
    let list = sends(&graph)
        .await
        .into_iter()
        .find(|b| b["interactive"]["type"] == "list")
        .expect("a list was sent");
    let rows_sent = list["interactive"]["action"]["sections"][0]["rows"]
        .as_array()
        .cloned()
        .expect("rows");
    assert_eq!(rows_sent.len(), 2);
    assert_eq!(rows_sent[0]["title"], "1. stretch");
    assert!(
        rows_sent[1]["title"]
            .as_str()
            .is_some_and(|t| t.ends_with('…')),
        "a long text is fitted to 24 characters: {}",
        rows_sent[1]["title"]
    );

    // The second row, picked as Meta's list_reply, cancels that reminder and no other.
    let picked = rows_sent[1]["id"].as_str().expect("id");
    let title = rows_sent[1]["title"].as_str().expect("title");
    let tap = choose(
        &app,
        &org,
        &contact,
        ("interactive_list_reply.json", picked, title),
    )
    .await;
    let answer = reply_body(&app.reply_to(&tap).await);
    assert!(answer.contains("water the plants"), "{answer}");
    let reminders = rows(&app, "reminders", &org).await;
    let status = |text: &str| {
        reminders
            .iter()
            .find(|r| r["text"].as_str().is_some_and(|t| t.starts_with(text)))
            .map(|r| r["status"].clone())
    };
    assert_eq!(status("stretch"), Some(json!("pending")));
    assert_eq!(status("water"), Some(json!("cancelled")));
}

#[tokio::test]
async fn the_model_answers_with_a_list_and_a_bad_rich_argument_is_a_recorded_tool_error() {
    let four: Vec<Value> = (1..=4)
        .map(|i| json!({"id": format!("slot-{i}"), "title": format!("Slot {i}")}))
        .collect();
    let script = Script::new(vec![
        openai_tool_call(
            "call_buttons",
            "reply_with_buttons",
            json!({"body": "Which slot?", "buttons": four}),
            (200, 20, 0),
        ),
        openai_tool_call(
            "call_list",
            "reply_with_list",
            json!({"body": "Which slot?", "button": "Slots", "rows": [
                {"id": "slot-1", "title": "Monday 9:00", "description": "Morning"},
                {"id": "slot-2", "title": "Tuesday 15:00"}]}),
            (220, 20, 0),
        ),
        openai_text("not reached: the list ends the turn", 10, 1, 0),
    ]);
    let openai = fake_openai(&script).await;
    let graph = graph_expecting(ListShape, 1).await;
    let (app, org) = app_with_ai_and_graph(&openai, &graph).await;
    let contact = new_wa_id();

    let wamid = app.post_text(&org, &contact, "when can I come in?").await;
    let reply = app.reply_to(&wamid).await.expect("a reply");
    assert_eq!(reply["type"], "interactive", "{reply}");
    assert_eq!(reply["payload"]["rich"]["kind"], "list");
    graph.verify().await;
    let executions = rows(&app, "tool_executions", &org).await;
    let statuses: Vec<(&str, &str)> = executions
        .iter()
        .map(|t| {
            (
                t["tool"].as_str().unwrap_or_default(),
                t["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("reply_with_buttons", "error"),
            ("reply_with_list", "success")
        ]
    );
    assert!(
        executions[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many items")),
        "{}",
        executions[0]["error"]
    );
    assert_eq!(bodies(&openai).await.len(), 2, "the list ended the turn");

    // The person's pick reaches the model as the chosen item: its title and its id.
    let tap = choose(
        &app,
        &org,
        &contact,
        ("interactive_list_reply.json", "slot-2", "Tuesday 15:00"),
    )
    .await;
    app.reply_to(&tap).await.expect("a reply");
    let asked = bodies(&openai).await;
    let last = asked
        .last()
        .and_then(|r| r["messages"].as_array()?.last().cloned())
        .expect("a last message");
    let content = last["content"].to_string();
    assert!(
        content.contains("Tuesday 15:00") && content.contains("slot-2"),
        "{content}"
    );
}

#[tokio::test]
async fn a_template_quick_reply_reaches_the_model_with_its_payload() {
    let script = Script::new(vec![openai_text("Noted.", 10, 2, 0)]);
    let openai = fake_openai(&script).await;
    let (app, org) = app_with_ai(Some(&openai), None, &[]).await;
    let tap = choose(
        &app,
        &org,
        &new_wa_id(),
        ("button.json", "STOP_REMINDERS", "Stop reminders"),
    )
    .await;
    assert_eq!(reply_body(&app.reply_to(&tap).await), "Noted.");
    let asked = bodies(&openai).await;
    let last = asked[0]["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .expect("a last message");
    let content = last["content"].to_string();
    assert!(
        content.contains("Stop reminders") && content.contains("STOP_REMINDERS"),
        "{content}"
    );
}

#[tokio::test]
async fn the_model_reacts_to_the_message_it_answers() {
    let script = Script::new(vec![openai_tool_call(
        "call_react",
        "react",
        json!({"emoji": "👍"}),
        (100, 5, 0),
    )]);
    let openai = fake_openai(&script).await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let (app, org) = app_with_ai_and_graph(&openai, &graph).await;
    let wamid = app.post_text(&org, &new_wa_id(), "thanks a lot!").await;
    let reply = app.reply_to(&wamid).await.expect("a reply");
    assert_eq!(reply["type"], "reaction", "{reply}");
    assert_eq!(reply["body"], "👍");
    let sent = sends(&graph).await;
    let reaction = sent.iter().find(|b| b["type"] == "reaction").expect("sent");
    assert!(envelope(reaction, "reaction"));
    assert_eq!(
        reaction["reaction"],
        json!({"message_id": wamid, "emoji": "👍"})
    );
}

#[tokio::test]
async fn a_rich_reply_whose_send_meta_never_accepted_is_resent_as_it_was_stored() {
    let _turn = TURN.lock().await;
    // The send times out after reaching the fake: its outcome is unknown, the reply `sending`.
    let slow = fake_graph_with_delay(FakeGraph::ok(), Duration::from_millis(1500)).await;
    let app = spawn_app_with_graph(&slow, &[("GRAPH_TIMEOUT_MS", "200")]).await;
    let org = TestOrg::create(app.db()).await;
    let wamid = app
        .post_text(&org, &new_wa_id(), "remind me to stretch in 10 minutes")
        .await;
    app.processed(&wamid).await;
    let reply = app.reply_to(&wamid).await.expect("a reply");
    assert_eq!(reply["status"], "sending");
    let id = reply["id"].as_str().expect("id").to_string();
    let first = sends_of(&slow, &id).await;
    assert_eq!(first.len(), 1);

    // Stored content, changed where only a rebuild from storage would show it.
    psql(&format!(
        "update public.messages set payload = jsonb_set(payload, '{{rich,body}}', \
         '\"stored body\"'), sending_since = now() - interval '10 minutes' where id = '{id}'"
    ))
    .await;
    let other = status_delivery("status_delivered.json", &org, &new_wamid());
    assert_eq!(app.post_webhook(&other).await.status(), 200);

    let fast = graph_expecting(ButtonsShape, 1).await;
    let resolver = spawn_app_with_graph(&fast, &[]).await;
    resolver.cron(RETRY_FAILED).await;
    fast.verify().await;
    let resent = sends_of(&fast, &id).await;
    assert_eq!(resent.len(), 1, "sent again once, same callback data");
    assert_eq!(resent[0]["interactive"]["body"]["text"], "stored body");
    assert_eq!(
        resent[0]["interactive"]["action"], first[0]["interactive"]["action"],
        "the same buttons"
    );
    let settled = row(app.db(), "messages", &id).await;
    assert_eq!(settled["status"], "sent");
}

#[tokio::test]
async fn a_rich_reply_that_failed_for_certain_is_sent_again_from_what_was_stored() {
    let failing = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let app = spawn_app_with_graph(&failing, &[]).await;
    let org = TestOrg::create(app.db()).await;
    let wamid = app
        .post_text(&org, &new_wa_id(), "remind me to stretch in 10 minutes")
        .await;
    let inbound = app.processed(&wamid).await;
    assert_eq!(inbound["status"], "failed");
    let reply = app.reply_to(&wamid).await.expect("a reply");
    assert_eq!(
        reply["status"], "failed",
        "Meta refused it: certainly not sent"
    );
    let id = reply["id"].as_str().expect("id").to_string();
    psql(&format!(
        "update public.messages set payload = jsonb_set(payload, '{{rich,body}}', \
         '\"stored body\"') where id = '{id}'"
    ))
    .await;

    let fast = graph_expecting(ButtonsShape, 1).await;
    let retry = spawn_app_with_graph(&fast, &[]).await;
    retry
        .reprocess(inbound["id"].as_str().expect("inbound id"))
        .await;
    fast.verify().await;
    let resent = sends_of(&fast, &id).await;
    assert_eq!(resent.len(), 1);
    assert_eq!(
        resent[0]["interactive"]["body"]["text"], "stored body",
        "rebuilt from what was stored, not recomposed"
    );
    assert_eq!(row(app.db(), "messages", &id).await["status"], "sent");
    let created = rows(&app, "tool_executions", &org).await;
    assert_eq!(created.len(), 1, "the assistant's tools ran once");
}
