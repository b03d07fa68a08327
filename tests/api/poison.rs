//! No input stops the service for anyone (issue 11), on the real database with the Graph API
//! faked: hostile texts end processed or dead-lettered and never stop the crons; a panic is its
//! item's failure; an item past `MAX_ATTEMPTS` (a failing send, an unreadable stored row, a
//! crash mid-attempt) ends discarded with an alert and is never claimed again; one org's poison
//! never stops another org's work in the same run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::cron::TURN;
use crate::helpers::lib::{Caller, Postgrest};
use crate::helpers::reminders::cron_app;
use crate::helpers::*;

/// The texts that once stopped the service: overflowing durations, impossible dates, control
/// characters and bidirectional marks.
const HOSTILE: [&str; 4] = [
    "remind me in 999999999999999min to x",
    "remind me in 99999999999 days to y",
    "remind me on 31/02/99999 to z",
    "remind me\u{1}\u{7}\u{1b}[2J\u{8} in \u{202e}5 min\u{202c}\u{200f} to \u{7f}\u{feff}w",
];

fn ago(seconds: i64) -> DateTime<Utc> {
    Utc::now() - chrono::TimeDelta::seconds(seconds)
}

/// Makes the dead letter entry of `reference` due now (as if its backoff had passed).
async fn make_due(db: &Postgrest, reference: &str) {
    db.from("dead_letter_queue", Caller::Service)
        .eq("ref", reference)
        .update(&json!({"next_attempt_at": ago(60)}))
        .execute()
        .await
        .expect("make due");
}

async fn entries(db: &Postgrest, reference: &str) -> Vec<Value> {
    select(
        db,
        "dead_letter_queue",
        &[("ref", format!("eq.{reference}"))],
    )
    .await
}

async fn alerts(db: &Postgrest, org: &TestOrg, kind: &str) -> Vec<Value> {
    select(
        db,
        "alerts",
        &[
            ("org_id", format!("eq.{}", org.id)),
            ("kind", format!("eq.{kind}")),
        ],
    )
    .await
}

/// The stored inbound message `wamid`, once its processing has ended (processed or failed);
/// never left `processing`.
async fn settled(app: &TestApp, wamid: &str) -> Value {
    let message = app.processed(wamid).await;
    assert_ne!(message["status"], "processing");
    message
}

/// A message of `org` stored as `status`, from a contact whose stored `wa_id` the pipeline
/// cannot read (25 digits: the column accepts it, `WaId` does not): its claim never decodes.
async fn unreadable_message(db: &Postgrest, org: &TestOrg, status: &str) -> String {
    let number = &select(
        db,
        "whatsapp_numbers",
        &[("org_id", format!("eq.{}", org.id))],
    )
    .await[0];
    let contact = uuid::Uuid::new_v4().to_string();
    let conversation = uuid::Uuid::new_v4().to_string();
    let id = uuid::Uuid::new_v4().to_string();
    let wa_id = format!("{}{}", new_wa_id(), "0000000000000");
    insert(
        db,
        "contacts",
        json!({"id": contact, "org_id": org.id, "wa_id": wa_id}),
    )
    .await;
    insert(
        db,
        "conversations",
        json!({
            "id": conversation, "org_id": org.id, "contact_id": contact,
            "whatsapp_number_id": number["id"], "last_inbound_at": Utc::now(),
        }),
    )
    .await;
    insert(
        db,
        "messages",
        json!({
            "id": id, "org_id": org.id, "conversation_id": conversation, "contact_id": contact,
            "direction": "inbound", "type": "text", "body": "hello",
            "wa_message_id": format!("wamid.test.{}", uuid::Uuid::new_v4().simple()),
            "status": status, "attempts": 1, "created_at": ago(3600),
        }),
    )
    .await;
    id
}

#[tokio::test]
async fn the_isolation_helper_turns_a_panicking_future_into_that_items_failure() {
    let items = futures_util::future::join_all((0..3).map(|i| {
        assistant::inbound::isolated(async move {
            tokio::task::yield_now().await;
            assert_ne!(i, 1, "item {i} panics");
            i * 10
        })
    }))
    .await;
    assert_eq!(
        items,
        vec![Ok(0), Err(assistant::inbound::Panicked), Ok(20)],
        "the panic is item 1's alone"
    );
}

