//! `/api/cron/check-reminders` and `/api/cron/retry-failed` on the real database, with the Graph
//! API faked: authentication, exactly-once sends under concurrent and crashed runs, the 24 h
//! window, recurrence across DST, retries, dead letters, stuck messages and retention; opt-out
//! on re-drives, recurring series that survive a failed occurrence, the time budget.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::lib::Caller;
use crate::helpers::reminders::*;
use crate::helpers::*;

/// A cron run claims every due row of the database, not only its test's: the tests that run
/// the cron routes (here, in poison.rs and in tenant.rs) take turns, so that one test's failing
/// Graph API never gets another's work.
pub(crate) static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHECK: &str = CHECK_REMINDERS;
const RETRY: &str = RETRY_FAILED;

#[tokio::test]
async fn cron_routes_need_the_bearer_secret_and_stay_closed_without_one() {
    let app = spawn_app().await;
    for path in [CHECK, RETRY] {
        let cases: [(&str, Option<String>); 4] = [
            ("no header", None),
            ("wrong secret", Some("Bearer not-the-secret".into())),
            ("other scheme", Some(format!("Basic {CRON_SECRET}"))),
            ("no scheme", Some(CRON_SECRET.into())),
        ];
        for (case, header) in cases {
            let response = app.get_cron(path, header.as_deref()).await;
            assert_eq!(response.status(), 401, "{path}: {case}");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], "unauthorized");
        }
        let post = app
            .request(Method::POST, path, Some(CRON_SECRET), None)
            .await;
        assert_eq!(post.status(), 405, "{path}: Vercel Cron calls GET");
    }

    let unconfigured = spawn_app_with(|env| {
        env.remove("CRON_SECRET");
    })
    .await;
    for path in [CHECK, RETRY] {
        for header in ["", "Bearer ", "Bearer anything"] {
            let response = unconfigured.get_cron(path, Some(header)).await;
            assert_eq!(response.status(), 503, "{path}: never open");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], "not_configured");
            assert!(has_text(&body["error"]["message"], "CRON_SECRET"));
        }
    }

    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[]).await;
    for path in [CHECK, RETRY] {
        let summary = app.cron(path).await;
        assert!(summary["duration_ms"].is_u64(), "{summary}");
    }
}

#[tokio::test]
async fn inside_the_window_a_text_outside_it_the_reminder_template() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[]).await;
    let db = app.db();
    let org = TestOrg::create(db).await;
    org.update(
        db,
        "assistant_settings",
        json!({"reminder_template": "reminder_notice", "template_language": "es_ES"}),
    )
    .await;
    let (open, closed, opted_out) = (
        contact(db, &org, 1).await,
        contact(db, &org, 30).await,
        contact(db, &org, 1).await,
    );
    update(
        db,
        "contacts",
        ("id", &opted_out.id),
        json!({"opted_out": true}),
    )
    .await;
    let names = texts(3);
    let due = minutes_ago(1);
    let open_id = &reminders(db, &org, &open, &names[0..1], due, "none").await[0];
    let closed_id = &reminders(db, &org, &closed, &names[1..2], due, "none").await[0];
    let skipped_id = &reminders(db, &org, &opted_out, &names[2..3], due, "none").await[0];

    // An org without a reminder template cannot reach a closed window.
    let bare = TestOrg::create(db).await;
    let stranded = contact(db, &bare, 30).await;
    let stranded_id = &reminders(db, &bare, &stranded, &texts(1), due, "none").await[0];

    let summary = app.cron(CHECK).await;
    assert!(summary["sent"].as_u64() >= Some(2), "{summary}");
    assert!(summary["skipped"].as_u64() >= Some(1), "{summary}");

    let text = sends(&graph, "text")
        .await
        .into_iter()
        .find(|b| b["text"]["body"] == format!("⏰ {}", names[0]))
        .expect("a freeform text inside the window");
    assert_eq!(text["to"], open.wa_id.as_str());
    let template = sends(&graph, "template")
        .await
        .into_iter()
        .find(|b| {
            b["template"]["components"][0]["parameters"][0]["text"] == format!("⏰ {}", names[1])
        })
        .expect("the template outside the window");
    assert_eq!(template["to"], closed.wa_id.as_str());
    assert_eq!(template["template"]["name"], "reminder_notice");
    assert_eq!(template["template"]["language"]["code"], "es_ES");
    assert_eq!(
        sent_counts(&graph).await.get(&names[2]),
        None,
        "opted out: never sent"
    );

    for (id, kind, conversation) in [
        (open_id, "text", &open.conversation_id),
        (closed_id, "template", &closed.conversation_id),
    ] {
        let row = reminder(db, id).await;
        assert_eq!(row["status"], "sent");
        let wamid = row["sent_wa_message_id"].as_str().expect("wamid recorded");
        let message = &select(db, "messages", &[("reminder_id", eq(id))]).await;
        assert_eq!(message.len(), 1);
        assert_eq!(message[0]["type"], kind);
        assert_eq!(message[0]["status"], "sent");
        assert_eq!(message[0]["direction"], "outbound");
        assert_eq!(message[0]["wa_message_id"], wamid);
        assert_eq!(&message[0]["conversation_id"], conversation);
    }
    let skipped = reminder(db, skipped_id).await;
    assert_eq!(skipped["status"], "cancelled");

    let failed = reminder(db, stranded_id).await;
    assert_eq!(failed["status"], "failed");
    assert!(has_text(&failed["last_error"], "reminder_template"));
    let dead = dead_letters(db, stranded_id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["kind"], "reminder");
    assert_eq!(alert_count(db, &bare.id, "reminder_failed").await, 1);
}

