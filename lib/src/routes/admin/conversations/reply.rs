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
//!    or throttling after the retries: 503. A send that may have reached Meta (no answer after
//!    the request went out) stays `sending` and is answered 502 saying so: never sent twice.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{PhoneNumberId, WaId, Wamid};
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};
use crate::routes::admin::{serve, Admin};
use crate::supabase::Caller;
use crate::whatsapp::{DeliveryError, GraphAction, GraphError, Sent, Template};

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

impl<'a> Outcome<'a> {
    fn delivered((sent, kind): &'a (Sent, &'static str)) -> Self {
        Self {
            status: if sent.simulated { "simulated" } else { "sent" },
            kind: Some(kind),
            wamid: sent.wamids.first(),
            wamids: &sent.wamids,
            error: None,
        }
    }

    fn failed(error: String) -> Self {
        Self {
            status: "failed",
            kind: None,
            wamid: None,
            wamids: &[],
            error: Some(error),
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
    let Some((from, to)) = addresses(&begun) else {
        let reason = "the stored business or contact number is invalid";
        record(&admin, begun.message_id, &Outcome::failed(reason.into())).await;
        return Err(ApiError::Internal(reason.into()));
    };
    let delivered = match send(&admin, &begun, &from, &to, text).await {
        Ok(delivered) => delivered,
        // Meta may have taken it: it stays `sending`, so nothing ever sends it again.
        Err(DeliveryError::Graph(error)) if error.maybe_sent() => {
            tracing::warn!(message_id = %begun.message_id, error = %error, "staff message outcome unknown");
            return Err(ApiError::BadGateway(
                "WhatsApp did not confirm the message; it may have been delivered: \
                 check the conversation before sending it again"
                    .into(),
            ));
        }
        Err(error) => {
            record(
                &admin,
                begun.message_id,
                &Outcome::failed(error.to_string()),
            )
            .await;
            return Err(refusal(&error));
        }
    };
    let outcome = Outcome::delivered(&delivered);
    let message = record(&admin, begun.message_id, &outcome)
        .await
        // Sent, but not recorded as such: it stays `sending` (never sent twice).
        .unwrap_or_else(|| json!({"id": begun.message_id, "status": outcome.status}));
    Ok(crate::routes::json(
        StatusCode::CREATED,
        &json!({"message": message}),
    ))
}

/// The business number to send from and the contact's number, as stored.
fn addresses(begun: &Begun) -> Option<(PhoneNumberId, WaId)> {
    Some((
        PhoneNumberId::parse(&begun.phone_number_id)?,
        WaId::parse(&begun.wa_id)?,
    ))
}

async fn send(
    admin: &Admin,
    begun: &Begun,
    from: &PhoneNumberId,
    to: &WaId,
    text: String,
) -> Result<(Sent, &'static str), DeliveryError> {
    let template = begun.reply_template.clone().map(|name| Template {
        name,
        language: begun.template_language.clone(),
    });
    let state = &admin.ctx.state;
    let retry_base = state.settings.processing.retry_base;
    state
        .whatsapp
        .deliver(from, to, text, begun.window_open, template, retry_base)
        .await
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
async fn record(admin: &Admin, id: Uuid, outcome: &Outcome<'_>) -> Option<Value> {
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
