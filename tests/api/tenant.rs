//! A hostile tenant: an org admin with their own access token and the public anon key calls
//! PostgREST directly, around the admin API. The database refuses what the API would refuse
//! (constraints, grants, the audited functions), and nothing they write stops another org's
//! work: after every attempt, another org's due reminders are still sent by the cron.

use assistant::assistant::models::{Models, Usage};
use assistant::supabase::{Caller, DbError, Postgrest};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::admin::World;
use crate::helpers::CRON_SECRET;
use crate::helpers::{fake_graph, insert, new_wa_id, select, sends, FakeGraph, TestOrg};

/// Dates no reminder may have: the infinities, a BC date, a year past 9999.
const ODD_DATES: &[&str] = &[
    "-infinity",
    "infinity",
    "0044-03-15 12:00:00+00 BC",
    "10000-01-01 00:00:00+00",
    "1999-12-31 23:59:59+00",
    "2100-01-01 00:00:00+00",
];

/// The PostgreSQL error code of a refused write (None when it went through).
fn refused<T>(result: Result<T, DbError>) -> Option<String> {
    result.err().and_then(|e| e.code().map(str::to_string))
}

/// A contact of `org` (window open) with a reminder due `due_at`; (contact id, reminder id).
async fn contact_with_reminder(db: &Postgrest, org: &TestOrg, due_at: &str) -> (String, String) {
    let number = &select(
        db,
        "whatsapp_numbers",
        &[("org_id", format!("eq.{}", org.id))],
    )
    .await[0];
    let (contact, reminder) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    insert(
        db,
        "contacts",
        json!({"id": contact, "org_id": org.id, "wa_id": new_wa_id()}),
    )
    .await;
    insert(
        db,
        "conversations",
        json!({"org_id": org.id, "contact_id": contact, "whatsapp_number_id": number["id"],
               "last_inbound_at": chrono::Utc::now()}),
    )
    .await;
    insert(
        db,
        "reminders",
        json!({"id": reminder, "org_id": org.id, "contact_id": contact,
               "text": format!("tenant {reminder}"), "due_at": due_at}),
    )
    .await;
    (contact, reminder)
}

async fn patch(
    db: &Postgrest,
    token: &str,
    table: &str,
    id: &str,
    values: Value,
) -> Option<String> {
    refused(
        db.from(table, Caller::User(token))
            .eq("id", id)
            .update(&values)
            .execute()
            .await,
    )
}

async fn rpc(db: &Postgrest, token: &str, function: &str, args: Value) -> Option<String> {
    refused(
        db.rpc(function, Caller::User(token))
            .args(&args)
            .fetch::<Value>()
            .await,
    )
}

/// Every hostile write the tests try, as org A's owner; each must be refused.
async fn attack(w: &World, reminder: &str) {
    let db = w.db();
    let owner = w.token(w.owner_a);
    for date in ODD_DATES {
        assert_eq!(
            patch(db, &owner, "reminders", reminder, json!({"due_at": date})).await,
            Some("23514".into()),
            "due_at {date} is refused"
        );
    }
    assert_eq!(
        patch(
            db,
            &owner,
            "reminders",
            reminder,
            json!({"status": "sending"})
        )
        .await,
        Some("23514".into()),
        "the delivery states are the cron's"
    );
    assert_eq!(
        patch(
            db,
            &owner,
            "reminders",
            reminder,
            json!({"timezone": "x'; --"})
        )
        .await,
        Some("23514".into()),
        "a time zone is a zone name"
    );
}