#[tokio::test]
async fn four_concurrent_runs_send_each_of_1000_due_reminders_exactly_once() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let mut apps = Vec::new();
    for _ in 0..4 {
        apps.push(cron_app(&graph, &[]).await);
    }
    let db = apps[0].db();
    let org = TestOrg::create(db).await;
    let names = texts(1000);
    let mut ids = Vec::new();
    for chunk in names.chunks(50) {
        let owner = contact(db, &org, 1).await;
        ids.extend(reminders(db, &org, &owner, chunk, minutes_ago(5), "none").await);
    }

    let runs = futures_util::future::join_all(apps.iter().map(|app| app.cron(CHECK))).await;
    let sent: u64 = runs.iter().filter_map(|s| s["sent"].as_u64()).sum();
    assert!(sent >= 1000, "{runs:?}");
    assert!(
        runs.iter().filter(|s| s["sent"].as_u64() > Some(0)).count() > 1,
        "the runs shared the work: {runs:?}"
    );

    let counts = sent_counts(&graph).await;
    for name in &names {
        assert_eq!(counts.get(name), Some(&1), "{name} sent exactly once");
    }
    let rows = org.rows(db, "reminders", &[("status", eq("sent"))]).await;
    assert_eq!(rows.len(), 1000);
    let messages = org
        .rows(db, "messages", &[("direction", eq("outbound"))])
        .await;
    assert_eq!(messages.len(), 1000, "one outbound message per reminder");
    assert!(messages.iter().all(|m| m["status"] == "sent"));
}

