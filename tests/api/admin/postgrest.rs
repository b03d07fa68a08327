//! The same isolation straight against PostgREST, with the tokens the admin API forwards: org B
//! reads none of org A's rows in any table or view, and cannot call its way around RLS.

use serde_json::{json, Value};

use crate::helpers::admin::World;
use crate::helpers::jwt::{claims, es256, TEST_KID};
use crate::helpers::lib::{Caller, DbError};

/// Every table and view PostgREST exposes, with the column naming its org.
const RELATIONS: &[(&str, &str)] = &[
    ("orgs", "id"),
    ("org_members", "org_id"),
    ("whatsapp_numbers", "org_id"),
    ("assistant_settings", "org_id"),
    ("contacts", "org_id"),
    ("conversations", "org_id"),
    ("conversation_summaries", "org_id"),
    ("messaging_windows", "org_id"),
    ("messages", "org_id"),
    ("webhooks", "org_id"),
    ("ai_requests", "org_id"),
    ("tool_executions", "org_id"),
    ("reminders", "org_id"),
    ("expenses", "org_id"),
    ("calendar_events", "org_id"),
    ("rate_limits", "org_id"),
    ("dead_letter_queue", "org_id"),
    ("alerts", "org_id"),
    ("audit_log_entries", "org_id"),
    ("system_health_summary", "org_id"),
    ("ai_cost_per_contact_monthly", "org_id"),
    ("ai_cost_per_org_monthly", "org_id"),
];

async fn read(w: &World, token: &str, table: &str) -> Vec<Value> {
    w.db()
        .from(table, Caller::User(token))
        .select("*")
        .fetch::<Vec<Value>>()
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"))
        .data
}

#[tokio::test]
async fn org_b_reads_no_row_of_org_a_in_any_relation() {
    let w = World::new().await;
    let admin_b = w.token(w.admin_b);
    let admin_a = es256(&claims(w.admin_a), TEST_KID);
    for (table, column) in RELATIONS {
        let seen_by_b = read(&w, &admin_b, table).await;
        assert!(
            seen_by_b.iter().all(|row| row[column] != json!(w.a.org.id)),
            "admin B sees org A in {table}"
        );
        let seen_by_a = read(&w, &admin_a, table).await;
        assert!(
            seen_by_a.iter().all(|row| row[column] == json!(w.a.org.id)),
            "admin A (ES256) sees only org A in {table}"
        );
    }
    // The ES256 token really reads (PostgREST verified it with the same key set).
    for table in [
        "orgs",
        "conversations",
        "messages",
        "alerts",
        "dead_letter_queue",
        "conversation_summaries",
    ] {
        assert!(
            !read(&w, &admin_a, table).await.is_empty(),
            "admin A reads {table}"
        );
    }
}

#[tokio::test]
async fn org_b_cannot_write_or_call_its_way_into_org_a() {
    let w = World::new().await;
    let admin_b = w.token(w.admin_b);
    let db = w.db();
    // The handoff is written only through its audited function, which B cannot reach A with.
    let direct = db
        .from("conversations", Caller::User(&admin_b))
        .eq("id", &w.a.conversation)
        .update(&json!({"mode": "human"}))
        .execute()
        .await;
    assert_eq!(
        direct
            .err()
            .and_then(|e| e.code().map(str::to_string))
            .as_deref(),
        Some("42501"),
        "no user updates conversations directly"
    );

    let code =
        |result: Result<Value, DbError>| result.err().and_then(|e| e.code().map(str::to_string));
    let call = |function: &'static str, args: Value| {
        let token = admin_b.clone();
        async move {
            db.rpc(function, Caller::User(&token))
                .args(&args)
                .fetch::<Value>()
                .await
                .map(|answer| answer.data)
        }
    };
    assert_eq!(
        code(
            call(
                "admin_set_conversation_mode",
                json!({"p_conversation_id": w.a.conversation, "p_mode": "human"})
            )
            .await
        )
        .as_deref(),
        Some("P0002"),
        "no row of org A is updatable by B"
    );
    let conversation = crate::helpers::select(
        db,
        "conversations",
        &[("id", format!("eq.{}", w.a.conversation))],
    )
    .await;
    assert_eq!(conversation[0]["mode"], "bot");
    assert_eq!(
        code(call("admin_overview", json!({"p_org_id": w.a.org.id})).await).as_deref(),
        Some("P0002")
    );
    assert_eq!(
        code(
            call(
                "admin_replay_dead_letter",
                json!({"p_dead_letter_id": w.a.dead_letters[0], "p_lease_seconds": 60})
            )
            .await
        )
        .as_deref(),
        Some("P0002")
    );
    assert_eq!(
        code(
            call(
                "admin_begin_staff_message",
                json!({"p_conversation_id": w.a.conversation, "p_text": "hi"})
            )
            .await
        )
        .as_deref(),
        Some("P0002")
    );
    let forged = json!({"p_message_id": w.a.inbound, "p_result": {"status": "sent"}});
    assert_eq!(
        code(call("admin_finish_staff_message", forged).await).as_deref(),
        Some("42501"),
        "the outcome of a send is the service role's to record"
    );
    let insert = db
        .from("audit_log_entries", Caller::User(&admin_b))
        .insert(&json!({"org_id": w.a.org.id, "actor_id": w.admin_b, "action": "forged"}))
        .execute()
        .await;
    assert_eq!(
        insert
            .err()
            .and_then(|e| e.code().map(str::to_string))
            .as_deref(),
        Some("42501")
    );
    assert!(w.audit("forged").await.is_empty());
}

#[tokio::test]
async fn postgrest_refuses_tokens_it_cannot_verify() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let (signed, _) = token.rsplit_once('.').expect("jwt");
    let (_, payload) = signed.split_once('.').expect("jwt");
    let forged_signature = format!("{signed}.AAAA");
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    for token in [forged_signature, unsigned] {
        let error = w
            .db()
            .from("orgs", Caller::User(&token))
            .select("id")
            .fetch::<Vec<Value>>()
            .await
            .expect_err("refused");
        assert_eq!(error.code(), Some("PGRST301"), "{error}");
    }
}
