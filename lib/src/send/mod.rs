//! The one send step of every outbound message (a turn's reply, a reminder, a resend, a staff
//! message): the message is recorded `sending` before its Graph call, sent once
//! ([`send`]), and its [`Outcome`] recorded after it. Its callers only say what to send
//! ([`Content`]) to whom ([`StoredRecipient`], or [`recipient`] for numbers decoded already).
//!
//! The one rule for what may have been sent ([`SendError::maybe_sent`]): a send Meta may have
//! taken is never repeated and never recorded as failed; it stays `sending` until its status
//! or the outcome resolver (`jobs::outcomes`) settles it.

mod staff;

pub use staff::{staff_message, StaffError};

use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{Address, GroupId, MessageKind, PhoneNumberId};
use crate::supabase::{Caller, Postgrest, Query};
use crate::whatsapp::{
    Delivered, DeliveryError, GraphAction, GraphError, Recipient, Rich, Template, WhatsApp,
};

/// What to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Freeform inside the 24 h window, else the template with the text as its parameter.
    Text(String),
    /// Reply buttons, a list or a reaction inside the window, else the template with its
    /// readable text (choices listed) as its parameter.
    Rich(Rich),
}

impl Content {
    /// The `messages.type` it is recorded as before its send.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text(_) => MessageKind::Text,
            Self::Rich(rich) => rich.kind(),
        }
    }

    /// What a person reads (`messages.body`).
    pub fn readable(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Rich(rich) => rich.readable(),
        }
    }

    /// What is stored beside the body so a retry resends the same content
    /// (`messages.payload`, merged): `{"rich": …}` for a rich reply.
    pub fn stored(&self) -> Option<Value> {
        match self {
            Self::Text(_) => None,
            Self::Rich(rich) => Some(json!({ "rich": rich })),
        }
    }

    /// The content recorded with [`Content::readable`] as `body` and `payload.rich` as `rich`:
    /// the same rich reply, checked again, or the text.
    pub fn from_stored(body: Option<String>, rich: Option<&Value>) -> Result<Self, SendError> {
        match (rich.filter(|rich| !rich.is_null()), body) {
            (Some(rich), _) => Rich::from_stored(rich)
                .map(Self::Rich)
                .map_err(|_| SendError::Content("the stored rich reply is invalid")),
            (None, Some(text)) => Ok(Self::Text(text)),
            (None, None) => Err(SendError::Content("the message has no text")),
        }
    }
}

/// How a send ended: what was delivered, or why not.
pub type Outcome = Result<Delivered, SendError>;

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Graph(GraphError),
    /// Outside the window, and the org has no usable template for it (none configured, or
    /// Meta paused, disabled or rejected it: `private.usable_template`).
    #[error("outside the 24 h window and no usable template: none is configured, or Meta paused, disabled or rejected it")]
    NoTemplate,
    /// The stored recipient does not decode (the reason names no stored value).
    #[error("{0}")]
    Recipient(&'static str),
    /// The stored content cannot be sent again (the reason names no stored value).
    #[error("{0}")]
    Content(&'static str),
}

impl From<DeliveryError> for SendError {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::Graph(error) => Self::Graph(error),
            DeliveryError::NoTemplate => Self::NoTemplate,
        }
    }
}

impl SendError {
    /// Whether Meta may have taken the message: it is then never sent again, nor recorded
    /// as failed.
    pub fn maybe_sent(&self) -> bool {
        matches!(self, Self::Graph(error) if error.maybe_sent())
    }

    /// Whether the access token expired (an alert for the operator).
    pub fn token_expired(&self) -> bool {
        matches!(self, Self::Graph(error) if error.action() == GraphAction::TokenExpired)
    }
}

/// The recipient as the database stores it (numbers as text); `template` is the org's
/// template for this kind of message (reply or reminder).
#[derive(Clone, Debug, Deserialize)]
pub struct StoredRecipient {
    /// The org's business number; `None` when the contact has no conversation with one.
    phone_number_id: Option<String>,
    wa_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    /// A group conversation's group: sent there, never to the person.
    #[serde(default)]
    group_id: Option<String>,
    window_open: bool,
    #[serde(alias = "reply_template", alias = "reminder_template")]
    template: Option<String>,
    template_language: String,
}

