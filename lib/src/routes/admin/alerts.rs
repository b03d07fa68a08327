//! Alerts of the caller's orgs.
//!
//! - `GET /api/admin/alerts?org_id=&status=&severity=&limit=&cursor=`: newest first, under RLS.
//!   Any member.
//! - `POST /api/admin/alerts/[id]/acknowledge`: owners and admins (`admin_acknowledge_alert`,
//!   audited `alert.acknowledge`); acknowledging again changes nothing; a resolved alert: 409.

use serde_json::{json, Value};

use super::{ok, rows, serve, Admin, Page};
use crate::host::{HandlerResult, Route};

pub const LIST: Route = Route {
    source: "api/admin/alerts.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["GET"], |a| Box::pin(list(a)))),
};

pub const ACKNOWLEDGE: Route = Route {
    source: "api/admin/alerts/[id]/acknowledge.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["POST"], |a| Box::pin(acknowledge(a)))),
};

const COLUMNS: &str =
    "id,org_id,kind,severity,message,status,acknowledged_by,acknowledged_at,resolved_at,created_at";

async fn list(admin: Admin) -> HandlerResult {
    let params = admin.params();
    let page = Page::from_params(&params)?;
    let mut query = admin.from("alerts")?.select(COLUMNS);
    if let Some(org) = params.optional_id("org_id")? {
        query = query.eq("org_id", org);
    }
    if let Some(status) = params.one_of("status", &["open", "acknowledged", "resolved"])? {
        query = query.eq("status", status);
    }
    if let Some(severity) = params.one_of("severity", &["info", "warning", "critical"])? {
        query = query.eq("severity", severity);
    }
    let found = rows(page.apply(query, "created_at")).await?;
    ok(&page.listing(found, "created_at"))
}

async fn acknowledge(admin: Admin) -> HandlerResult {
    let id = admin.params().id("id")?;
    let alert: Value = admin
        .rpc("admin_acknowledge_alert", &json!({"p_alert_id": id}))
        .await?;
    ok(&alert)
}