#[tokio::test]
async fn hostile_texts_are_acknowledged_end_processed_or_dead_lettered_and_the_crons_go_on() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[]).await;
    let db = app.state.db().expect("db");
    let org = TestOrg::create(db).await;

    // Another org's message that failed once (Meta refused it), due for a retry.
    let other = TestOrg::create(db).await;
    let refusing = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let (body, other_wamid) = text_delivery(&other, &new_wa_id(), "hello");
    assert_eq!(
        cron_app(&refusing, &[])
            .await
            .post_webhook(&body)
            .await
            .status(),
        200
    );
    let other_id = settled(&app, &other_wamid).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    make_due(db, &other_id).await;

    let mut hostile = Vec::new();
    for text in HOSTILE {
        let (body, wamid) = text_delivery(&org, &new_wa_id(), text);
        let started = std::time::Instant::now();
        assert_eq!(
            app.post_webhook(&body).await.status(),
            200,
            "acknowledged: {text:?}"
        );
        let message = settled(&app, &wamid).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "within seconds"
        );
        let id = message["id"].as_str().expect("id").to_string();
        if message["status"] == "failed" {
            let dead = entries(db, &id).await;
            assert_eq!(dead.len(), 1, "dead-lettered: {text:?}");
            let error = dead[0]["error"].as_str().expect("error");
            assert!(
                !error.contains("99999") && !error.contains("to x"),
                "the stored error quotes no message text: {error}"
            );
        } else {
            assert_eq!(message["status"], "processed", "{text:?}");
        }
        hostile.push(id);
    }
    // One of them as if its worker had died mid-attempt: processing, lease run out.
    update(
        db,
        "messages",
        ("id", &hostile[0]),
        json!({"status": "processing", "lease_until": ago(60)}),
    )
    .await;
    for id in &hostile {
        make_due(db, id).await;
    }

    let summary = app.cron(RETRY_FAILED).await;
    assert!(summary["resolved"].as_u64() >= Some(1), "{summary}");
    app.cron(CHECK_REMINDERS).await;
    app.cron(RETRY_FAILED).await;
    assert_eq!(
        row(db, "messages", &other_id).await["status"],
        "processed",
        "the other org's dead letter was processed"
    );
    assert_eq!(entries(db, &other_id).await[0]["status"], "resolved");
    for id in &hostile {
        let message = row(db, "messages", id).await;
        assert!(
            ["processed", "failed"].contains(&message["status"].as_str().unwrap_or_default()),
            "never stuck: {message}"
        );
    }

    // A normal message afterwards is answered as ever.
    let (body, wamid) = text_delivery(&org, &new_wa_id(), "hello");
    app.post_webhook(&body).await;
    assert_eq!(settled(&app, &wamid).await["status"], "processed");
}

#[tokio::test]
async fn a_message_failing_max_attempts_times_ends_discarded_with_an_alert_and_is_never_claimed_again(
) {
    let _turn = TURN.lock().await;
    let refusing = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let app = cron_app(&refusing, &[]).await;
    let db = app.state.db().expect("db");
    let org = TestOrg::create(db).await;
    let (body, wamid) = text_delivery(&org, &new_wa_id(), "hello");
    app.post_webhook(&body).await;
    let id = settled(&app, &wamid).await["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Attempts 2..=5, one per retry-failed run.
    for attempt in 2..=5 {
        assert_eq!(entries(db, &id).await[0]["status"], "pending");
        make_due(db, &id).await;
        app.cron(RETRY_FAILED).await;
        assert_eq!(row(db, "messages", &id).await["attempts"], attempt);
    }
    let message = row(db, "messages", &id).await;
    assert_eq!(message["status"], "failed");
    assert!(message["discarded_at"].is_string(), "{message}");
    let dead = entries(db, &id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["status"], "discarded");
    assert_eq!(dead[0]["attempts"], 5);
    let alert = &alerts(db, &org, "dead_letter_discarded").await;
    assert_eq!(alert.len(), 1);
    let said = alert[0]["message"].as_str().expect("alert message");
    assert!(
        said.contains("5 attempts") && said.contains("131026"),
        "the alert names the reason: {said}"
    );

    let sent = sends(&refusing, "text").await.len();
    for _ in 0..2 {
        make_due(db, &id).await;
        app.cron(RETRY_FAILED).await;
    }
    assert_eq!(
        row(db, "messages", &id).await["attempts"],
        5,
        "never claimed again"
    );
    assert_eq!(
        sends(&refusing, "text").await.len(),
        sent,
        "never sent again"
    );
    let claim: Value = db
        .rpc("whatsapp_claim_message", Caller::Service)
        .args(&json!({"p_message_id": id}))
        .fetch()
        .await
        .expect("claim")
        .data;
    assert_eq!(claim, Value::Null, "a discarded message cannot be claimed");
}

#[tokio::test]
async fn a_message_whose_attempts_all_crashed_is_discarded_by_its_next_claim() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[]).await;
    let db = app.state.db().expect("db");
    let org = TestOrg::create(db).await;
    let (body, wamid) = text_delivery(&org, &new_wa_id(), "hello");
    app.post_webhook(&body).await;
    let id = settled(&app, &wamid).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Five claims, each ended by a crash: processing, lease run out, no error recorded.
    update(
        db,
        "messages",
        ("id", &id),
        json!({"status": "processing", "attempts": 5, "lease_until": ago(60), "error": null}),
    )
    .await;

    let summary = app.cron(RETRY_FAILED).await;
    assert!(
        summary["messages_redriven"].as_u64() >= Some(1),
        "{summary}"
    );
    let message = row(db, "messages", &id).await;
    assert_eq!(message["status"], "failed");
    assert_eq!(message["attempts"], 5, "no sixth attempt");
    assert!(message["discarded_at"].is_string());
    let dead = entries(db, &id).await;
    assert_eq!(dead[0]["status"], "discarded");
    assert!(dead[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("did not finish")));
    assert_eq!(alerts(db, &org, "dead_letter_discarded").await.len(), 1);
    app.cron(RETRY_FAILED).await;
    assert_eq!(row(db, "messages", &id).await["attempts"], 5);
}

