//! Unknown send outcomes resolved, not abandoned (`jobs::outcomes`, docs/webhook.md#outcomes):
//! a reply whose send timed out after reaching the fake Graph API is confirmed by its status,
//! or sent again once the number's status stream shows Meta never accepted it; never both.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cron::TURN;
use crate::helpers::admin::World;
use crate::helpers::reminders::{cron_org, minutes_ago, reminder, reminders, texts};
use crate::helpers::*;

/// A reply whose send timed out (the fake answers after the client gave up): `sending`, its
/// inbound message failed. Returns the graph, app, org, inbound and reply rows.
async fn unknown_outcome() -> (wiremock::MockServer, TestApp, TestOrg, Value, Value) {
    let graph = fake_graph_with_delay(FakeGraph::ok(), Duration::from_millis(1500)).await;
    let app = spawn_app_with_graph(&graph, &[("GRAPH_TIMEOUT_MS", "200")]).await;
    let org = TestOrg::create(app.db()).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let inbound = app.processed(&wamid).await;
    assert_eq!(inbound["status"], "failed", "the send timed out");
    let reply = app.reply_to(&wamid).await.expect("reply row");
    assert_eq!(reply["status"], "sending");
    (graph, app, org, inbound, reply)
}

fn id(row: &Value) -> String {
    row["id"].as_str().expect("id").to_string()
}

/// Moves the send of `reply` back by `minutes` (as if it had begun then).
async fn began_minutes_ago(reply: &str, minutes: i64) {
    psql(&format!(
        "update public.messages set sending_since = now() - interval '{minutes} minutes' \
         where id = '{reply}'"
    ))
    .await;
}

/// A status of another message of the org's number arrives now: the stream works.
async fn stream_works(app: &TestApp, org: &TestOrg) {
    let other = status_delivery("status_delivered.json", org, &new_wamid());
    assert_eq!(app.post_webhook(&other).await.status(), 200);
}

#[tokio::test]
async fn an_unknown_outcome_is_confirmed_by_its_status_and_never_resent() {
    let _turn = TURN.lock().await;
    let (graph, app, org, inbound, reply) = unknown_outcome().await;
    let reply_id = id(&reply);
    let sent = sends_of(&graph, &reply_id).await;
    assert_eq!(
        sent.len(),
        1,
        "the send carries our message id as callback data"
    );

    // A re-drive leaves it for the resolver: not answered as processed, not sent again.
    app.reprocess(&id(&inbound)).await;
    assert_eq!(
        row(app.db(), "messages", &id(&inbound)).await["status"],
        "failed"
    );

    // Its status names it by callback data, before any wamid of it is recorded.
    let status = status_of("status_sent.json", &org, &new_wamid(), Some(&reply_id));
    assert_eq!(app.post_webhook(&status).await.status(), 200);
    assert_eq!(row(app.db(), "messages", &reply_id).await["status"], "sent");
    assert_eq!(
        row(app.db(), "messages", &id(&inbound)).await["status"],
        "processed",
        "the message it answers is settled"
    );
    let entries = dead_letters(app.db(), &id(&inbound)).await;
    assert!(
        entries.iter().all(|e| e["status"] == "resolved"),
        "{entries:?}"
    );

    // Long past the grace period, with the stream working: confirmed, so never resent.
    began_minutes_ago(&reply_id, 20).await;
    stream_works(&app, &org).await;
    app.cron(RETRY_FAILED).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(sends_of(&graph, &reply_id).await.len(), 1, "sent once");
}

