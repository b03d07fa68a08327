//! `GET /api/admin/overview?org_id=`: the org's dashboard (`admin_overview`, one round trip):
//! this month's messages, active contacts and AI cost, the token budget left, open alerts,
//! pending dead letters and the health summary. Any member.

use serde_json::{json, Value};

use super::{ok, serve, Admin};
use crate::host::{HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/admin/overview.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["GET"], |a| Box::pin(overview(a)))),
};

async fn overview(admin: Admin) -> HandlerResult {
    let org = admin.params().id("org_id")?;
    let overview: Value = admin
        .rpc("admin_overview", &json!({"p_org_id": org}))
        .await?;
    ok(&overview)
}
