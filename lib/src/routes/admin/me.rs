//! `GET /api/admin/me`: the signed-in user and their orgs with their role in each.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{ok, serve, Admin};
use crate::domain::Role;
use crate::host::{HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/admin/me.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["GET"], |a| Box::pin(me(a)))),
};

#[derive(Deserialize)]
struct Membership {
    org_id: Uuid,
    role: Role,
    orgs: Option<OrgRow>,
}

#[derive(Deserialize)]
struct OrgRow {
    name: String,
    plan: String,
    subscription_status: String,
}

#[derive(Serialize)]
struct Org {
    id: Uuid,
    name: String,
    role: Role,
    plan: String,
    subscription_status: String,
}

async fn me(admin: Admin) -> HandlerResult {
    let memberships: Vec<Membership> = admin
        .from("org_members")?
        .select("org_id,role,orgs(name,plan,subscription_status)")
        .eq("user_id", admin.user.id)
        .order("created_at", true)
        .fetch()
        .await
        .map_err(super::db_error)?
        .data;
    let orgs: Vec<Org> = memberships
        .into_iter()
        .filter_map(|m| {
            let org = m.orgs?;
            Some(Org {
                id: m.org_id,
                name: org.name,
                role: m.role,
                plan: org.plan,
                subscription_status: org.subscription_status,
            })
        })
        .collect();
    ok(&json!({
        "user": {"id": admin.user.id, "email": admin.user.email},
        "orgs": orgs,
    }))
}
