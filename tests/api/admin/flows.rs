//! What each admin endpoint does, end to end on the real stack: reads, every mutation with its
//! audit row, WhatsApp's rules for staff replies, replays that really reprocess, pagination.

use std::time::Duration;

use assistant::supabase::{Caller, Resolution};
use reqwest::Method;
use serde_json::{json, Value};

use super::World;
use crate::whatsapp::{fake_graph, select, sends, text_delivery, FakeGraph};

/// Polls `check` until it holds (at most 10 s).
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen in time");
}

async fn row(w: &World, table: &str, id: &str) -> Value {
    select(w.db(), table, &[("id", format!("eq.{id}"))])
        .await
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn me_lists_the_users_orgs_with_roles() {
    let w = World::new().await;
    let (status, body) = w
        .call(
            Method::GET,
            "/api/admin/me",
            Some(&w.token(w.admin_a)),
            None,
        )
        .await;
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
        .call(
            Method::GET,
            &format!("/api/admin/overview?org_id={org}"),
            Some(&token),
            None,
        )
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
        .call(
            Method::GET,
            &format!("/api/admin/usage?org_id={org}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["totals"]["tokens_in"], 1200);
    assert_eq!(usage["totals"]["tokens_out"], 300);
    assert_eq!(usage["days"].as_array().map(Vec::len), Some(1));
    assert_eq!(usage["contacts"][0]["contact_id"], w.a.contact);
    assert_eq!(usage["contacts"][0]["tokens"], 1500);

    for bad in [
        "from=2026-13-01",
        "from=2026-11-20&to=2026-11-01",
        "from=2020-01-01&to=2026-01-01",
    ] {
        let (status, body) = w
            .call(
                Method::GET,
                &format!("/api/admin/usage?org_id={org}&{bad}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = w
        .call(
            Method::GET,
            "/api/admin/overview?org_id=not-a-uuid",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn settings_change_only_the_fields_sent_and_are_audited() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/settings?org_id={}", w.a.org.id);
    let change = json!({"reply_template": null, "rate_limit_per_minute": 15});
    let (status, body) = w
        .call(Method::PUT, &path, Some(&token), Some(&change))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply_template"], Value::Null);
    assert_eq!(body["rate_limit_per_minute"], 15);
    assert_eq!(body["template_language"], "en_US", "other fields unchanged");

    let (_, read) = w.call(Method::GET, &path, Some(&token), None).await;
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
        let (status, body) = w.call(Method::PUT, &path, Some(&token), Some(&bad)).await;
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
    let (status, body) = w
        .call(Method::POST, &path, Some(&token), Some(&human))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "human");
    assert_eq!(
        row(&w, "conversations", &w.a.conversation).await["mode"],
        "human"
    );
    let (status, _) = w
        .call(Method::POST, &path, Some(&token), Some(&human))
        .await;
    assert_eq!(status, 200, "idempotent");
    let audit = w.audit("conversation.handoff").await;
    assert_eq!(audit.len(), 1, "only a change is audited");
    assert_eq!(audit[0]["details"], json!({"from": "bot", "to": "human"}));
    assert_eq!(audit[0]["target"], w.a.conversation);

    let (status, _) = w
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(&json!({"mode": "robot"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = w
        .call(
            Method::POST,
            "/api/admin/conversations/not-a-uuid/handoff",
            Some(&token),
            Some(&human),
        )
        .await;
    assert_eq!(status, 400);
    let unknown = format!("/api/admin/conversations/{}/handoff", uuid::Uuid::new_v4());
    let (status, _) = w
        .call(Method::POST, &unknown, Some(&token), Some(&human))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_conversation_comes_with_its_messages_newest_first() {
    let w = World::new().await;
    let token = w.token(w.viewer_a);
    let path = format!("/api/admin/conversations/{}", w.a.conversation);
    let (status, body) = w.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation"]["contact_name"], "Ana");
    assert_eq!(body["conversation"]["window_open"], true);
    assert_eq!(body["conversation"]["mode"], "bot");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
    let (_, first_page) = w
        .call(Method::GET, &format!("{path}?limit=1"), Some(&token), None)
        .await;
    let cursor = first_page["next_cursor"].as_str().expect("a second page");
    let (_, second_page) = w
        .call(
            Method::GET,
            &format!("{path}?limit=1&cursor={cursor}"),
            Some(&token),
            None,
        )
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
    let url = graph.uri();
    let w = World::with(|env| {
        env.insert("GRAPH_API_BASE_URL".into(), url);
        env.insert(
            "WHATSAPP_ACCESS_TOKEN".into(),
            "EAAtesttoken000000000000".into(),
        );
    })
    .await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/conversations/{}/messages", w.a.conversation);
    let say = |text: &str| json!({"text": text});

    // Inside the 24 h window: freeform text.
    let (status, body) = w
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(&say("We moved your appointment to 3 pm.")),
        )
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
    w.db()
        .from("conversations", Caller::Service)
        .eq("id", &w.a.conversation)
        .update(&json!({"last_inbound_at": chrono::Utc::now() - chrono::Duration::days(2)}))
        .execute()
        .await
        .expect("close the window");
    let (status, body) = w
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(&say("Are you still coming?")),
        )
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
    let (status, body) = w
        .call(Method::POST, &path, Some(&token), Some(&say("Hello?")))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("window")));

    // A contact who opted out: 409.
    w.db()
        .from("contacts", Caller::Service)
        .eq("id", &w.a.contact)
        .update(&json!({"opted_out": true}))
        .execute()
        .await
        .expect("opt out");
    let (status, _) = w
        .call(Method::POST, &path, Some(&token), Some(&say("Hello?")))
        .await;
    assert_eq!(status, 409);

    let staff = select(
        w.db(),
        "messages",
        &[
            ("conversation_id", format!("eq.{}", w.a.conversation)),
            ("payload->>sent_by", format!("eq.{}", w.admin_a)),
        ],
    )
    .await;
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
        let (status, _) = w.call(Method::POST, &path, Some(&token), Some(&bad)).await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn a_message_meta_refuses_is_recorded_failed_and_answered_502() {
    let graph = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let url = graph.uri();
    let w = World::with(|env| {
        env.insert("GRAPH_API_BASE_URL".into(), url);
        env.insert(
            "WHATSAPP_ACCESS_TOKEN".into(),
            "EAAtesttoken000000000000".into(),
        );
    })
    .await;
    let path = format!("/api/admin/conversations/{}/messages", w.a.conversation);
    let (status, body) = w
        .call(
            Method::POST,
            &path,
            Some(&w.token(w.admin_a)),
            Some(&json!({"text": "Hi"})),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("131026")));
    let staff = select(
        w.db(),
        "messages",
        &[
            ("conversation_id", format!("eq.{}", w.a.conversation)),
            ("payload->>sent_by", format!("eq.{}", w.admin_a)),
        ],
    )
    .await;
    assert_eq!(staff.len(), 1);
    assert_eq!(staff[0]["status"], "failed", "recorded, not lost");
}

#[tokio::test]
async fn replaying_an_inbound_dead_letter_processes_it_again_and_resolves_it() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let [inbound_letter, outbound_letter] = &w.a.dead_letters;
    let replay = |id: &str| format!("/api/admin/dead-letters/{id}/replay");
    let (status, body) = w
        .call(Method::POST, &replay(inbound_letter), Some(&token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "retrying");
    assert!(
        body["lease_until"].is_string(),
        "claimed with a lease, as the cron claims"
    );

    // Re-driven in the background as the retry cron does (outbox mode: the reply is simulated).
    eventually("the replayed message's processing", || async {
        row(&w, "dead_letter_queue", inbound_letter).await["status"] == "resolved"
    })
    .await;
    assert_eq!(
        row(&w, "messages", &w.a.inbound).await["status"],
        "processed"
    );
    let replies = select(
        w.db(),
        "messages",
        &[("reply_to", format!("eq.{}", w.a.inbound))],
    )
    .await;
    assert_eq!(replies.len(), 1, "answered once");
    assert_eq!(replies[0]["status"], "simulated");

    let (status, body) = w
        .call(Method::POST, &replay(inbound_letter), Some(&token), None)
        .await;
    assert_eq!(status, 409, "a resolved letter is not replayed: {body}");
    let (status, body) = w
        .call(Method::POST, &replay(outbound_letter), Some(&token), None)
        .await;
    assert_eq!(status, 409, "nothing re-drives this kind: {body}");

    let discard = format!("/api/admin/dead-letters/{outbound_letter}/discard");
    let (status, body) = w.call(Method::POST, &discard, Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "discarded");
    let (status, _) = w.call(Method::POST, &discard, Some(&token), None).await;
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
    w.db()
        .from("dead_letter_queue", Caller::Service)
        .eq("id", letter)
        .update(&json!({"status": "retrying", "lease_until": chrono::Utc::now() + chrono::Duration::minutes(2)}))
        .execute()
        .await
        .expect("claimed by a cron run");
    let path = format!("/api/admin/dead-letters/{letter}/replay");
    let (status, body) = w
        .call(Method::POST, &path, Some(&w.token(w.admin_a)), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("being retried")));
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
    assert_eq!(w.app.deliver(&body).await.status(), 200);
    assert!(w.app.reply_to(&wamid).await.is_none(), "throttled: silence");

    let reset = json!({"org_id": w.a.org.id, "contact_id": w.a.contact});
    let (status, body) = w
        .call(
            Method::POST,
            "/api/admin/rate-limits/reset",
            Some(&w.token(w.admin_a)),
            Some(&reset),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deleted"].as_i64().is_some_and(|n| n >= 1));

    let (body, wamid) = text_delivery(&w.a.org, &w.a.wa_id, "hello again");
    w.app.deliver(&body).await;
    assert!(
        w.app.reply_to(&wamid).await.is_some(),
        "answered after the reset"
    );

    let audit = w.audit("rate_limits.reset").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["target"], format!("contact:{}", w.a.contact));

    let foreign = json!({"org_id": w.a.org.id, "contact_id": w.b.contact});
    let (status, _) = w
        .call(
            Method::POST,
            "/api/admin/rate-limits/reset",
            Some(&w.token(w.admin_a)),
            Some(&foreign),
        )
        .await;
    assert_eq!(status, 404, "a contact of another org");
    let (status, _) = w
        .call(
            Method::POST,
            "/api/admin/rate-limits/reset",
            Some(&w.token(w.admin_a)),
            Some(&json!({"org_id": "x"})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn acknowledging_is_idempotent_and_resolved_alerts_refuse() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/alerts/{}/acknowledge", w.a.alert);
    let (status, body) = w.call(Method::POST, &path, Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["acknowledged_by"], w.admin_a.to_string());
    let (status, again) = w.call(Method::POST, &path, Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(again["acknowledged_at"], body["acknowledged_at"]);
    assert_eq!(w.audit("alert.acknowledge").await.len(), 1);

    w.db()
        .from("alerts", Caller::Service)
        .eq("id", &w.a.alert)
        .update(&json!({"status": "resolved"}))
        .execute()
        .await
        .expect("resolve");
    let (status, _) = w.call(Method::POST, &path, Some(&token), None).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn owners_manage_members_and_an_org_keeps_an_owner() {
    let w = World::new().await;
    let owner = w.token(w.owner_a);
    let org = &w.a.org.id;
    let members = format!("/api/admin/members?org_id={org}");
    let newcomer = json!({"email": format!("{}@TEST.invalid", w.admin_b), "role": "viewer"});
    let (status, body) = w
        .call(Method::POST, &members, Some(&owner), Some(&newcomer))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], w.admin_b.to_string());
    let (status, _) = w
        .call(Method::POST, &members, Some(&owner), Some(&newcomer))
        .await;
    assert_eq!(status, 409, "already a member");
    let stranger = json!({"email": "nobody-signed-up@test.invalid", "role": "viewer"});
    let (status, _) = w
        .call(Method::POST, &members, Some(&owner), Some(&stranger))
        .await;
    assert_eq!(status, 404);
    let (status, _) = w
        .call(
            Method::POST,
            &members,
            Some(&owner),
            Some(&json!({"email": "a@b.c", "role": "god"})),
        )
        .await;
    assert_eq!(status, 400);

    let member = |user: uuid::Uuid| format!("/api/admin/members/{user}?org_id={org}");
    let (status, body) = w
        .call(
            Method::PATCH,
            &member(w.viewer_a),
            Some(&owner),
            Some(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "admin");
    let (status, _) = w
        .call(Method::DELETE, &member(w.admin_b), Some(&owner), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = w
        .call(
            Method::PATCH,
            &member(w.owner_a),
            Some(&owner),
            Some(&json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 409, "the last owner stays: {body}");
    let (status, _) = w
        .call(Method::DELETE, &member(w.owner_a), Some(&owner), None)
        .await;
    assert_eq!(status, 409);

    let (status, list) = w
        .call(Method::GET, &members, Some(&w.token(w.viewer_a)), None)
        .await;
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
    crate::whatsapp::insert(w.db(), "alerts", json!(rows)).await;
    let token = w.token(w.viewer_a);
    let base = format!("/api/admin/alerts?org_id={}&limit=2", w.a.org.id);
    let mut seen = Vec::new();
    let mut path = base.clone();
    loop {
        let (status, page) = w.call(Method::GET, &path, Some(&token), None).await;
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
        .call(
            Method::GET,
            &format!("/api/admin/alerts?org_id={}&severity=critical", w.a.org.id),
            Some(&token),
            None,
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
        let (status, body) = w.call(Method::GET, bad, Some(&token), None).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
}