#[tokio::test]
async fn a_send_meta_never_accepted_is_sent_again_once() {
    let _turn = TURN.lock().await;
    let (graph, app, org, inbound, reply) = unknown_outcome().await;
    let reply_id = id(&reply);

    // Within the grace period (a worker could still be sending it): left alone.
    stream_works(&app, &org).await;
    app.cron(RETRY_FAILED).await;
    assert_eq!(
        row(app.db(), "messages", &reply_id).await["status"],
        "sending"
    );

    // Begun long ago, no status for it, and statuses of the number arrive: never accepted.
    began_minutes_ago(&reply_id, 10).await;
    // The fake answers in time now (the client's 200 ms vs its 1.5 s): the resend is taken.
    let fast = fake_graph(FakeGraph::ok()).await;
    let resolver = spawn_app_with_graph(&fast, &[]).await;
    resolver.cron(RETRY_FAILED).await;
    let resent = sends_of(&fast, &reply_id).await;
    assert_eq!(resent.len(), 1, "sent again, with the same callback data");
    assert_eq!(resent[0]["text"]["body"], reply["body"]);
    let settled = row(app.db(), "messages", &reply_id).await;
    assert_eq!(settled["status"], "sent");
    assert!(settled["wa_message_id"].as_str().is_some());
    assert_eq!(
        row(app.db(), "messages", &id(&inbound)).await["status"],
        "processed"
    );

    // Settled: later runs send nothing more.
    began_minutes_ago(&reply_id, 10).await;
    resolver.cron(RETRY_FAILED).await;
    assert_eq!(sends_of(&fast, &reply_id).await.len(), 1);
    assert_eq!(sends_of(&graph, &reply_id).await.len(), 1);
}

#[tokio::test]
async fn a_late_status_stops_the_resend_and_a_silent_stream_raises_an_alert() {
    let _turn = TURN.lock().await;
    let (graph, app, org, _inbound, reply) = unknown_outcome().await;
    let reply_id = id(&reply);

    // No status of the number since the send began: nothing is guessed, and after a long
    // wait an operator is told.
    began_minutes_ago(&reply_id, 45).await;
    psql(&format!(
        "update private.whatsapp_status_stream s set received_at = now() - interval '50 minutes' \
         from public.whatsapp_numbers n \
         where n.id = s.whatsapp_number_id and n.phone_number_id = '{}'",
        org.phone_number_id
    ))
    .await;
    app.cron(RETRY_FAILED).await;
    assert_eq!(
        row(app.db(), "messages", &reply_id).await["status"],
        "sending"
    );
    assert_eq!(
        alert_count(app.db(), &org.id, "outcome_unresolved").await,
        1
    );

    // Its status arrives late, then the stream moves on: confirmed, not sent a second time.
    let status = status_of("status_delivered.json", &org, &new_wamid(), Some(&reply_id));
    app.post_webhook(&status).await;
    stream_works(&app, &org).await;
    app.cron(RETRY_FAILED).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(sends_of(&graph, &reply_id).await.len(), 1, "no double send");
    assert_eq!(
        row(app.db(), "messages", &reply_id).await["status"],
        "delivered"
    );
}

#[tokio::test]
async fn a_reminder_whose_send_timed_out_is_confirmed_by_its_status_or_sent_again_once() {
    let _turn = TURN.lock().await;
    let slow = fake_graph_with_delay(FakeGraph::ok(), Duration::from_millis(1500)).await;
    let (app, org, owner) = cron_org(&slow, &[("GRAPH_TIMEOUT_MS", "200")], 1).await;
    let db = app.db();
    let names = texts(2);
    let due = minutes_ago(1);
    let ids = reminders(db, &org, &owner, &names, due, "none").await;
    app.cron(CHECK_REMINDERS).await;
    let message = |n: usize| {
        let id = ids[n].clone();
        async move { select(db, "messages", &[("reminder_id", eq(id))]).await[0].clone() }
    };
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(message(n).await["status"], "sending", "outcome unknown");
        assert_eq!(reminder(db, id).await["status"], "failed");
    }

    // The first one's status arrives: confirmed, its occurrence sent.
    let first = id(&message(0).await);
    app.post_webhook(&status_of(
        "status_sent.json",
        &org,
        &new_wamid(),
        Some(&first),
    ))
    .await;
    assert_eq!(message(0).await["status"], "sent");
    assert_eq!(reminder(db, &ids[0]).await["status"], "sent");

    // The second never got one while the number's stream moved on: sent again, once.
    let second = id(&message(1).await);
    began_minutes_ago(&second, 10).await;
    let fast = fake_graph(FakeGraph::ok()).await;
    let resolver = spawn_app_with_graph(&fast, &[]).await;
    resolver.cron(RETRY_FAILED).await;
    resolver.cron(RETRY_FAILED).await;
    assert_eq!(sends_of(&fast, &second).await.len(), 1);
    assert!(
        sends_of(&fast, &first).await.is_empty(),
        "confirmed: never resent"
    );
    assert_eq!(message(1).await["status"], "sent");
    assert_eq!(reminder(db, &ids[1]).await["status"], "sent");
}