#[tokio::test]
async fn an_org_admin_cannot_give_a_reminder_an_odd_date() {
    let w = World::new().await;
    let db = w.db();
    let due = "2030-06-01T09:00:00+00:00";
    let (_, reminder) = contact_with_reminder(db, &w.a.org, due).await;
    attack(&w, &reminder).await;

    let row = &select(db, "reminders", &[("id", format!("eq.{reminder}"))]).await[0];
    assert_eq!(row["status"], "pending");
    let stored: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(row["due_at"].clone()).expect("a finite date");
    assert_eq!(stored.to_rfc3339(), due);
    // The upper bound is a date a user may choose; the lower one is in the past (refused).
    let owner = w.token(w.owner_a);
    assert_eq!(
        patch(
            db,
            &owner,
            "reminders",
            &reminder,
            json!({"due_at": "2099-12-31 23:59:59+00"})
        )
        .await,
        None,
        "the upper bound is in range"
    );
    assert_eq!(
        patch(
            db,
            &owner,
            "reminders",
            &reminder,
            json!({"due_at": "2000-01-01 00:00:00+00"})
        )
        .await,
        Some("23514".into()),
        "a reminder is not back-dated"
    );
    assert_eq!(
        patch(
            db,
            &owner,
            "reminders",
            &reminder,
            json!({"status": "cancelled"})
        )
        .await,
        None,
        "an admin may still cancel a reminder"
    );
}

#[tokio::test]
async fn staff_cannot_undo_an_opt_out_or_set_one() {
    let w = World::new().await;
    let db = w.db();
    let owner = w.token(w.owner_a);
    db.from("contacts", Caller::Service)
        .eq("id", &w.a.contact)
        .update(&json!({"opted_out": true, "opted_out_at": chrono::Utc::now()}))
        .execute()
        .await
        .expect("the contact sent STOP");
    for values in [
        json!({"opted_out": false}),
        json!({"opted_out_at": null}),
        json!({"opted_out": false, "opted_out_at": null}),
    ] {
        assert_eq!(
            patch(db, &owner, "contacts", &w.a.contact, values.clone()).await,
            Some("42501".into()),
            "{values}"
        );
    }
    let other = &w.b.contact;
    assert_eq!(
        patch(
            db,
            &w.token(w.admin_b),
            "contacts",
            other,
            json!({"opted_out": true})
        )
        .await,
        Some("42501".into()),
        "nor opt a contact out on their behalf"
    );
    let row = &select(db, "contacts", &[("id", format!("eq.{}", w.a.contact))]).await[0];
    assert_eq!(row["opted_out"], true, "the opt-out stands");
    // What staff may still correct: a contact's locale and time zone, within bounds.
    assert_eq!(
        patch(
            db,
            &owner,
            "contacts",
            &w.a.contact,
            json!({"locale": "pt-BR", "timezone": "America/Sao_Paulo"})
        )
        .await,
        None
    );
    assert_eq!(
        patch(
            db,
            &owner,
            "contacts",
            &w.a.contact,
            json!({"timezone": "Z".repeat(65)})
        )
        .await,
        Some("23514".into())
    );
}

#[tokio::test]
async fn audit_rows_are_written_by_the_system_never_by_users() {
    let w = World::new().await;
    let db = w.db();
    for user in [w.owner_a, w.admin_a, w.viewer_a] {
        let inserted = db
            .from("audit_log_entries", Caller::User(&w.token(user)))
            .insert(&json!({"org_id": w.a.org.id, "actor_id": user, "action": "tenant.forged"}))
            .execute()
            .await;
        assert_eq!(refused(inserted), Some("42501".into()), "{user}");
    }
    assert!(w.audit("tenant.forged").await.is_empty());
    // The audited path still writes its row, as the caller.
    let (status, _) = w
        .admin(
            Method::POST,
            &format!("/api/admin/alerts/{}/acknowledge", w.a.alert),
            Some(&w.token(w.admin_a)),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let rows = w.audit("alert.acknowledge").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], json!(w.admin_a));
}

