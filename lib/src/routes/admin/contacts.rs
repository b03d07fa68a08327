//! `POST /api/admin/contacts/[id]/erase`: erases a contact's data on request. Owners only
//! (`admin_erase_contact`, audited `contact.erase` with the counts, never the erased data):
//! conversations, messages, reminders, expenses, calendar events, tool executions and
//! rate-limit windows deleted, AI requests kept for the org's cost without the contact; a
//! contact who opted out keeps only its number and opt-out, any other is deleted.

use serde_json::{json, Value};

use super::{ok, serve, Admin};
use crate::host::{HandlerResult, Route};

pub const ERASE: Route = Route {
    source: "api/admin/contacts/[id]/erase.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["POST"], |a| Box::pin(erase(a)))),
};

async fn erase(admin: Admin) -> HandlerResult {
    let id = admin.params().id("id")?;
    let erased: Value = admin
        .rpc("admin_erase_contact", &json!({"p_contact_id": id}))
        .await?;
    ok(&erased)
}
