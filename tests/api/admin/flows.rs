//! What each admin endpoint does, end to end on the real stack: reads, every mutation with its
//! audit row, WhatsApp's rules for staff replies, replays that really reprocess, pagination.

use chrono::{Datelike, Months, Utc};
use serde_json::{json, Value};

use crate::helpers::admin::World;
use crate::helpers::lib::{Caller, Resolution};
use crate::helpers::*;

/// The messages staff member admin A sent in org A's conversation.
async fn staff_messages(w: &World) -> Vec<Value> {
    let filters = [
        ("conversation_id", eq(&w.a.conversation)),
        ("payload->>sent_by", eq(w.admin_a)),
    ];
    select(w.db(), "messages", &filters).await
}

#[tokio::test]
async fn me_lists_the_users_orgs_with_roles() {
    let w = World::new().await;
    let (status, body) = w.admin_get("/api/admin/me", &w.token(w.admin_a)).await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["id"], w.admin_a.to_string());
    assert_eq!(
        body["orgs"],
        json!([{"id": w.a.org.id, "name": "Test org", "role": "admin", "plan": "free",
                "subscription_status": "none"}])
    );
}

#[tokio::test]
async fn overview_and_usage_add_up_the_orgs_month() {
    let w = World::new().await;
    let token = w.token(w.viewer_a);
    let org = &w.a.org.id;
    let (status, overview) = w
        .admin_get(&format!("/api/admin/overview?org_id={org}"), &token)
        .await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["messages"], json!({"inbound": 1, "outbound": 1}));
    assert_eq!(overview["active_contacts"], 1);
    assert_eq!(overview["ai"]["tokens"], 1500);
    assert_eq!(overview["budget"]["monthly_tokens"], 100000);
    assert_eq!(overview["budget"]["used_tokens"], 1500);
    assert_eq!(overview["budget"]["remaining_tokens"], 98500);
    assert_eq!(overview["open_alerts"], 1);
    assert_eq!(overview["dead_letters"], 2);
    assert_eq!(overview["health"]["failed_last_day"], 1);

    let (status, usage) = w
        .admin_get(&format!("/api/admin/usage?org_id={org}"), &token)
        .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["totals"]["tokens_in"], 1200);
    assert_eq!(usage["totals"]["tokens_out"], 300);
    assert_eq!(usage["days"].as_array().map(Vec::len), Some(1));
    assert_eq!(usage["contacts"][0]["contact_id"], w.a.contact);
    assert_eq!(usage["contacts"][0]["tokens"], 1500);
    assert_eq!(usage["contacts_exact"], true);
    let month = Utc::now().date_naive().with_day(1).unwrap();
    assert_eq!(usage["contacts_from"], month.to_string());
    let last = (month + Months::new(1)).pred_opt().unwrap();
    assert_eq!(usage["contacts_to"], last.to_string());

    for bad in [
        "from=2026-13-01",
        "from=2026-11-20&to=2026-11-01",
        "from=2020-01-01&to=2026-01-01",
    ] {
        let (status, body) = w
            .admin_get(&format!("/api/admin/usage?org_id={org}&{bad}"), &token)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = w
        .admin_get("/api/admin/overview?org_id=not-a-uuid", &token)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn settings_change_only_the_fields_sent_and_are_audited() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/settings?org_id={}", w.a.org.id);
    let change = json!({"reply_template": null, "rate_limit_per_minute": 15});
    let (status, body) = w.admin_put(&path, &token, &change).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply_template"], Value::Null);
    assert_eq!(body["rate_limit_per_minute"], 15);
    assert_eq!(body["template_language"], "en_US", "other fields unchanged");

    let (_, read) = w.admin_get(&path, &token).await;
    assert_eq!(read["rate_limit_per_minute"], 15);
    let audit = w.audit("settings.update").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["actor_id"], w.admin_a.to_string());
    assert_eq!(
        audit[0]["details"]["fields"],
        json!(["rate_limit_per_minute", "reply_template"])
    );

    for bad in [
        json!({}),
        json!({"plan": "pro"}),
        json!({"rate_limit_per_minute": 0}),
        json!({"model": ""}),
        json!({"reply_template": "Not A Template Name"}),
        json!("language=es"),
    ] {
        let (status, body) = w.admin_put(&path, &token, &bad).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    assert_eq!(w.audit("settings.update").await.len(), 1);
}