#[tokio::test]
async fn a_staff_message_whose_send_timed_out_is_sent_again_once_if_never_accepted() {
    let _turn = TURN.lock().await;
    let slow = fake_graph_with_delay(FakeGraph::ok(), Duration::from_millis(1500)).await;
    let w = World::with(|env| {
        use_graph(env, &slow);
        set(env, &[("GRAPH_TIMEOUT_MS", "200")]);
    })
    .await;
    let path = format!("/api/admin/conversations/{}/messages", w.a.conversation);
    let text = json!({"text": "We are on it"});
    let (status, body) = w.admin_post(&path, &w.token(w.admin_a), &text).await;
    assert_eq!(status, 502, "{body}");
    let filters = [("payload->>sent_by", eq(w.admin_a))];
    let staff = id(&select(w.db(), "messages", &filters).await[0]);
    assert_eq!(row(w.db(), "messages", &staff).await["status"], "sending");

    began_minutes_ago(&staff, 10).await;
    stream_works(&w.app, &w.a.org).await;
    let fast = fake_graph(FakeGraph::ok()).await;
    let resolver = spawn_app_with_graph(&fast, &[]).await;
    resolver.cron(RETRY_FAILED).await;
    resolver.cron(RETRY_FAILED).await;
    let resent = sends_of(&fast, &staff).await;
    assert_eq!(resent.len(), 1, "sent again once");
    assert_eq!(resent[0]["text"]["body"], "We are on it");
    assert_eq!(row(w.db(), "messages", &staff).await["status"], "sent");
}

/// A staff message of `seeded`'s conversation, `sending` since 10 minutes ago, written
/// straight to the table (as no route would); its id.
async fn staff_sending(seeded: &crate::helpers::admin::Seeded, body: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    psql(&format!(
        "insert into public.messages (id, org_id, conversation_id, contact_id, direction, type, \
           body, status) \
         select '{id}', org_id, id, contact_id, 'outbound', 'text', $b${body}$b$, 'sending' \
         from public.conversations where id = '{}'",
        seeded.conversation
    ))
    .await;
    began_minutes_ago(&id, 10).await;
    id
}

#[tokio::test]
async fn a_staff_text_past_the_send_limit_fails_alone_and_other_orgs_are_resolved() {
    let _turn = TURN.lock().await;
    let w = World::new().await;
    let poison = staff_sending(&w.a, &"x".repeat(5000)).await;
    let other = staff_sending(&w.b, "We are on it").await;
    stream_works(&w.app, &w.a.org).await;
    stream_works(&w.app, &w.b.org).await;

    let fast = fake_graph(FakeGraph::ok()).await;
    let resolver = spawn_app_with_graph(&fast, &[]).await;
    resolver.cron(RETRY_FAILED).await;
    let failed = row(w.db(), "messages", &poison).await;
    assert_eq!(failed["status"], "failed", "failed on its own");
    assert_eq!(
        failed["error"]["message"],
        "the text is longer than 4096 characters"
    );
    assert!(
        sends_of(&fast, &poison).await.is_empty(),
        "never split and sent"
    );
    assert_eq!(
        sends_of(&fast, &other).await.len(),
        1,
        "org B resolved in the same run"
    );
    assert_eq!(row(w.db(), "messages", &other).await["status"], "sent");
}