#[tokio::test]
async fn a_run_killed_mid_batch_leaves_its_reminders_to_the_next_run_after_the_lease() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let (app, org, owner) = cron_org(&graph, &[], 1).await;
    let db = app.db();
    let names = texts(5);
    let ids = reminders(db, &org, &owner, &names, minutes_ago(2), "none").await;

    // The crashed run: it claimed a batch with a short lease and had begun sending one.
    let claimed: Value = db
        .rpc("cron_claim_reminders", Caller::Service)
        .args(&json!({"p_limit": 1000, "p_lease_seconds": 2}))
        .fetch()
        .await
        .expect("claim")
        .data;
    let claims = claimed["reminders"].as_array().expect("claims");
    let in_flight = claims
        .iter()
        .find(|c| c["id"] == ids[0].as_str())
        .expect("ours were claimed");
    assert_eq!(
        claims
            .iter()
            .filter(|c| ids.contains(&c["id"].as_str().unwrap_or_default().to_string()))
            .count(),
        5
    );
    let begun: Option<String> = db
        .rpc("cron_begin_reminder", Caller::Service)
        .args(&json!({
            "p_reminder_id": in_flight["id"], "p_token": in_flight["token"],
            "p_conversation_id": in_flight["conversation_id"], "p_type": "text",
            "p_body": "in flight", "p_lease_seconds": 2,
        }))
        .fetch()
        .await
        .expect("begin")
        .data;
    assert!(begun.is_some());

    app.cron(CHECK).await;
    let counts = sent_counts(&graph).await;
    assert!(
        names.iter().all(|n| !counts.contains_key(n)),
        "leased: not sent"
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.cron(CHECK).await;
    app.cron(CHECK).await;
    let counts = sent_counts(&graph).await;
    for name in &names[1..] {
        assert_eq!(counts.get(name), Some(&1), "{name} sent once");
    }
    assert_eq!(
        counts.get(&names[0]),
        None,
        "outcome unknown: never sent again"
    );
    for id in &ids[1..] {
        assert_eq!(reminder(db, id).await["status"], "sent");
    }
    let unknown = reminder(db, &ids[0]).await;
    assert_eq!(unknown["status"], "failed");
    assert!(has_text(&unknown["last_error"], "outcome unknown"));
    let message = &select(db, "messages", &[("reminder_id", eq(&ids[0]))]).await[0];
    assert_eq!(message["status"], "sending", "left to the outcome resolver");
    assert_eq!(
        alert_count(db, &org.id, "reminder_outcome_unknown").await,
        1
    );
}

#[tokio::test]
async fn a_recurring_reminder_is_rescheduled_at_its_local_time_across_a_dst_change() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let (app, org, owner) = cron_org(&graph, &[], 1).await;
    let db = app.db();
    let zone = chrono_tz::America::New_York;
    let expected = next_local(zone, 9, Utc::now());
    let offset = |at: DateTime<Utc>| at.with_timezone(&zone).offset().to_string();
    // Due at 09:00 local on a day of the other season (EST in January, EDT in July).
    let year: i32 = expected
        .with_timezone(&zone)
        .format("%Y")
        .to_string()
        .parse()
        .expect("year");
    let due = [year, year - 1]
        .into_iter()
        .flat_map(|year| [(year, 7), (year, 1)])
        .map(|(year, month)| {
            let local = chrono::NaiveDate::from_ymd_opt(year, month, 15)
                .and_then(|date| date.and_hms_opt(9, 0, 0))
                .expect("date");
            zone.from_local_datetime(&local)
                .single()
                .expect("09:00 exists")
                .with_timezone(&Utc)
        })
        .find(|due| offset(*due) != offset(expected) && *due < Utc::now())
        .expect("a past day in the other season");
    let names = texts(1);
    let id = &reminders(db, &org, &owner, &names, due, "daily").await[0];

    let summary = app.cron(CHECK).await;
    assert!(summary["rescheduled"].as_u64() >= Some(1), "{summary}");
    let row = reminder(db, id).await;
    assert_eq!(row["status"], "pending");
    assert_eq!(row["attempts"], 0);
    assert!(row["sent_wa_message_id"].is_string());
    let next: DateTime<Utc> = row["due_at"]
        .as_str()
        .expect("due_at")
        .parse()
        .expect("time");
    assert_eq!(
        next,
        expected,
        "09:00 {} the next day it occurs",
        offset(expected)
    );
    assert_ne!(
        next.format("%H").to_string(),
        due.format("%H").to_string(),
        "the UTC hour moved with DST"
    );

    app.cron(CHECK).await;
    assert_eq!(
        sent_counts(&graph).await.get(&names[0]),
        Some(&1),
        "not due again yet"
    );
}