#[tokio::test]
async fn audited_writes_have_no_direct_path() {
    let w = World::new().await;
    let db = w.db();
    let owner = w.token(w.owner_a);
    let org = &w.a.org.id;
    let direct = [
        (
            "assistant_settings",
            db.from("assistant_settings", Caller::User(&owner))
                .eq("org_id", org)
                .update(&json!({"rate_limit_per_minute": 10000}))
                .execute()
                .await,
        ),
        (
            "conversations",
            db.from("conversations", Caller::User(&owner))
                .eq("id", &w.a.conversation)
                .update(&json!({"mode": "human"}))
                .execute()
                .await,
        ),
        (
            "alerts",
            db.from("alerts", Caller::User(&owner))
                .eq("id", &w.a.alert)
                .update(&json!({"status": "resolved"}))
                .execute()
                .await,
        ),
        (
            "org_members insert",
            db.from("org_members", Caller::User(&owner))
                .insert(&json!({"org_id": org, "user_id": w.admin_b, "role": "owner"}))
                .execute()
                .await,
        ),
        (
            "org_members update",
            db.from("org_members", Caller::User(&owner))
                .eq("org_id", org)
                .eq("user_id", w.viewer_a)
                .update(&json!({"role": "owner"}))
                .execute()
                .await,
        ),
        (
            "org_members delete",
            db.from("org_members", Caller::User(&owner))
                .eq("org_id", org)
                .eq("user_id", w.viewer_a)
                .delete()
                .execute()
                .await,
        ),
    ];
    for (what, result) in direct {
        assert_eq!(refused(result), Some("42501".into()), "{what}");
    }
    let conversation = &select(
        db,
        "conversations",
        &[("id", format!("eq.{}", w.a.conversation))],
    )
    .await[0];
    assert_eq!(conversation["mode"], "bot");
    assert!(w.audit("member.add").await.is_empty());
}