#[tokio::test]
async fn handoff_switches_the_mode_once_and_validates_its_input() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/conversations/{}/handoff", w.a.conversation);
    let human = json!({"mode": "human"});
    let (status, body) = w.admin_post(&path, &token, &human).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "human");
    assert_eq!(
        row(w.db(), "conversations", &w.a.conversation).await["mode"],
        "human"
    );
    let (status, _) = w.admin_post(&path, &token, &human).await;
    assert_eq!(status, 200, "idempotent");
    let audit = w.audit("conversation.handoff").await;
    assert_eq!(audit.len(), 1, "only a change is audited");
    assert_eq!(audit[0]["details"], json!({"from": "bot", "to": "human"}));
    assert_eq!(audit[0]["target"], w.a.conversation);

    let (status, _) = w.admin_post(&path, &token, &json!({"mode": "robot"})).await;
    assert_eq!(status, 400);
    let (status, _) = w
        .admin_post(
            "/api/admin/conversations/not-a-uuid/handoff",
            &token,
            &human,
        )
        .await;
    assert_eq!(status, 400);
    let unknown = format!("/api/admin/conversations/{}/handoff", new_uuid());
    let (status, _) = w.admin_post(&unknown, &token, &human).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_conversation_comes_with_its_messages_newest_first() {
    let w = World::new().await;
    let token = w.token(w.viewer_a);
    let path = format!("/api/admin/conversations/{}", w.a.conversation);
    let (status, body) = w.admin_get(&path, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation"]["contact_name"], "Ana");
    assert_eq!(body["conversation"]["window_open"], true);
    assert_eq!(body["conversation"]["mode"], "bot");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
    let (_, first_page) = w.admin_get(&format!("{path}?limit=1"), &token).await;
    let cursor = first_page["next_cursor"].as_str().expect("a second page");
    let (_, second_page) = w
        .admin_get(&format!("{path}?limit=1&cursor={cursor}"), &token)
        .await;
    assert_ne!(
        first_page["messages"][0]["id"],
        second_page["messages"][0]["id"]
    );
    assert_eq!(second_page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn staff_replies_follow_the_window_and_template_rules() {
    let graph = fake_graph(FakeGraph::ok()).await;
    let w = World::with_graph(&graph).await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/conversations/{}/messages", w.a.conversation);
    let say = |text: &str| json!({"text": text});

    // Inside the 24 h window: freeform text.
    let (status, body) = w
        .admin_post(&path, &token, &say("We moved your appointment to 3 pm."))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"]["status"], "sent");
    assert_eq!(body["message"]["type"], "text");
    assert!(body["message"]["wa_message_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("wamid.")));
    let texts = sends(&graph, "text").await;
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["to"], w.a.wa_id);
    assert_eq!(
        texts[0]["text"]["body"],
        "We moved your appointment to 3 pm."
    );

    // Outside it: the approved reply template, with the text as its parameter.
    let two_days_ago = chrono::Utc::now() - chrono::Duration::days(2);
    let closed = json!({"last_inbound_at": two_days_ago});
    update(w.db(), "conversations", ("id", &w.a.conversation), closed).await;
    let (status, body) = w
        .admin_post(&path, &token, &say("Are you still coming?"))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"]["type"], "template");
    let templates = sends(&graph, "template").await;
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0]["template"]["name"], "assistant_reply");
    assert_eq!(
        templates[0]["template"]["components"][0]["parameters"][0]["text"],
        "Are you still coming?"
    );

    // Outside it without a template: 409, nothing recorded, nothing sent.
    w.a.org
        .update(
            w.db(),
            "assistant_settings",
            json!({"reply_template": null}),
        )
        .await;
    let (status, body) = w.admin_post(&path, &token, &say("Hello?")).await;
    assert_eq!(status, 409, "{body}");
    assert!(has_text(&body["error"]["message"], "window"));

    // A contact who opted out: 409.
    update(
        w.db(),
        "contacts",
        ("id", &w.a.contact),
        json!({"opted_out": true}),
    )
    .await;
    let (status, _) = w.admin_post(&path, &token, &say("Hello?")).await;
    assert_eq!(status, 409);

    let staff = staff_messages(&w).await;
    assert_eq!(staff.len(), 2, "only the two sent messages are recorded");
    assert_eq!(
        sends(&graph, "text").await.len() + sends(&graph, "template").await.len(),
        2
    );
    let audit = w.audit("message.send").await;
    assert_eq!(audit.len(), 2);

    for bad in [
        json!({"text": ""}),
        json!({"text": "x".repeat(4097)}),
        json!({"body": "hi"}),
    ] {
        let (status, _) = w.admin_post(&path, &token, &bad).await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn a_message_meta_refuses_is_recorded_failed_and_answered_502() {
    let graph = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let w = World::with_graph(&graph).await;
    let path = format!("/api/admin/conversations/{}/messages", w.a.conversation);
    let (status, body) = w
        .admin_post(&path, &w.token(w.admin_a), &json!({"text": "Hi"}))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(has_text(&body["error"]["message"], "131026"));
    let staff = staff_messages(&w).await;
    assert_eq!(staff.len(), 1);
    assert_eq!(staff[0]["status"], "failed", "recorded, not lost");
}

#[tokio::test]
async fn replaying_an_inbound_dead_letter_processes_it_again_and_resolves_it() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let [inbound_letter, outbound_letter] = &w.a.dead_letters;
    let replay = |id: &str| format!("/api/admin/dead-letters/{id}/replay");
    let (status, body) = w.admin_post_empty(&replay(inbound_letter), &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "retrying");
    assert!(
        body["lease_until"].is_string(),
        "claimed with a lease, as the cron claims"
    );

    // Re-driven in the background as the retry cron does (outbox mode: the reply is simulated).
    eventually("the replayed message's processing", || async {
        row(w.db(), "dead_letter_queue", inbound_letter).await["status"] == "resolved"
    })
    .await;
    assert_eq!(
        row(w.db(), "messages", &w.a.inbound).await["status"],
        "processed"
    );
    let replies = select(w.db(), "messages", &[("reply_to", eq(&w.a.inbound))]).await;
    assert_eq!(replies.len(), 1, "answered once");
    assert_eq!(replies[0]["status"], "simulated");

    let (status, body) = w.admin_post_empty(&replay(inbound_letter), &token).await;
    assert_eq!(status, 409, "a resolved letter is not replayed: {body}");
    let (status, body) = w.admin_post_empty(&replay(outbound_letter), &token).await;
    assert_eq!(status, 409, "nothing re-drives this kind: {body}");

    let discard = format!("/api/admin/dead-letters/{outbound_letter}/discard");
    let (status, body) = w.admin_post_empty(&discard, &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "discarded");
    let (status, _) = w.admin_post_empty(&discard, &token).await;
    assert_eq!(status, 409);

    assert_eq!(w.audit("dead_letter.replay").await.len(), 1);
    let discarded = w.audit("dead_letter.discard").await;
    assert_eq!(discarded.len(), 1);
    assert_eq!(discarded[0]["target"], *outbound_letter);
}

#[tokio::test]
async fn a_dead_letter_being_retried_is_not_claimed_twice() {
    let w = World::new().await;
    let letter = &w.a.dead_letters[0];
    let lease_until = chrono::Utc::now() + chrono::Duration::minutes(2);
    let claimed = json!({"status": "retrying", "lease_until": lease_until});
    update(w.db(), "dead_letter_queue", ("id", letter), claimed).await;
    let path = format!("/api/admin/dead-letters/{letter}/replay");
    let (status, body) = w.admin_post_empty(&path, &w.token(w.admin_a)).await;
    assert_eq!(status, 409, "{body}");
    assert!(has_text(&body["error"]["message"], "being retried"));
}

#[tokio::test]
async fn resetting_rate_limits_lets_a_throttled_contact_be_answered_again() {
    let w = World::new().await;
    let db = w.db();
    // The contact is past the limit (10 a minute) in the current window.
    let window = chrono::Utc::now().timestamp() / 60 * 60;
    let window = chrono::DateTime::from_timestamp(window, 0).expect("time");
    db.from("rate_limits", Caller::Service)
        .upsert(
            &json!({"key": format!("contact:{}", w.a.contact), "window_start": window,
                    "count": 11, "org_id": w.a.org.id}),
            "key,window_start",
            Resolution::MergeDuplicates,
        )
        .execute()
        .await
        .expect("throttle the contact");
    let (body, wamid) = text_delivery(&w.a.org, &w.a.wa_id, "hello?");
    assert_eq!(w.post_webhook(&body).await.status(), 200);
    assert!(w.reply_to(&wamid).await.is_none(), "throttled: silence");

    let reset = json!({"org_id": w.a.org.id, "contact_id": w.a.contact});
    let (status, body) = w
        .admin_post("/api/admin/rate-limits/reset", &w.token(w.admin_a), &reset)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deleted"].as_i64().is_some_and(|n| n >= 1));

    let wamid = w.post_text(&w.a.org, &w.a.wa_id, "hello again").await;
    assert!(
        w.reply_to(&wamid).await.is_some(),
        "answered after the reset"
    );

    let audit = w.audit("rate_limits.reset").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["target"], format!("contact:{}", w.a.contact));

    let foreign = json!({"org_id": w.a.org.id, "contact_id": w.b.contact});
    let (status, _) = w
        .admin_post(
            "/api/admin/rate-limits/reset",
            &w.token(w.admin_a),
            &foreign,
        )
        .await;
    assert_eq!(status, 404, "a contact of another org");
    let (status, _) = w
        .admin_post(
            "/api/admin/rate-limits/reset",
            &w.token(w.admin_a),
            &json!({"org_id": "x"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn acknowledging_is_idempotent_and_resolved_alerts_refuse() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/alerts/{}/acknowledge", w.a.alert);
    let (status, body) = w.admin_post_empty(&path, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["acknowledged_by"], w.admin_a.to_string());
    let (status, again) = w.admin_post_empty(&path, &token).await;
    assert_eq!(status, 200);
    assert_eq!(again["acknowledged_at"], body["acknowledged_at"]);
    assert_eq!(w.audit("alert.acknowledge").await.len(), 1);

    update(
        w.db(),
        "alerts",
        ("id", &w.a.alert),
        json!({"status": "resolved"}),
    )
    .await;
    let (status, _) = w.admin_post_empty(&path, &token).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn owners_manage_members_and_an_org_keeps_an_owner() {
    let w = World::new().await;
    let owner = w.token(w.owner_a);
    let org = &w.a.org.id;
    let members = format!("/api/admin/members?org_id={org}");
    let newcomer = json!({"email": format!("{}@TEST.invalid", w.admin_b), "role": "viewer"});
    let (status, body) = w.admin_post(&members, &owner, &newcomer).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], w.admin_b.to_string());
    let (status, _) = w.admin_post(&members, &owner, &newcomer).await;
    assert_eq!(status, 409, "already a member");
    let stranger = json!({"email": "nobody-signed-up@test.invalid", "role": "viewer"});
    let (status, _) = w.admin_post(&members, &owner, &stranger).await;
    assert_eq!(status, 404);
    let (status, _) = w
        .admin_post(&members, &owner, &json!({"email": "a@b.c", "role": "god"}))
        .await;
    assert_eq!(status, 400);

    let member = |user: uuid::Uuid| format!("/api/admin/members/{user}?org_id={org}");
    let (status, body) = w
        .admin_patch(&member(w.viewer_a), &owner, &json!({"role": "admin"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "admin");
    let (status, _) = w.admin_delete(&member(w.admin_b), &owner).await;
    assert_eq!(status, 200);
    let (status, body) = w
        .admin_patch(&member(w.owner_a), &owner, &json!({"role": "viewer"}))
        .await;
    assert_eq!(status, 409, "the last owner stays: {body}");
    let (status, _) = w.admin_delete(&member(w.owner_a), &owner).await;
    assert_eq!(status, 409);

    let (status, list) = w.admin_get(&members, &w.token(w.viewer_a)).await;
    assert_eq!(status, 200);
    let roles: Vec<(String, String)> = list["data"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap_or_default().into(),
                m["role"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(roles.len(), 3);
    assert!(roles.contains(&(format!("{}@test.invalid", w.viewer_a), "admin".into())));

    assert_eq!(w.audit("member.add").await.len(), 1);
    assert_eq!(
        w.audit("member.role_change").await[0]["details"],
        json!({"from": "viewer", "to": "admin"})
    );
    assert_eq!(w.audit("member.remove").await.len(), 1);
}

#[tokio::test]
async fn lists_page_with_cursors_and_refuse_bad_filters() {
    let w = World::new().await;
    let rows: Vec<Value> = (0..5)
        .map(|i| json!({"org_id": w.a.org.id, "kind": format!("test_{i}"), "message": "m", "severity": "info"}))
        .collect();
    insert(w.db(), "alerts", json!(rows)).await;
    let token = w.token(w.viewer_a);
    let base = format!("/api/admin/alerts?org_id={}&limit=2", w.a.org.id);
    let mut seen = Vec::new();
    let mut path = base.clone();
    loop {
        let (status, page) = w.admin_get(&path, &token).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().expect("data");
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .map(|a| (a["created_at"].to_string(), a["id"].to_string())),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{base}&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "every alert once");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, ties by id");

    let (_, critical) = w
        .admin_get(
            &format!("/api/admin/alerts?org_id={}&severity=critical", w.a.org.id),
            &token,
        )
        .await;
    assert_eq!(critical["data"].as_array().map(Vec::len), Some(1));

    for bad in [
        "/api/admin/alerts?limit=0",
        "/api/admin/alerts?limit=500",
        "/api/admin/alerts?cursor=bm9wZQ",
        "/api/admin/alerts?status=sleeping",
        "/api/admin/alerts?org_id=42",
        "/api/admin/dead-letters?kind=parcel",
        "/api/admin/conversations?mode=robot",
        "/api/admin/audit-log?action=DROP%20TABLE",
    ] {
        let (status, body) = w.admin_get(bad, &token).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
}