#[tokio::test]
async fn a_failing_send_is_retried_then_dead_lettered_and_retry_failed_resolves_it() {
    let _turn = TURN.lock().await;
    let failing = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let (app, org, owner) = cron_org(&failing, &[], 1).await;
    let db = app.db();
    let names = texts(1);
    let id = &reminders(db, &org, &owner, &names, minutes_ago(1), "none").await[0];

    let summary = app.cron(CHECK).await;
    assert!(summary["retrying"].as_u64() >= Some(2), "{summary}");
    assert!(summary["failed"].as_u64() >= Some(1), "{summary}");
    assert_eq!(
        sent_counts(&failing).await.get(&names[0]),
        Some(&3),
        "three attempts"
    );
    let row = reminder(db, id).await;
    assert_eq!(row["status"], "failed");
    assert_eq!(row["attempts"], 3);
    assert!(has_text(&row["last_error"], "131026"));
    let dead = dead_letters(db, id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["kind"], "reminder");
    assert_eq!(dead[0]["status"], "pending");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(alert_count(db, &org.id, "reminder_failed").await, 1);
    let messages = select(db, "messages", &[("reminder_id", eq(id))]).await;
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m["status"] == "failed"));

    // The fault is gone.
    let graph = fake_graph(FakeGraph::ok()).await;
    let fixed = cron_app(&graph, &[]).await;
    let summary = fixed.cron(RETRY).await;
    assert!(summary["resolved"].as_u64() >= Some(1), "{summary}");
    assert_eq!(sent_counts(&graph).await.get(&names[0]), Some(&1));
    let row = reminder(db, id).await;
    assert_eq!(row["status"], "sent");
    assert_eq!(row["attempts"], 4);
    let dead = &dead_letters(db, id).await[0];
    assert_eq!(dead["status"], "resolved");
    assert!(dead["resolved_at"].is_string());
    fixed.cron(RETRY).await;
    fixed.cron(CHECK).await;
    assert_eq!(sent_counts(&graph).await.get(&names[0]), Some(&1), "once");
}

#[tokio::test]
async fn retry_failed_reprocesses_dead_lettered_and_stuck_messages_and_discards_the_exhausted() {
    let _turn = TURN.lock().await;
    let failing = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let broken = cron_app(&failing, &[]).await;
    let db = broken.db();
    let org = TestOrg::create(db).await;
    let run = unique();
    // A command whose reply names it: each reply is recognisable, and its tool must run once.
    let said = |what: &str| format!("remind me to {what} {run} in 10 minutes");
    let (first, first_wamid) = text_delivery(&org, &new_wa_id(), &said("first"));
    let (second, second_wamid) = text_delivery(&org, &new_wa_id(), &said("second"));
    broken.post_webhook(&first).await;
    broken.post_webhook(&second).await;
    let first_id = broken.processed(&first_wamid).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let second_id = broken.processed(&second_wamid).await["id"]
        .as_str()
        .expect("id")
        .to_string();

    // The second has had all but its last attempt; both entries are due.
    make_due(db, &first_id, None, minutes_ago(1)).await;
    make_due(db, &second_id, Some(4), minutes_ago(1)).await;
    update(db, "messages", ("id", &second_id), json!({"attempts": 4})).await;
    broken.cron(RETRY).await;
    let entry = |id: String| async move { dead_letters(db, &id).await[0].clone() };
    let first_entry = entry(first_id.clone()).await;
    assert_eq!(first_entry["status"], "pending");
    assert_eq!(first_entry["attempts"], 2);
    let second_entry = entry(second_id.clone()).await;
    assert_eq!(second_entry["status"], "discarded");
    assert_eq!(second_entry["attempts"], 5);
    assert_eq!(alert_count(db, &org.id, "dead_letter_discarded").await, 1);

    // A message stored while the backlog was full, never processed.
    let owner = contact(db, &org, 0).await;
    let stuck_wamid = new_wamid();
    insert(
        db,
        "messages",
        json!({
            "org_id": org.id, "conversation_id": owner.conversation_id, "contact_id": owner.id,
            "direction": "inbound", "wa_message_id": stuck_wamid, "type": "text", "body": said("stuck"),
            "status": "received", "created_at": minutes_ago(10),
        }),
    )
    .await;

    make_due(db, &first_id, None, minutes_ago(1)).await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let fixed = cron_app(&graph, &[]).await;
    let summary = fixed.cron(RETRY).await;
    assert!(
        summary["messages_redriven"].as_u64() >= Some(1),
        "{summary}"
    );
    assert!(summary["resolved"].as_u64() >= Some(1), "{summary}");
    assert_eq!(entry(first_id.clone()).await["status"], "resolved");
    assert_eq!(
        fixed.reply_to(&first_wamid).await.expect("answered")["status"],
        "sent"
    );
    assert_eq!(
        fixed.reply_to(&stuck_wamid).await.expect("answered")["status"],
        "sent"
    );
    assert_eq!(
        fixed.processed(&second_wamid).await["status"],
        "failed",
        "given up"
    );

    fixed.cron(RETRY).await;
    // A reminder's confirmation goes as reply buttons.
    let replies: Vec<String> = sends(&graph, "interactive")
        .await
        .iter()
        .filter_map(|b| b["interactive"]["body"]["text"].as_str().map(str::to_owned))
        .filter(|b| b.contains(&run))
        .collect();
    assert_eq!(
        replies.len(),
        2,
        "first and stuck answered once each: {replies:?}"
    );
    let first_reminders = select(db, "reminders", &[("text", format!("eq.first {run}"))]).await;
    assert_eq!(
        first_reminders.len(),
        1,
        "a re-driven message sends its first reply again; its tools ran once"
    );
}

