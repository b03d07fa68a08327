//! `POST /api/admin/conversations/[id]/messages` `{"text": …}`: a staff member writes to the
//! contact as the business. Owners and admins.
//!
//! 1. `admin_begin_staff_message` (as the user, security definer): checks the caller's role and
//!    WhatsApp's rules, records the message as `sending` with its audit row (`message.send`).
//!    The 24 h window closed and no approved reply template, or a contact who opted out: 409.
//! 2. The text goes out through the WhatsApp client: freeform inside the window, else the
//!    reply template (also when Meta answers 131047), with the webhook's retries.
//! 3. `admin_finish_staff_message` (service role: the Graph outcome is the system's fact)
//!    records `sent` / `simulated` / `failed`. Meta refusing the message: 502; Meta unreachable
//!    or throttling after the retries: 503. The message stays recorded either way.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{PhoneNumberId, WaId, Wamid};
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};
use crate::routes::admin::{serve, Admin};
use crate::routes::webhook::process::{deliver, Channel, DeliveryError};
use crate::supabase::Caller;
use crate::whatsapp::{GraphAction, GraphError, Sent};

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

/// What `admin_begin_staff_message` returns: the recorded message and how to send it.
#[derive(Deserialize)]
struct Begun {
    message_id: Uuid,
    wa_id: String,
    phone_number_id: String,
    window_open: bool,
    reply_template: Option<String>,
    template_language: String,
}

/// The outcome, for `admin_finish_staff_message`.
#[derive(Serialize)]
struct Outcome<'a> {
    status: &'static str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    wamid: Option<&'a Wamid>,
    wamids: &'a [Wamid],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
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
    let delivered = send(&admin, &begun, text).await;
    let (outcome, result) = match &delivered {
        Ok((sent, kind)) => (
            Outcome {
                status: if sent.simulated { "simulated" } else { "sent" },
                kind: Some(kind),
                wamid: sent.wamids.first(),
                wamids: &sent.wamids,
                error: None,
            },
            Ok(()),
        ),
        Err(error) => (
            Outcome {
                status: "failed",
                kind: None,
                wamid: None,
                wamids: &[],
                error: Some(error.to_string()),
            },
            Err(refusal(error)),
        ),
    };
    let recorded = finish(&admin, begun.message_id, &outcome).await;
    result?;
    let message = recorded.unwrap_or_else(|error| {
        // Sent, but not recorded as such: it stays `sending` (never sent twice). Say what happened.
        tracing::error!(message_id = %begun.message_id, error = %error, "staff message sent but not recorded");
        json!({"id": begun.message_id, "status": outcome.status})
    });
    Ok(crate::routes::json(
        StatusCode::CREATED,
        &json!({"message": message}),
    ))
}

async fn send(
    admin: &Admin,
    begun: &Begun,
    text: String,
) -> Result<(Sent, &'static str), DeliveryError> {
    let invalid = |what: &str| GraphError::Decode(format!("the stored {what} is invalid"));
    let from = PhoneNumberId::parse(&begun.phone_number_id).ok_or_else(|| invalid("number"))?;
    let to = WaId::parse(&begun.wa_id).ok_or_else(|| invalid("contact"))?;
    let channel = Channel {
        window_open: begun.window_open,
        template: begun
            .reply_template
            .as_deref()
            .map(|name| (name, begun.template_language.as_str())),
    };
    deliver(&admin.ctx.state, &channel, &from, &to, text).await
}

/// The answer when the message could not be sent.
fn refusal(error: &DeliveryError) -> ApiError {
    match error {
        DeliveryError::Graph(e) if e.action() == GraphAction::Retry => {
            ApiError::Unavailable(e.to_string())
        }
        DeliveryError::Graph(GraphError::Api { code, .. }) => {
            ApiError::BadGateway(format!("WhatsApp refused the message (error {code})"))
        }
        DeliveryError::Graph(e) => {
            ApiError::BadGateway(format!("the message could not be sent: {e}"))
        }
        DeliveryError::NoTemplate => ApiError::Conflict(error.to_string()),
    }
}

async fn finish(admin: &Admin, id: Uuid, outcome: &Outcome<'_>) -> Result<Value, ApiError> {
    let db = admin.db()?;
    Ok(db
        .rpc("admin_finish_staff_message", Caller::Service)
        .args(&json!({"p_message_id": id, "p_result": outcome}))
        .fetch::<Value>()
        .await?
        .data)
}