#[tokio::test]
async fn an_oversized_system_prompt_is_refused_by_the_api_and_the_database() {
    let w = World::new().await;
    let db = w.db();
    let owner = w.token(w.owner_a);
    let path = format!("/api/admin/settings?org_id={}", w.a.org.id);
    let over = "p".repeat(8_001);
    let huge = "p".repeat(3_000_000);

    let (status, body) = w
        .admin(
            Method::PUT,
            &path,
            Some(&owner),
            Some(&json!({ "system_prompt": over })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    for prompt in [&over, &huge] {
        assert_eq!(
            rpc(
                db,
                &owner,
                "admin_update_settings",
                json!({"p_org_id": w.a.org.id, "p_settings": {"system_prompt": prompt}}),
            )
            .await,
            Some("22023".into()),
            "the function refuses it too"
        );
    }
    let direct = db
        .from("assistant_settings", Caller::User(&owner))
        .eq("org_id", &w.a.org.id)
        .update(&json!({ "system_prompt": huge }))
        .execute()
        .await;
    assert_eq!(refused(direct), Some("42501".into()), "no direct write");
    let row = &select(
        db,
        "assistant_settings",
        &[("org_id", format!("eq.{}", w.a.org.id))],
    )
    .await[0];
    assert!(row["system_prompt"].as_str().expect("prompt").len() <= 8_000);
    assert!(w.audit("settings.update").await.is_empty());

    // The limit itself is allowed, in characters (not bytes).
    let longest = "é".repeat(8_000);
    let (status, body) = w
        .admin(
            Method::PUT,
            &path,
            Some(&owner),
            Some(&json!({ "system_prompt": longest })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["system_prompt"], json!(longest));
}

#[tokio::test]
async fn only_the_models_of_the_orgs_plan_are_accepted() {
    let w = World::new().await;
    let db = w.db();
    let owner = w.token(w.owner_a);
    let path = format!("/api/admin/settings?org_id={}", w.a.org.id);
    // Org A is on the free plan: gpt-6.1-terra is offered on starter and pro only.
    for body in [
        json!({"model": "gpt-6.1-terra"}),
        json!({"fallback_model": "claude-opus-5-5"}),
        json!({"model": "some-unpriced-model"}),
    ] {
        let (status, answer) = w.admin(Method::PUT, &path, Some(&owner), Some(&body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not offered"), "{message}");
        assert_eq!(
            rpc(
                db,
                &owner,
                "admin_update_settings",
                json!({"p_org_id": w.a.org.id, "p_settings": body}),
            )
            .await,
            Some("22023".into())
        );
    }
    // Not even the service role stores an unoffered model.
    let service = db
        .from("assistant_settings", Caller::Service)
        .eq("org_id", &w.a.org.id)
        .update(&json!({"model": "some-unpriced-model"}))
        .execute()
        .await;
    assert_eq!(refused(service), Some("22023".into()));
    let row = &select(
        db,
        "assistant_settings",
        &[("org_id", format!("eq.{}", w.a.org.id))],
    )
    .await[0];
    assert_eq!(row["model"], "gpt-6-luna");

    let (status, body) = w
        .admin(
            Method::PUT,
            &path,
            Some(&owner),
            Some(&json!({"model": "gpt-4.1-mini"})),
        )
        .await;
    assert_eq!(status, 200, "offered on free: {body}");
    w.a.org
        .update(
            db,
            "orgs",
            json!({"plan": "pro", "monthly_token_budget": 5000000}),
        )
        .await;
    let (status, body) = w
        .admin(
            Method::PUT,
            &path,
            Some(&owner),
            Some(&json!({"model": "gpt-6.1-terra", "fallback_model": "claude-opus-5-5"})),
        )
        .await;
    assert_eq!(status, 200, "offered on pro: {body}");
    // Back on free, the chosen models stay (no edit is locked), but none can be chosen anew.
    w.a.org.update(db, "orgs", json!({"plan": "free"})).await;
    let (status, body) = w
        .admin(
            Method::PUT,
            &path,
            Some(&owner),
            Some(&json!({"language": "es"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = w
        .admin(
            Method::PUT,
            &path,
            Some(&owner),
            Some(&json!({"model": "gpt-4o"})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn every_model_a_plan_offers_has_a_price() {
    let app = crate::helpers::spawn_app().await;
    let db = app.state.db().expect("db");
    let plans = select(db, "plans", &[]).await;
    assert!(
        ["free", "starter", "pro"]
            .iter()
            .all(|name| plans.iter().any(|p| p["name"] == *name)),
        "the seeded plans"
    );
    let models = Models::new(None);
    let usage = Usage {
        input: 1_000_000,
        output: 1_000_000,
        cached: 0,
        seconds: 0,
    };
    for plan in &plans {
        let offered = plan["models"].as_array().expect("models");
        assert!(!offered.is_empty(), "{plan}");
        for model in offered {
            let model = model.as_str().expect("a name");
            assert!(
                models.get(model).is_some() && models.cost(model, &usage) > 0.0,
                "plan {}: {model} has no price in lib/src/assistant/models.rs",
                plan["name"]
            );
        }
    }
    // The column defaults (the settings of a new org) are offered on every plan.
    for plan in &plans {
        for default in ["gpt-6-luna", "claude-haiku-5-5"] {
            assert!(
                plan["models"]
                    .as_array()
                    .is_some_and(|m| m.contains(&json!(default))),
                "plan {} offers {default}",
                plan["name"]
            );
        }
    }
}

#[tokio::test]
async fn after_hostile_writes_another_orgs_due_reminders_are_still_sent() {
    // Cron runs claim every due reminder of the database: take turns with the cron tests.
    let _turn = crate::cron::TURN.lock().await;
    let graph = fake_graph(FakeGraph::ok()).await;
    let url = graph.uri();
    let w = World::with(|env| {
        env.insert("GRAPH_API_BASE_URL".into(), url);
        env.insert(
            "WHATSAPP_ACCESS_TOKEN".into(),
            "EAAtesttoken000000000000".into(),
        );
    })
    .await;
    let db = w.db();
    let due = (chrono::Utc::now() - chrono::TimeDelta::minutes(1)).to_rfc3339();
    let (_, own) = contact_with_reminder(db, &w.a.org, &due).await;
    let (_, other) = contact_with_reminder(db, &w.b.org, &due).await;

    // Org A's owner tries every odd date on their own (due) reminder, through PostgREST.
    attack(&w, &own).await;

    let response = w
        .app
        .client
        .get(w.app.url("/api/cron/check-reminders"))
        .bearer_auth(CRON_SECRET)
        .send()
        .await
        .expect("cron request");
    let status = response.status().as_u16();
    let summary: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{summary}");
    let row = &select(db, "reminders", &[("id", format!("eq.{other}"))]).await[0];
    assert_eq!(row["status"], "sent", "org B's reminder: {row}");
    let texts: Vec<Value> = sends(&graph, "text").await;
    assert!(
        texts
            .iter()
            .any(|b| b["text"]["body"] == format!("⏰ tenant {other}")),
        "org B's reminder reached WhatsApp"
    );
    let row = &select(db, "reminders", &[("id", format!("eq.{own}"))]).await[0];
    assert_eq!(row["status"], "sent", "org A's own reminder, undamaged");
}

#[tokio::test]
async fn an_owner_cannot_resend_a_sent_reminder_only_re_arm_a_cancelled_one() {
    let w = World::new().await;
    let db = w.db();
    let owner = w.token(w.owner_a);
    let (_, sent) = contact_with_reminder(db, &w.a.org, "2030-06-01T09:00:00+00:00").await;
    let (_, cancelled) = contact_with_reminder(db, &w.a.org, "2030-06-01T09:00:00+00:00").await;
    for (id, status) in [(&sent, "sent"), (&cancelled, "cancelled")] {
        db.from("reminders", Caller::Service)
            .eq("id", id)
            .update(&json!({"status": status, "due_at": "2020-01-01T00:00:00Z"}))
            .execute()
            .await
            .expect("arranged");
    }
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();

    let re_arm = json!({"status": "pending", "due_at": future});
    assert_eq!(
        patch(db, &owner, "reminders", &sent, re_arm.clone()).await,
        Some("23514".into()),
        "a sent reminder is not re-armed"
    );
    assert_eq!(
        patch(
            db,
            &owner,
            "reminders",
            &cancelled,
            json!({"status": "pending"})
        )
        .await,
        Some("23514".into()),
        "a cancelled reminder is not re-armed at its past due time"
    );
    assert_eq!(
        patch(db, &owner, "reminders", &cancelled, re_arm).await,
        None,
        "a cancelled reminder is re-armed for a future time"
    );
    let status = |id: &str| format!("eq.{id}");
    assert_eq!(
        select(db, "reminders", &[("id", status(&sent))]).await[0]["status"],
        "sent"
    );
    assert_eq!(
        select(db, "reminders", &[("id", status(&cancelled))]).await[0]["status"],
        "pending"
    );
}

/// Runs `sql` as `user` (role authenticated) in its own psql session; the error text if any.
async fn psql_as(user: uuid::Uuid, sql: &str) -> Option<String> {
    let url = crate::helpers::stack_var("DATABASE_URL");
    let script = format!(
        "begin; set local role authenticated; \
         set local request.jwt.claims to '{{\"sub\":\"{user}\",\"role\":\"authenticated\"}}'; \
         {sql}; commit;"
    );
    let output = tokio::process::Command::new("psql")
        .args([
            url.as_str(),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &script,
        ])
        .output()
        .await
        .expect("psql");
    (!output.status.success()).then(|| String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn two_owners_removing_each_other_at_once_leave_one_owner() {
    let w = World::new().await;
    let db = w.db();
    let org = &w.a.org.id;
    let other = crate::helpers::create_users(1).await[0];
    crate::helpers::psql(&format!(
        "insert into public.org_members (org_id, user_id, role) values ('{org}', '{other}', 'owner')"
    ))
    .await;
    let (a, b) = (w.owner_a, other);

    // The first removal holds its transaction open while the second one starts.
    let hold = format!("select public.admin_remove_member('{org}', '{b}'); select pg_sleep(1.5)");
    let first = psql_as(a, &hold);
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        psql_as(
            b,
            &format!("select public.admin_remove_member('{org}', '{a}')"),
        )
        .await
    };
    let (first, second) = tokio::join!(first, second);

    assert_eq!(first, None, "the first removal succeeds");
    let error = second.expect("the second removal is refused");
    assert!(error.contains("at least one owner"), "{error}");
    let owners = select(
        db,
        "org_members",
        &[("org_id", format!("eq.{org}")), ("role", "eq.owner".into())],
    )
    .await;
    assert_eq!(owners.len(), 1, "the org keeps an owner");
    assert_eq!(owners[0]["user_id"], a.to_string());
}
