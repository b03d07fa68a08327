//! Texts the database bounds or cannot store: a staff message past WhatsApp's 4096 characters
//! is refused by the database itself (PostgREST called directly), and a NUL in any admin text
//! is made storable by the API, so a viewer still gets 403 and an owner is answered.

use serde_json::json;

use crate::helpers::admin::World;
use crate::helpers::lib::Caller;
use crate::helpers::*;

#[tokio::test]
async fn a_staff_text_past_4096_characters_is_refused_by_the_database() {
    let w = World::new().await;
    let owner = w.token(w.owner_a);
    let before = select(
        w.db(),
        "messages",
        &[("conversation_id", eq(&w.a.conversation))],
    )
    .await;
    for text in ["x".repeat(4097), "x".repeat(5_000_000)] {
        let error = w
            .db()
            .rpc("admin_begin_staff_message", Caller::User(&owner))
            .args(&json!({"p_conversation_id": w.a.conversation, "p_text": text}))
            .fetch::<serde_json::Value>()
            .await
            .expect_err("refused");
        assert_eq!(error.code(), Some("22023"), "{error}");
    }
    let after = select(
        w.db(),
        "messages",
        &[("conversation_id", eq(&w.a.conversation))],
    )
    .await;
    assert_eq!(after.len(), before.len(), "nothing stored");
}

#[tokio::test]
async fn a_nul_in_an_admin_text_is_403_for_a_viewer_and_stored_for_an_owner() {
    let graph = fake_graph(FakeGraph::ok()).await;
    let w = World::with_graph(&graph).await;
    let (owner, viewer) = (w.token(w.owner_a), w.token(w.viewer_a));
    let org = &w.a.org.id;
    let staff = format!("/api/admin/conversations/{}/messages", w.a.conversation);
    let settings = format!("/api/admin/settings?org_id={org}");
    let members = format!("/api/admin/members?org_id={org}");
    let text = json!({"text": "see you\u{0}soon"});
    let prompt = json!({"system_prompt": "Be brief.\u{0}"});
    let email = json!({"email": "nul\u{0}@test.invalid", "role": "viewer"});

    assert_eq!(w.admin_post(&staff, &viewer, &text).await.0, 403);
    assert_eq!(w.admin_put(&settings, &viewer, &prompt).await.0, 403);
    assert_eq!(w.admin_post(&members, &viewer, &email).await.0, 403);

    let (status, body) = w.admin_post(&staff, &owner, &text).await;
    assert_eq!(status, 201, "{body}");
    let sent = sends(&graph, "text").await;
    assert_eq!(sent[0]["text"]["body"], "see you\u{FFFD}soon");
    let (status, body) = w.admin_put(&settings, &owner, &prompt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["system_prompt"], "Be brief.\u{FFFD}");
    let (status, body) = w.admin_post(&members, &owner, &email).await;
    assert!(matches!(status, 400 | 404), "{status} {body}");
}