#[tokio::test]
async fn a_reminder_past_its_last_attempt_is_discarded_by_the_claim_and_never_sent() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[]).await;
    let db = app.state.db().expect("db");
    let org = TestOrg::create(db).await;
    let (body, wamid) = text_delivery(&org, &new_wa_id(), "hello");
    app.post_webhook(&body).await;
    let message = settled(&app, &wamid).await;
    let id = uuid::Uuid::new_v4().to_string();
    let text = format!("poison {}", uuid::Uuid::new_v4().simple());
    // Claimed five times, each run dying before it recorded anything.
    insert(
        db,
        "reminders",
        json!({
            "id": id, "org_id": org.id, "contact_id": message["contact_id"], "text": text,
            "due_at": ago(120), "attempts": 5, "lease_until": ago(10),
        }),
    )
    .await;

    let summary = app.cron(CHECK_REMINDERS).await;
    assert!(summary["failed"].as_u64() >= Some(1), "{summary}");
    assert_eq!(row(db, "reminders", &id).await["status"], "failed");
    assert_eq!(row(db, "reminders", &id).await["attempts"], 5);
    let dead = entries(db, &id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["status"], "discarded");
    assert_eq!(alerts(db, &org, "dead_letter_discarded").await.len(), 1);
    app.cron(CHECK_REMINDERS).await;
    app.cron(RETRY_FAILED).await;
    let sent = sends(&graph, "text").await;
    assert!(
        !sent.iter().any(|s| s.to_string().contains(&text)),
        "never sent"
    );
}

#[tokio::test]
async fn one_orgs_poison_dead_letter_does_not_stop_another_orgs_entry_in_the_same_run() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[]).await;
    let db = app.state.db().expect("db");

    // Org A: a failed message whose stored rows cannot be read, its entry due.
    let poisoned = TestOrg::create(db).await;
    let bad = unreadable_message(db, &poisoned, "failed").await;
    insert(
        db,
        "dead_letter_queue",
        json!({
            "org_id": poisoned.id, "kind": "inbound_message", "ref": bad,
            "error": "earlier failure", "attempts": 1, "next_attempt_at": ago(60),
        }),
    )
    .await;
    // Org B: a message Meta refused once, its entry due in the same run.
    let healthy = TestOrg::create(db).await;
    let refusing = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let (body, wamid) = text_delivery(&healthy, &new_wa_id(), "hello");
    cron_app(&refusing, &[]).await.post_webhook(&body).await;
    let good = settled(&app, &wamid).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    make_due(db, &good).await;

    let summary = app.cron(RETRY_FAILED).await;
    assert!(summary["resolved"].as_u64() >= Some(1), "{summary}");
    assert_eq!(row(db, "messages", &good).await["status"], "processed");
    assert_eq!(entries(db, &good).await[0]["status"], "resolved");
    let message = row(db, "messages", &bad).await;
    assert_eq!(message["status"], "failed", "failed on its own");
    assert!(message["error"]["message"]
        .as_str()
        .is_some_and(|e| e.contains("cannot be read")));
    let entry = &entries(db, &bad).await[0];
    assert_eq!(entry["status"], "pending");
    assert_eq!(entry["attempts"], 2);

    // Its last attempt: discarded, and the healthy org has no alert of it.
    update(db, "messages", ("id", &bad), json!({"attempts": 4})).await;
    make_due(db, &bad).await;
    app.cron(RETRY_FAILED).await;
    assert_eq!(entries(db, &bad).await[0]["status"], "discarded");
    assert_eq!(
        alerts(db, &poisoned, "dead_letter_discarded").await.len(),
        1
    );
    assert!(alerts(db, &healthy, "dead_letter_discarded")
        .await
        .is_empty());
}
