//! Members of an org. Listing is for any member; changes are for owners.
//!
//! - `GET /api/admin/members?org_id=`: members with their email and role
//!   (`admin_list_members`: emails live in `auth.users`, which users cannot read).
//! - `POST /api/admin/members?org_id=` `{"email": …, "role": "owner"|"admin"|"viewer"}`: adds a
//!   user who has signed up (`admin_add_member`; unknown email: 404; already a member: 409).
//! - `PATCH /api/admin/members/[id]?org_id=` `{"role": …}`: changes a role under RLS
//!   (`admin_set_member_role`); the last owner cannot be demoted: 409.
//! - `DELETE /api/admin/members/[id]?org_id=`: removes a member under RLS
//!   (`admin_remove_member`); the last owner cannot leave: 409.
//!
//! Each change writes an audit row (`member.add`, `member.role_change`, `member.remove`).

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ok, serve, Admin};
use crate::domain::Role;
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};

pub const LIST: Route = Route {
    source: "api/admin/members.rs",
    handler: |request, ctx| {
        Box::pin(serve(request, ctx, &["GET", "POST"], |a| {
            Box::pin(members(a))
        }))
    },
};

pub const ONE: Route = Route {
    source: "api/admin/members/[id].rs",
    handler: |request, ctx| {
        Box::pin(serve(request, ctx, &["PATCH", "DELETE"], |a| {
            Box::pin(member(a))
        }))
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    email: String,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: Role,
}

async fn members(admin: Admin) -> HandlerResult {
    let org = admin.params().id("org_id")?;
    if admin.request.method() == Method::POST {
        let NewMember { email, role } = admin.body()?;
        let email = email.trim();
        if email.len() > 320 || !email.contains('@') {
            return Err(ApiError::BadRequest(
                "email must be an email address".into(),
            ));
        }
        let added: Value = admin
            .rpc(
                "admin_add_member",
                &json!({"p_org_id": org, "p_email": email, "p_role": role}),
            )
            .await?;
        return Ok(crate::response::json(StatusCode::CREATED, &added));
    }
    let members: Value = admin
        .rpc("admin_list_members", &json!({"p_org_id": org}))
        .await?;
    ok(&json!({"org_id": org, "data": members}))
}

async fn member(admin: Admin) -> HandlerResult {
    let params = admin.params();
    let org = params.id("org_id")?;
    let user = params.id("id")?;
    let changed: Value = if admin.request.method() == Method::DELETE {
        admin
            .rpc(
                "admin_remove_member",
                &json!({"p_org_id": org, "p_user_id": user}),
            )
            .await?
    } else {
        let RoleChange { role } = admin.body()?;
        admin
            .rpc(
                "admin_set_member_role",
                &json!({"p_org_id": org, "p_user_id": user, "p_role": role}),
            )
            .await?
    };
    ok(&changed)
}