#[tokio::test]
async fn a_reminder_re_driven_after_the_contact_sent_stop_is_cancelled_not_sent() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[]).await;
    let db = app.db();
    let (org, owner, id, name) = dead_lettered_reminder(&app).await;
    assert_eq!(reminder(db, &id).await["status"], "failed");
    assert_eq!(dead_letters(db, &id).await[0]["status"], "pending");

    // The contact opts out; their message also reopens the 24 h window, so a re-drive could
    // send a freeform text without any template.
    let wamid = app.post_text(&org, &owner.wa_id, "STOP").await;
    app.processed(&wamid).await;
    let row = &select(db, "contacts", &[("id", eq(&owner.id))]).await[0];
    assert_eq!(row["opted_out"], true);

    make_due(db, &id, None, minutes_ago(1)).await;
    app.cron(RETRY).await;
    app.cron(CHECK).await;
    assert_eq!(
        sent_counts(&graph).await.get(&name),
        None,
        "opted out: never sent"
    );
    let row = reminder(db, &id).await;
    assert_eq!(row["status"], "cancelled");
    assert!(has_text(&row["last_error"], "opted out"));
    let entry = &dead_letters(db, &id).await[0];
    assert_eq!(entry["status"], "discarded");
    assert_eq!(entry["attempts"], 1, "no attempt was made");
}

