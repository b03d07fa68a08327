//! `POST /api/admin/conversations/[id]/messages` `{"text": …}`: a staff member writes to the
//! contact as the business. Owners and admins.
//!
//! 1. `admin_begin_staff_message` (as the user, security definer): checks the caller's role and
//!    WhatsApp's rules, records the message as `sending` with its audit row (`message.send`).
//!    The 24 h window closed and no approved reply template, or a contact who opted out: 409.
//! 2. The text goes out through the one send step ([`WhatsApp::send_text`]): freeform inside
//!    the window, else the reply template (also when Meta answers 131047).
//! 3. `admin_finish_staff_message` (service role: the Graph outcome is the system's fact)
//!    records `sent` / `simulated` / `failed`. Meta refusing the message: 502; Meta unreachable
//!    or throttling after the retries: 503. A send that may have reached Meta (no answer after
//!    the request went out) stays `sending` and is answered 502 saying so: the retry cron's
//!    outcome resolver confirms it by its status or sends it again (`jobs::outcomes`).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::super::{serve, Admin};
use crate::domain::{PhoneNumberId, WaId};
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};
use crate::supabase::Caller;
#[cfg(doc)]
use crate::whatsapp::WhatsApp;
use crate::whatsapp::{Delivered, DeliveryError, GraphAction, GraphError, Recipient, Template};

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

/// What `admin_begin_staff_message` returns: the recorded message and how to send it. The
/// numbers stay text here: an invalid stored one is recorded as this message's failure.
#[derive(Deserialize)]
struct Begun {
    message_id: Uuid,
    wa_id: String,
    phone_number_id: String,
    window_open: bool,
    reply_template: Option<String>,
    template_language: String,
}

/// The outcome, for `admin_finish_staff_message`: what was sent, or why it was not.
#[derive(Serialize)]
#[serde(untagged)]
enum StaffOutcome<'a> {
    Delivered(&'a Delivered),
    Failed {
        status: &'static str,
        wamids: [(); 0],
        error: String,
    },
}

impl StaffOutcome<'_> {
    fn failed(error: String) -> Self {
        Self::Failed {
            status: "failed",
            wamids: [],
            error,
        }
    }
}

async fn reply(admin: Admin) -> HandlerResult {
    let conversation = admin.params().id("id")?;
    let Body { text } = admin.body()?;
    if text.trim().is_empty() || text.chars().count() > MAX_CHARS {
        return Err(ApiError::BadRequest(format!(
            "text: 1 to {MAX_CHARS} characters"
        )));
    }
    let begun: Begun = admin
        .rpc(
            "admin_begin_staff_message",
            &json!({"p_conversation_id": conversation, "p_text": text}),
        )
        .await?;
    let Some(recipient) = recipient(&begun) else {
        let reason = "the stored business or contact number is invalid";
        record(
            &admin,
            begun.message_id,
            &StaffOutcome::failed(reason.into()),
        )
        .await;
        return Err(ApiError::Internal(reason.into()));
    };
    let sent = admin
        .ctx
        .state
        .whatsapp
        .send_text(&recipient, text, begun.message_id)
        .await;
    let delivered = match sent {
        Ok(delivered) => delivered,
        // Meta may have taken it: it stays `sending`, for the outcome resolver alone.
        Err(DeliveryError::Graph(error)) if error.maybe_sent() => {
            tracing::warn!(message_id = %begun.message_id, error = %error, "staff message outcome unknown");
            return Err(ApiError::BadGateway(
                "WhatsApp did not confirm the message; it may have been delivered: \
                 it is confirmed or sent again automatically, do not send it again"
                    .into(),
            ));
        }
        Err(error) => {
            let failed = StaffOutcome::failed(error.to_string());
            record(&admin, begun.message_id, &failed).await;
            return Err(refusal(&error));
        }
    };
    let message = record(
        &admin,
        begun.message_id,
        &StaffOutcome::Delivered(&delivered),
    )
    .await
    // Sent, but not recorded as such: it stays `sending` (never sent twice).
    .unwrap_or_else(|| json!({"id": begun.message_id, "status": delivered.status}));
    Ok(crate::response::json(
        StatusCode::CREATED,
        &json!({"message": message}),
    ))
}

/// The contact, from the number of the conversation, as stored (`None`: invalid).
fn recipient(begun: &Begun) -> Option<Recipient> {
    Some(Recipient {
        from: PhoneNumberId::parse(&begun.phone_number_id)?,
        to: WaId::parse(&begun.wa_id)?,
        window_open: begun.window_open,
        template: begun.reply_template.clone().map(|name| Template {
            name,
            language: begun.template_language.clone(),
        }),
    })
}

/// The answer when the message certainly was not sent: Meta refused it (502), Meta throttled
/// or failed until the retries ran out (503), or the window needs a template there is not (409).
fn refusal(error: &DeliveryError) -> ApiError {
    match error {
        DeliveryError::Graph(e @ GraphError::Api { code, .. })
            if e.action() != GraphAction::Retry =>
        {
            ApiError::BadGateway(format!("WhatsApp refused the message (error {code})"))
        }
        DeliveryError::Graph(e) => ApiError::Unavailable(e.to_string()),
        DeliveryError::NoTemplate => ApiError::Conflict(error.to_string()),
    }
}

/// Records the outcome (`admin_finish_staff_message`, service role); a failure to record is
/// logged (the message then stays `sending`, which never sends it again).
async fn record(admin: &Admin, id: Uuid, outcome: &StaffOutcome<'_>) -> Option<Value> {
    let db = admin.db().ok()?;
    let recorded = db
        .rpc("admin_finish_staff_message", Caller::Service)
        .args(&json!({"p_message_id": id, "p_result": outcome}))
        .fetch::<Value>()
        .await;
    match recorded {
        Ok(answer) => Some(answer.data),
        Err(error) => {
            tracing::error!(message_id = %id, error = %error, "staff message outcome not recorded");
            None
        }
    }
}
