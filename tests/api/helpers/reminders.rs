//! What the cron tests arrange: apps that retry at once, contacts with a conversation whose
//! 24 h window is open or closed, reminders of a test's own, and what the fake Graph API sent.

use std::collections::HashMap;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};
use wiremock::MockServer;

use super::app::{set, spawn_app_with, use_graph, TestApp, CHECK_REMINDERS};
use super::db::{insert, select, update, TestOrg};
use super::fakes::sends;
use super::lib::Postgrest;
use super::{eq, new_uuid, new_wa_id, unique};

/// An app sending through `graph`, retrying at once (no backoff), with `extra` settings.
pub async fn cron_app(graph: &MockServer, extra: &[(&str, &str)]) -> TestApp {
    spawn_app_with(|env| {
        use_graph(env, graph);
        set(env, &[("CRON_RETRY_BASE_SECONDS", "0")]);
        set(env, extra);
    })
    .await
}

/// An app sending through `graph` (see [`cron_app`]), an org of its own, and a contact of
/// the org whose last inbound message was `hours_ago`.
pub async fn cron_org(
    graph: &MockServer,
    extra: &[(&str, &str)],
    hours_ago: i64,
) -> (TestApp, TestOrg, Contact) {
    let app = cron_app(graph, extra).await;
    let org = TestOrg::create(app.db()).await;
    let owner = contact(app.db(), &org, hours_ago).await;
    (app, org, owner)
}

/// A contact of `org` with a conversation whose last inbound message was `hours_ago`.
pub struct Contact {
    pub id: String,
    pub wa_id: String,
    pub conversation_id: String,
}

pub async fn contact(db: &Postgrest, org: &TestOrg, hours_ago: i64) -> Contact {
    let number = org.number_id(db).await;
    let id = new_uuid();
    let conversation_id = new_uuid();
    let wa_id = new_wa_id();
    insert(
        db,
        "contacts",
        json!({
            "id": id, "org_id": org.id, "wa_id": wa_id, "timezone": "America/New_York",
        }),
    )
    .await;
    let last_inbound = Utc::now() - chrono::TimeDelta::hours(hours_ago);
    insert(
        db,
        "conversations",
        json!({
            "id": conversation_id, "org_id": org.id, "contact_id": id,
            "whatsapp_number_id": number, "last_inbound_at": last_inbound,
        }),
    )
    .await;
    Contact {
        id,
        wa_id,
        conversation_id,
    }
}

/// Inserts reminders (one per text) for `contact`, due `due_at`; returns their ids.
pub async fn reminders(
    db: &Postgrest,
    org: &TestOrg,
    contact: &Contact,
    texts: &[String],
    due_at: DateTime<Utc>,
    recurrence: &str,
) -> Vec<String> {
    let ids: Vec<String> = texts.iter().map(|_| new_uuid()).collect();
    let rows: Vec<Value> = ids
        .iter()
        .zip(texts)
        .map(|(id, text)| {
            json!({
                "id": id, "org_id": org.id, "contact_id": contact.id, "text": text,
                "due_at": due_at, "recurrence": recurrence, "timezone": "America/New_York",
            })
        })
        .collect();
    insert(db, "reminders", json!(rows)).await;
    ids
}

pub async fn reminder(db: &Postgrest, id: &str) -> Value {
    select(db, "reminders", &[("id", eq(id))]).await[0].clone()
}

/// Texts of a test's own, so that counts ignore anything else a run may send.
pub fn texts(n: usize) -> Vec<String> {
    let run = unique();
    (0..n).map(|i| format!("reminder {run} #{i}")).collect()
}

/// How many times the fake Graph API received each text or template parameter.
pub async fn sent_counts(graph: &MockServer) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for body in sends(graph, "text")
        .await
        .into_iter()
        .chain(sends(graph, "template").await)
    {
        let text = body["text"]["body"]
            .as_str()
            .or_else(|| body["template"]["components"][0]["parameters"][0]["text"].as_str())
            .unwrap_or_default()
            .trim_start_matches("⏰ ")
            .to_string();
        *counts.entry(text).or_default() += 1;
    }
    counts
}

pub fn minutes_ago(minutes: i64) -> DateTime<Utc> {
    Utc::now() - chrono::TimeDelta::minutes(minutes)
}

/// The next local `hour`:00 in `zone` after `now` (computed here, apart from the code under test).
pub fn next_local(zone: Tz, hour: u32, now: DateTime<Utc>) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(hour, 0, 0).expect("time");
    let today = now.with_timezone(&zone).date_naive();
    [today, today + Days::new(1)]
        .into_iter()
        .filter_map(|day| zone.from_local_datetime(&day.and_time(time)).single())
        .map(|at| at.with_timezone(&Utc))
        .find(|at| *at > now)
        .expect("an occurrence within a day")
}

/// Makes a dead letter entry due since `since` (as if its backoff had passed).
pub async fn make_due(
    db: &Postgrest,
    reference: &str,
    attempts: Option<u32>,
    since: DateTime<Utc>,
) {
    let mut values = json!({"next_attempt_at": since});
    if let Some(attempts) = attempts {
        values["attempts"] = json!(attempts);
    }
    update(db, "dead_letter_queue", ("ref", reference), values).await;
}

/// An org without a reminder template, a contact whose window is closed, and a reminder of
/// theirs that check-reminders failed for good (no template): its dead letter entry is pending.
pub async fn dead_lettered_reminder(app: &TestApp) -> (TestOrg, Contact, String, String) {
    let db = app.db();
    let org = TestOrg::create(db).await;
    let owner = contact(db, &org, 30).await;
    let mut names = texts(1);
    let id = reminders(db, &org, &owner, &names, minutes_ago(1), "none")
        .await
        .remove(0);
    app.cron(CHECK_REMINDERS).await;
    (org, owner, id, names.remove(0))
}

/// A reminder due at 09:00 local in New York three days ago, and its next occurrence.
pub fn nine_am_three_days_ago() -> (DateTime<Utc>, DateTime<Utc>) {
    let zone = chrono_tz::America::New_York;
    let next = next_local(zone, 9, Utc::now());
    let day = next.with_timezone(&zone).date_naive() - Days::new(3);
    let nine = NaiveTime::from_hms_opt(9, 0, 0).expect("time");
    let due = zone
        .from_local_datetime(&day.and_time(nine))
        .single()
        .expect("09:00 exists")
        .with_timezone(&Utc);
    (due, next)
}

pub fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().expect("a time").parse().expect("RFC 3339")
}

/// The failed occurrences split off a recurring reminder.
pub async fn occurrences(db: &Postgrest, series: &str) -> Vec<Value> {
    select(db, "reminders", &[("occurrence_of", eq(series))]).await
}

/// Long overdue: claimed before any other due work of the database.
pub fn long_overdue() -> DateTime<Utc> {
    Utc::now() - chrono::TimeDelta::days(5 * 365)
}