#[tokio::test]
async fn a_recurring_reminder_whose_occurrence_fails_for_good_continues_at_its_next_occurrence() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let (app, org, owner) = cron_org(&graph, &[], 30).await;
    let db = app.db();
    let (due, next) = nine_am_three_days_ago();
    let names = texts(1);
    let series = reminders(db, &org, &owner, &names, due, "daily")
        .await
        .remove(0);

    // Outside the window without a template: the occurrence fails for good.
    let summary = app.cron(CHECK).await;
    assert!(summary["failed"].as_u64() >= Some(1), "{summary}");
    assert!(summary["rescheduled"].as_u64() >= Some(1), "{summary}");
    let row = reminder(db, &series).await;
    assert_eq!(row["status"], "pending", "the series continues");
    assert_eq!(
        time(&row["due_at"]),
        next,
        "at 09:00 local, the next day it occurs"
    );
    assert_eq!(row["attempts"], 0);
    assert_eq!(row["next_due_at"], Value::Null);
    let failed = occurrences(db, &series).await;
    assert_eq!(failed.len(), 1, "the failed occurrence is recorded");
    let occurrence = &failed[0];
    assert_eq!(occurrence["status"], "failed");
    assert_eq!(time(&occurrence["due_at"]), due);
    assert_eq!(occurrence["recurrence"], "none");
    assert_eq!(occurrence["text"], names[0].as_str());
    assert!(has_text(&occurrence["last_error"], "reminder_template"));
    let occurrence_id = occurrence["id"].as_str().expect("id").to_string();
    assert!(dead_letters(db, &series).await.is_empty());
    let entry = &dead_letters(db, &occurrence_id).await[0];
    assert_eq!(entry["kind"], "reminder");
    assert_eq!(entry["status"], "pending");
    assert_eq!(entry["payload"]["occurrence_of"], series.as_str());
    assert_eq!(alert_count(db, &org.id, "reminder_failed").await, 1);

    // Once a template is set, retry-failed sends the missed occurrence, once; the series stays.
    org.update(
        db,
        "assistant_settings",
        json!({"reminder_template": "reminder_notice"}),
    )
    .await;
    make_due(db, &occurrence_id, None, minutes_ago(1)).await;
    let summary = app.cron(RETRY).await;
    assert!(summary["resolved"].as_u64() >= Some(1), "{summary}");
    app.cron(RETRY).await;
    app.cron(CHECK).await;
    assert_eq!(sent_counts(&graph).await.get(&names[0]), Some(&1));
    assert_eq!(reminder(db, &occurrence_id).await["status"], "sent");
    assert_eq!(
        dead_letters(db, &occurrence_id).await[0]["status"],
        "resolved"
    );
    let row = reminder(db, &series).await;
    assert_eq!(row["status"], "pending");
    assert_eq!(time(&row["due_at"]), next);
}

#[tokio::test]
async fn a_recurring_reminder_whose_send_times_out_continues_and_the_occurrence_is_never_resent() {
    let _turn = TURN.lock().await;
    let slow = fake_graph_with_delay(FakeGraph::ok(), Duration::from_secs(2)).await;
    let (app, org, owner) = cron_org(&slow, &[("GRAPH_TIMEOUT_MS", "300")], 1).await;
    let db = app.db();
    let (due, next) = nine_am_three_days_ago();
    let names = texts(1);
    let series = reminders(db, &org, &owner, &names, due, "daily")
        .await
        .remove(0);

    let summary = app.cron(CHECK).await;
    assert!(summary["failed"].as_u64() >= Some(1), "{summary}");
    assert_eq!(
        sent_counts(&slow).await.get(&names[0]),
        Some(&1),
        "it may have reached Meta"
    );
    let row = reminder(db, &series).await;
    assert_eq!(row["status"], "pending", "the series continues");
    assert_eq!(time(&row["due_at"]), next);
    let failed = occurrences(db, &series).await;
    assert_eq!(failed.len(), 1);
    let occurrence_id = failed[0]["id"].as_str().expect("id").to_string();
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(time(&failed[0]["due_at"]), due);
    assert!(has_text(&failed[0]["last_error"], "outcome unknown"));
    let message = &select(db, "messages", &[("reminder_id", eq(&series))]).await;
    assert_eq!(message.len(), 1);
    assert_eq!(
        message[0]["status"], "sending",
        "left to the outcome resolver"
    );
    assert!(dead_letters(db, &series).await.is_empty());
    assert!(
        dead_letters(db, &occurrence_id).await.is_empty(),
        "nothing to re-drive"
    );
    assert_eq!(
        alert_count(db, &org.id, "reminder_outcome_unknown").await,
        1
    );

    let graph = fake_graph(FakeGraph::ok()).await;
    let fixed = cron_app(&graph, &[]).await;
    fixed.cron(RETRY).await;
    fixed.cron(CHECK).await;
    assert_eq!(
        sent_counts(&graph).await.get(&names[0]),
        None,
        "never sent again"
    );
    assert_eq!(reminder(db, &occurrence_id).await["status"], "failed");
}

