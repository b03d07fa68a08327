//! `POST /api/admin/conversations/[id]/messages` `{"text": …}`: a staff member writes to the
//! contact as the business ([`send::staff_message`]). Owners and admins.
//!
//! The 24 h window closed and no approved reply template, or a contact who opted out: 409.
//! Meta refusing the message: 502; Meta unreachable or throttling after the retries: 503. A
//! send that may have reached Meta (no answer after the request went out) stays `sending` and
//! is answered 502 saying so: the retry cron's outcome resolver confirms it by its status or
//! sends it again (`jobs::outcomes`).

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::super::{db_error, serve, Admin};
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};
use crate::send::{self, SendError, StaffError};
use crate::whatsapp::{GraphAction, GraphError};

pub const MESSAGES: Route = Route {
    source: "api/admin/conversations/[id]/messages.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["POST"], |a| Box::pin(reply(a)))),
};

/// WhatsApp's limit for one text message.
const MAX_CHARS: usize = crate::whatsapp::graph::MAX_TEXT_CHARS;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    text: String,
}

async fn reply(admin: Admin) -> HandlerResult {
    let conversation = admin.params().id("id")?;
    let Body { text } = admin.body()?;
    if text.trim().is_empty() || text.chars().count() > MAX_CHARS {
        return Err(ApiError::BadRequest(format!(
            "text: 1 to {MAX_CHARS} characters"
        )));
    }
    let whatsapp = &admin.ctx.state.whatsapp;
    let sent = send::staff_message(whatsapp, admin.db()?, admin.caller(), conversation, text);
    let message = sent.await.map_err(answer)?;
    Ok(crate::response::json(
        StatusCode::CREATED,
        &json!({"message": message}),
    ))
}

/// The answer when the message was not sent: refused by the database (its own mapping), may
/// have been sent (502, do not send again), Meta refused it (502), Meta throttled or failed
/// until the retries ran out (503), the window needs a template there is not (409).
fn answer(error: StaffError) -> ApiError {
    let error = match error {
        StaffError::Begin(error) => return db_error(error),
        StaffError::Send(error) => error,
    };
    match &error {
        _ if error.maybe_sent() => ApiError::BadGateway(
            "WhatsApp did not confirm the message; it may have been delivered: \
             it is confirmed or sent again automatically, do not send it again"
                .into(),
        ),
        SendError::Graph(e @ GraphError::Api { code, .. }) if e.action() != GraphAction::Retry => {
            ApiError::BadGateway(format!("WhatsApp refused the message (error {code})"))
        }
        SendError::Graph(e) => ApiError::Unavailable(e.to_string()),
        SendError::NoTemplate => ApiError::Conflict(error.to_string()),
        SendError::Recipient(_) | SendError::Content(_) => ApiError::Internal(error.to_string()),
    }
}
