//! `GET /api/admin/usage?org_id=&from=&to=`: AI requests, tokens and cost per UTC day and per
//! contact (`admin_usage`). Dates `YYYY-MM-DD`, inclusive; default: this month so far. Any member.

use chrono::{Datelike, Utc};
use serde_json::{json, Value};

use super::{ok, serve, Admin};
use crate::host::{HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/admin/usage.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["GET"], |a| Box::pin(usage(a)))),
};

async fn usage(admin: Admin) -> HandlerResult {
    let params = admin.params();
    let org = params.id("org_id")?;
    let today = Utc::now().date_naive();
    let to = params.date("to")?.unwrap_or(today);
    let from = params
        .date("from")?
        .unwrap_or_else(|| to.with_day(1).unwrap_or(to));
    let usage: Value = admin
        .rpc(
            "admin_usage",
            &json!({"p_org_id": org, "p_from": from, "p_to": to}),
        )
        .await?;
    ok(&usage)
}
