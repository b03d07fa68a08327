//! `GET /api/admin/audit-log?org_id=&action=&actor_id=&limit=&cursor=`: who did what, newest
//! first, under RLS. Any member. Entries are written by the mutating admin actions, in the same
//! transaction as the change; nobody can edit or delete them.

use super::{ok, rows, serve, Admin, Page};
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/admin/audit-log.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["GET"], |a| Box::pin(list(a)))),
};

const COLUMNS: &str = "id,org_id,actor_id,action,target,details,created_at";

async fn list(admin: Admin) -> HandlerResult {
    let params = admin.params();
    let page = Page::from_params(&params)?;
    let mut query = admin.from("audit_log_entries")?.select(COLUMNS);
    if let Some(org) = params.optional_id("org_id")? {
        query = query.eq("org_id", org);
    }
    if let Some(actor) = params.optional_id("actor_id")? {
        query = query.eq("actor_id", actor);
    }
    if let Some(action) = params.get("action") {
        let valid = action.len() <= 64
            && action
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
        if !valid {
            return Err(ApiError::BadRequest(
                "action must be an action name such as settings.update".into(),
            ));
        }
        query = query.eq("action", action);
    }
    let found = rows(page.apply(query, "created_at")).await?;
    ok(&page.listing(found, "created_at"))
}