#[tokio::test]
async fn check_reminders_begins_no_send_past_its_time_budget_and_releases_the_rest() {
    let _turn = TURN.lock().await;
    let slow = fake_graph_with_delay(FakeGraph::ok(), Duration::from_millis(1500)).await;
    let app = cron_app(
        &slow,
        &[
            ("CRON_TIME_BUDGET_MS", "1000"),
            ("CRON_CONCURRENCY", "1"),
            ("CRON_BATCH_SIZE", "5"),
        ],
    )
    .await;
    let db = app.db();
    let org = TestOrg::create(db).await;
    let owner = contact(db, &org, 1).await;
    let names = texts(5);
    let ids = reminders(db, &org, &owner, &names, long_overdue(), "none").await;

    let summary = app.cron(CHECK).await;
    let counts = sent_counts(&slow).await;
    let sent: Vec<&String> = names.iter().filter(|n| counts.contains_key(*n)).collect();
    assert_eq!(sent.len(), 1, "one send began within the budget: {summary}");
    assert!(summary["deferred"].as_u64() >= Some(4), "{summary}");
    let mut waiting = 0;
    for id in &ids {
        let row = reminder(db, id).await;
        if row["status"] == "pending" {
            waiting += 1;
            assert_eq!(row["attempts"], 0, "never begun");
            assert_eq!(row["lease_until"], Value::Null, "released");
            assert_eq!(row["lease_token"], Value::Null);
        }
    }
    assert_eq!(waiting, 4);

    // The next run takes them at once, not after the lease.
    let graph = fake_graph(FakeGraph::ok()).await;
    cron_app(&graph, &[]).await.cron(CHECK).await;
    let counts = sent_counts(&graph).await;
    let rest = names.iter().filter(|n| !sent.contains(n));
    for name in rest {
        assert_eq!(counts.get(name), Some(&1), "{name} sent by the next run");
    }
    for id in &ids {
        assert_eq!(reminder(db, id).await["status"], "sent");
    }
}

#[tokio::test]
async fn retry_failed_re_drives_nothing_past_its_time_budget_and_the_next_run_takes_the_rest() {
    let _turn = TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let app = cron_app(&graph, &[]).await;
    let db = app.db();
    let mut failed = Vec::new();
    for _ in 0..3 {
        let (org, _, id, name) = dead_lettered_reminder(&app).await;
        org.update(
            db,
            "assistant_settings",
            json!({"reminder_template": "reminder_notice"}),
        )
        .await;
        make_due(db, &id, None, Utc::now() + chrono::TimeDelta::hours(1)).await;
        failed.push((id, name));
    }
    // Stuck inbound messages of other tests would spend the hurried run's budget first.
    app.cron(RETRY).await;
    for (id, _) in &failed {
        make_due(db, id, None, long_overdue()).await;
    }

    let slow = fake_graph_with_delay(FakeGraph::ok(), Duration::from_millis(1500)).await;
    let hurried = cron_app(
        &slow,
        &[
            ("CRON_TIME_BUDGET_MS", "1000"),
            ("CRON_CONCURRENCY", "1"),
            ("CRON_LEASE_SECONDS", "2"),
        ],
    )
    .await;
    let summary = hurried.cron(RETRY).await;
    let counts = sent_counts(&slow).await;
    let sent = failed
        .iter()
        .filter(|(_, n)| counts.contains_key(n))
        .count();
    assert!(sent <= 1, "no re-drive began past the budget: {summary}");
    assert!(summary["deferred"].as_u64() >= Some(2), "{summary}");
    for (id, name) in &failed {
        if !counts.contains_key(name) {
            let entry = &dead_letters(db, id).await[0];
            assert_eq!(entry["status"], "retrying", "left to its lease");
            assert_eq!(entry["attempts"], 1, "no attempt counted");
            assert_eq!(reminder(db, id).await["status"], "failed");
        }
    }

    // Once the lease has run out, the next run re-drives them.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.cron(RETRY).await;
    let resent = sent_counts(&graph).await;
    for (id, name) in &failed {
        let total = counts.get(name).unwrap_or(&0) + resent.get(name).unwrap_or(&0);
        assert_eq!(total, 1, "{name} sent once");
        assert_eq!(reminder(db, id).await["status"], "sent");
        assert_eq!(dead_letters(db, id).await[0]["status"], "resolved");
    }
}
