//! Statuses never lost (`private.whatsapp_apply_statuses`): one that arrives before its
//! message is known is kept and applied when it is; each part of a split text has its own
//! status; a failure after Meta accepted a message raises one alert, and a 131047 one is
//! retried with the org's template.

use std::time::Duration;

use serde_json::Value;

use crate::cron::TURN;
use crate::helpers::*;

/// The inbound message's reply, once processing recorded it.
async fn reply(app: &TestApp, wamid: &str) -> Value {
    let reply = app.reply_to(wamid).await.expect("reply");
    assert_eq!(app.processed(wamid).await["status"], "processed");
    reply
}

async fn status_of_reply(app: &TestApp, reply: &Value) -> String {
    let id = reply["id"].as_str().expect("id");
    row(app.db(), "messages", id).await["status"]
        .as_str()
        .expect("status")
        .to_string()
}

#[tokio::test]
async fn a_status_before_its_wamid_is_recorded_is_applied_when_it_is() {
    let early = format!("wamid.early.{}", unique());
    let graph = fake_graph_with(KnownWamids::new(&[&early])).await;
    let app = spawn_app_with_graph(&graph, &[]).await;
    let org = TestOrg::create(app.db()).await;

    // Meta's `read` for the reply arrives first, without callback data (no message has the
    // wamid yet): kept, not dropped.
    let read = status_delivery("status_read.json", &org, &early);
    let answer: Value = app.post_webhook(&read).await.json().await.expect("json");
    assert_eq!(answer["statuses_applied"], 0, "{answer}");

    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let reply = reply(&app, &wamid).await;
    assert_eq!(reply["wa_message_id"], early.as_str());
    assert_eq!(
        status_of_reply(&app, &reply).await,
        "read",
        "applied once recorded"
    );
}

#[tokio::test]
async fn each_part_of_a_split_text_has_its_own_status() {
    let (first, second) = (
        format!("wamid.part1.{}", unique()),
        format!("wamid.part2.{}", unique()),
    );
    let graph = fake_graph_with(KnownWamids::new(&[&first, &second])).await;
    // The model answers with more than 4096 characters: a reply in two parts.
    let model = Script::new(vec![openai_text(&"word ".repeat(900), 10, 900, 0)]);
    let openai = fake_openai(&model).await;
    let (app, org) = app_with_ai_and_graph(&openai, &graph).await;
    let wamid = app.post_text(&org, &new_wa_id(), "a long story").await;
    let reply = reply(&app, &wamid).await;
    assert_eq!(sends(&graph, "text").await.len(), 2, "two parts");

    // Part 1 read, part 2 only sent: the message is as far as its least advanced part.
    app.post_webhook(&status_delivery("status_read.json", &org, &first))
        .await;
    assert_eq!(status_of_reply(&app, &reply).await, "sent");
    // Part 2's own status (matched by its wamid, not the message's first one).
    app.post_webhook(&status_delivery("status_delivered.json", &org, &second))
        .await;
    assert_eq!(status_of_reply(&app, &reply).await, "delivered");
}

#[tokio::test]
async fn a_failure_after_acceptance_raises_one_alert_and_a_131047_is_retried_as_the_template() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = spawn_app_with_graph(&graph, &[]).await;
    let org = TestOrg::create(app.db()).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let reply = reply(&app, &wamid).await;
    let reply_id = reply["id"].as_str().expect("id").to_string();
    let sent = reply["wa_message_id"].as_str().expect("wamid").to_string();

    // Meta accepted it, then could not deliver it (131047: outside the 24 h window).
    for _ in 0..2 {
        let failed = status_of("status_failed.json", &org, &sent, Some(&reply_id));
        assert_eq!(app.post_webhook(&failed).await.status(), 200);
    }
    let failed = row(app.db(), "messages", &reply_id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"][0]["code"], 131047);
    assert_eq!(alert_count(app.db(), &org.id, "delivery_failed").await, 1);

    // The retry cron sends it once more as the approved template, same callback data.
    app.cron(RETRY_FAILED).await;
    app.cron(RETRY_FAILED).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let templates: Vec<Value> = sends_of(&graph, &reply_id)
        .await
        .into_iter()
        .filter(|s| s["type"] == "template")
        .collect();
    assert_eq!(templates.len(), 1, "retried once, as the template");
    assert_eq!(templates[0]["template"]["name"], "assistant_reply");
    let retried = row(app.db(), "messages", &reply_id).await;
    assert_eq!(retried["status"], "sent");
    assert_eq!(retried["type"], "template");
}