impl StoredRecipient {
    /// Decoded into domain types, or why it cannot be sent to.
    pub fn decode(&self) -> Result<Recipient, SendError> {
        let from = self.phone_number_id.as_deref().ok_or(SendError::Recipient(
            "the contact has no conversation with a WhatsApp number of the org",
        ))?;
        let from = PhoneNumberId::parse(from).ok_or(SendError::Recipient(
            "the stored business number is invalid",
        ))?;
        let to = match self.group_id.as_deref() {
            Some(group) => GroupId::parse(group)
                .map(Address::Group)
                .ok_or(SendError::Recipient("the stored group id is invalid"))?,
            None => Address::parse(self.wa_id.as_deref(), self.user_id.as_deref()).ok_or(
                SendError::Recipient("the stored contact has no valid number or user id"),
            )?,
        };
        let template = self.template.clone();
        recipient(
            from,
            to,
            self.window_open,
            template,
            &self.template_language,
        )
    }

    /// Freeform is allowed (the contact wrote within the last 24 h).
    pub fn window_open(&self) -> bool {
        self.window_open
    }

    /// Whether there is a way to reach the contact: the window, or a template.
    pub fn reachable(&self) -> bool {
        self.window_open || self.template.is_some()
    }
}

/// Who sends to whom: the one constructor of a [`Recipient`]. A group is sent to only inside
/// its window (its last message within 24 h): a template is never sent to a group.
pub fn recipient(
    from: PhoneNumberId,
    to: Address,
    window_open: bool,
    template: Option<String>,
    language: &str,
) -> Result<Recipient, SendError> {
    if matches!(to, Address::Group(_)) && !window_open {
        return Err(SendError::Recipient(
            "the group's 24-hour window is closed (templates are never sent to a group)",
        ));
    }
    Ok(Recipient {
        from,
        to,
        window_open,
        template: template.map(|name| Template {
            name,
            language: language.to_owned(),
        }),
    })
}

/// Sends `content` to `to` as the message `id` (recorded `sending` before): its id goes out as
/// the callback data every status echoes.
pub async fn send(whatsapp: &WhatsApp, id: Uuid, to: &Recipient, content: Content) -> Outcome {
    match content {
        Content::Text(text) => Ok(whatsapp.send_text(to, text, id).await?),
        Content::Rich(rich) => Ok(whatsapp.send_rich(to, rich, id).await?),
    }
}

/// The outcome as a record after the send takes it (`p_result`): `{status, wamid, wamids,
/// type}` when delivered, `{status: "failed", wamids: [], error: {message}}` when certainly
/// not; `None` when it may have been sent (nothing is recorded).
pub fn result(outcome: &Outcome) -> Option<Value> {
    match outcome {
        Ok(delivered) => Some(json!(delivered)),
        Err(error) if error.maybe_sent() => None,
        Err(error) => Some(json!({
            "status": "failed",
            "wamids": [],
            "error": {"message": error.to_string()},
        })),
    }
}

/// Where a message recorded `sending` beforehand records its outcome alone.
#[derive(Clone, Copy, Debug)]
pub enum Record {
    /// `whatsapp_record_outcome`: the outcome resolver's resend.
    Resend,
    /// `admin_finish_staff_message`: answers the message's row.
    Staff,
}

/// Sends the message `id`, recorded `sending` already, to `to` and records the outcome with
/// `record` (unless it may have been sent); also the row `record` answered, if any.
pub async fn send_recorded(
    whatsapp: &WhatsApp,
    db: &Postgrest,
    record: Record,
    id: Uuid,
    to: Result<Recipient, SendError>,
    content: Content,
) -> (Outcome, Option<Value>) {
    let outcome = match to {
        Ok(to) => send(whatsapp, id, &to, content).await,
        Err(error) => Err(error),
    };
    let Some(result) = result(&outcome) else {
        tracing::warn!("the send's outcome is unknown; left to the outcome resolver");
        return (outcome, None);
    };
    let args = json!({"p_message_id": id, "p_result": result});
    let recorded = match record {
        Record::Resend => rpc(db, "whatsapp_record_outcome", &args)
            .execute()
            .await
            .map(|_| None),
        Record::Staff => rpc(db, "admin_finish_staff_message", &args)
            .fetch::<Value>()
            .await
            .map(|answer| Some(answer.data)),
    };
    match recorded {
        Ok(row) => (outcome, row),
        Err(error) => {
            // It stays `sending`: never sent twice, decided again later.
            tracing::error!(error = %error, "a send's outcome was not recorded");
            (outcome, None)
        }
    }
}

fn rpc(db: &Postgrest, function: &str, args: &Value) -> Query {
    db.rpc(function, Caller::Service).args(args)
}
