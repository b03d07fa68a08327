//! `POST /api/admin/rate-limits/reset` `{"org_id": …, "contact_id": … (optional)}`: clears the
//! rate-limit counters of the org, or of one of its contacts, so that a contact who hit the
//! per-minute limit is answered again at once. Owners and admins (`admin_reset_rate_limits`,
//! audited `rate_limits.reset`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{ok, serve, Admin};
use crate::domain::Id;
use crate::host::{HandlerResult, Route};

pub const RESET: Route = Route {
    source: "api/admin/rate-limits/reset.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["POST"], |a| Box::pin(reset(a)))),
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    org_id: Id,
    contact_id: Option<Id>,
}

async fn reset(admin: Admin) -> HandlerResult {
    let Body { org_id, contact_id } = admin.body()?;
    let reset: Value = admin
        .rpc(
            "admin_reset_rate_limits",
            &json!({"p_org_id": org_id, "p_contact_id": contact_id}),
        )
        .await?;
    ok(&reset)
}
