//! Dead letters: work that failed and waits for a retry.
//!
//! - `GET /api/admin/dead-letters?org_id=&status=&kind=&limit=&cursor=`: newest first, under
//!   RLS. Any member.
//! - `POST /api/admin/dead-letters/[id]/replay`: owners and admins. `admin_replay_dead_letter`
//!   claims the entry as the retry cron does (`retrying`, with the cron's lease; audited
//!   `dead_letter.replay`), then, in the background, the cron's own re-drive
//!   ([`crate::jobs::redrive`]) runs once: the
//!   inbound message is processed again or the reminder sent again, and the entry is settled
//!   (resolved, pending with a backoff, or discarded past the last attempt). Only inbound
//!   messages and reminders; one being retried right now: 409.
//! - `POST /api/admin/dead-letters/[id]/discard`: owners and admins; never retried again
//!   (audited `dead_letter.discard`).
//!
//! Resolved or discarded entries cannot be replayed or discarded again: 409.

use serde_json::{json, Value};

use super::{ok, rows, serve, Admin, Page};
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};
use crate::inbound::isolated;
use crate::jobs::redrive::{redrive_and_settle, Entry};

pub const LIST: Route = Route {
    source: "api/admin/dead-letters.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["GET"], |a| Box::pin(list(a)))),
};

pub const REPLAY: Route = Route {
    source: "api/admin/dead-letters/[id]/replay.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["POST"], |a| Box::pin(replay(a)))),
};

pub const DISCARD: Route = Route {
    source: "api/admin/dead-letters/[id]/discard.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["POST"], |a| Box::pin(discard(a)))),
};

const COLUMNS: &str =
    "id,org_id,kind,ref,payload,error,attempts,next_attempt_at,status,created_at,updated_at,resolved_at";

async fn list(admin: Admin) -> HandlerResult {
    let params = admin.params();
    let page = Page::from_params(&params)?;
    let mut query = admin.from("dead_letter_queue")?.select(COLUMNS);
    if let Some(org) = params.optional_id("org_id")? {
        query = query.eq("org_id", org);
    }
    let statuses = ["pending", "retrying", "resolved", "discarded"];
    if let Some(status) = params.one_of("status", &statuses)? {
        query = query.eq("status", status);
    }
    let kinds = [
        "inbound_message",
        "outbound_message",
        "reminder",
        "billing_event",
    ];
    if let Some(kind) = params.one_of("kind", &kinds)? {
        query = query.eq("kind", kind);
    }
    let found = rows(page.apply(query, "created_at")).await?;
    ok(&page.listing(found, "created_at"))
}

async fn replay(admin: Admin) -> HandlerResult {
    let id = admin.params().id("id")?;
    let lease = admin.ctx.state.settings.cron.lease.as_secs();
    let claimed: Value = admin
        .rpc(
            "admin_replay_dead_letter",
            &json!({"p_dead_letter_id": id, "p_lease_seconds": lease}),
        )
        .await?;
    let entry: Entry = serde_json::from_value(claimed.clone())
        .map_err(|e| ApiError::Internal(format!("unexpected dead letter: {e}")))?;
    let state = admin.ctx.state.clone();
    admin.ctx.background.run(async move {
        let Ok(db) = state.db() else { return };
        // The same bulkhead as the cron's: a failure or panic of the work is the entry's.
        match isolated(redrive_and_settle(&state.jobs, db, &entry)).await {
            Ok(Ok(_)) => {}
            // The lease runs out and the retry cron takes the entry over.
            Ok(Err(error)) => {
                tracing::error!(dead_letter = %entry.id, error = %error, "replay failed")
            }
            Err(_) => tracing::error!(dead_letter = %entry.id, "replay panicked"),
        }
    });
    ok(&claimed)
}

async fn discard(admin: Admin) -> HandlerResult {
    let id = admin.params().id("id")?;
    let entry: Value = admin
        .rpc(
            "admin_discard_dead_letter",
            &json!({"p_dead_letter_id": id}),
        )
        .await?;
    ok(&entry)
}
