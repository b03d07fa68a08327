//! The typed PostgREST client against the real PostgREST and PostgreSQL.

use serde::Deserialize;

use crate::helpers::jwt::user_token;
use crate::helpers::lib::{
    parse_content_range, Caller, Count, DbError, Prefer, Resolution, Return,
};
use crate::helpers::{
    set, spawn_app, spawn_app_with, stack_var, unique, ACME_ORG, ACME_VIEWER, NO_DATABASE,
};

#[derive(Debug, Deserialize)]
struct Plan {
    name: String,
    monthly_token_budget: i64,
}

#[derive(Debug, Deserialize)]
struct OrgRow {
    id: String,
}

#[tokio::test]
async fn service_role_reads_with_an_exact_count() {
    let app = spawn_app().await;
    let db = app.db();
    let answer = db
        .from("plans", Caller::Service)
        .select("name,monthly_token_budget")
        .order("monthly_token_budget", true)
        .limit(2)
        .count(Count::Exact)
        .fetch::<Vec<Plan>>()
        .await
        .expect("plans");
    assert_eq!(answer.data.len(), 2);
    assert_eq!(answer.data[0].name, "free");
    assert!(answer.data[0].monthly_token_budget < answer.data[1].monthly_token_budget);
    assert_eq!(
        answer.count,
        Some(3),
        "Content-Range total of the seeded plans"
    );
}

#[tokio::test]
async fn a_user_token_is_confined_by_row_level_security() {
    let app = spawn_app().await;
    let db = app.db();
    let token = user_token(ACME_VIEWER);
    let orgs = db
        .from("orgs", Caller::User(&token))
        .select("id")
        .fetch::<Vec<OrgRow>>()
        .await
        .expect("orgs as the viewer");
    let ids: Vec<&str> = orgs.data.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, vec![ACME_ORG], "a viewer of Acme sees Acme only");

    let anon = stack_var("SUPABASE_ANON_KEY");
    let none = db
        .from("orgs", Caller::User(&anon))
        .select("id")
        .fetch::<Vec<OrgRow>>()
        .await
        .expect("orgs as anon");
    assert!(none.data.is_empty(), "anon sees no org");
}

#[tokio::test]
async fn writes_honour_prefer_return_and_resolution() {
    let app = spawn_app().await;
    let db = app.db();
    let kind = format!("test_{}", unique());
    let row = serde_json::json!({"org_id": ACME_ORG, "kind": kind, "message": "disk almost full"});
    #[derive(Deserialize)]
    struct Alert {
        id: String,
        status: String,
    }
    let created = db
        .from("alerts", Caller::Service)
        .insert(&row)
        .prefer(Prefer {
            returning: Some(Return::Representation),
            ..Prefer::default()
        })
        .fetch::<Vec<Alert>>()
        .await
        .expect("insert alert");
    assert_eq!(created.data.len(), 1);
    assert_eq!(created.data[0].status, "open");

    let id = created.data[0].id.clone();
    let same = serde_json::json!({"id": id, "org_id": ACME_ORG, "kind": kind, "message": "again"});
    db.from("alerts", Caller::Service)
        .upsert(&same, "id", Resolution::IgnoreDuplicates)
        .execute()
        .await
        .expect("upsert ignoring the duplicate");
    let count = db
        .from("alerts", Caller::Service)
        .select("id")
        .eq("kind", &kind)
        .count(Count::Exact)
        .fetch::<Vec<serde_json::Value>>()
        .await
        .expect("count");
    assert_eq!(count.count, Some(1));

    db.from("alerts", Caller::Service)
        .eq("id", &id)
        .delete()
        .execute()
        .await
        .expect("delete");
}

#[tokio::test]
async fn postgrest_errors_come_back_typed() {
    let app = spawn_app().await;
    let db = app.db();
    let error = db
        .from("no_such_table", Caller::Service)
        .fetch::<Vec<serde_json::Value>>()
        .await
        .expect_err("unknown table");
    match &error {
        DbError::Api(e) => {
            assert!(e.status == 404 || e.status == 400, "status {}", e.status);
            assert!(!e.code.is_empty());
            assert!(!e.message.is_empty());
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(!error.is_unavailable());

    let bad = db
        .from("alerts", Caller::Service)
        .insert(&serde_json::json!({"org_id": ACME_ORG, "kind": "x", "message": "m", "severity": "apocalyptic"}))
        .execute()
        .await
        .expect_err("check constraint");
    assert_eq!(bad.code(), Some("23514"), "{bad:?}");
}

#[tokio::test]
async fn an_unreachable_postgrest_is_unavailable() {
    let app = spawn_app_with(|env| set(env, &[("POSTGREST_URL", NO_DATABASE)])).await;
    let db = app.db();
    let error = db
        .rpc("db_ping", Caller::Service)
        .execute()
        .await
        .expect_err("refused");
    assert!(matches!(error, DbError::Transport(_)));
    assert!(error.is_unavailable());
}

#[test]
fn content_range_totals() {
    assert_eq!(parse_content_range("0-24/3573"), Some(3573));
    assert_eq!(parse_content_range("*/0"), Some(0));
    assert_eq!(parse_content_range("0-24/*"), None);
    assert_eq!(parse_content_range("garbage"), None);
}

#[test]
fn prefer_header_lists_every_part() {
    let prefer = Prefer {
        returning: Some(Return::Representation),
        count: Some(Count::Exact),
        resolution: Some(Resolution::MergeDuplicates),
    };
    assert_eq!(
        prefer.header().as_deref(),
        Some("return=representation,count=exact,resolution=merge-duplicates")
    );
    assert_eq!(Prefer::default().header(), None);
}
