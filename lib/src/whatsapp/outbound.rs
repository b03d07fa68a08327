//! A text's or rich reply's Graph API call, for the one send step of every outbound message (`crate::send`,
//! which records the message before and its outcome after).
//!
//! WhatsApp's 24-hour customer-service window decides how: freeform inside it; outside it (or
//! when Meta answers 131047) the org's approved template, with the text as its body
//! parameter. Throttled sends are tried three times with backoff, but only when Meta certainly
//! did not take the message: a send is never repeated after an unknown outcome.

use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::{GraphAction, GraphError, Outgoing, Rich, Sent, WhatsApp};
use crate::domain::{Address, MessageKind, PhoneNumberId, Wamid};

/// An approved template whose one body parameter carries the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// The template's language code, e.g. `en_US`.
    pub language: String,
}

/// Who sends to whom, and what the 24 h window allows.
#[derive(Clone, Debug)]
pub struct Recipient {
    /// The org's business number.
    pub from: PhoneNumberId,
    /// The person's phone number, else their BSUID.
    pub to: Address,
    /// Freeform is allowed: the contact wrote within the last 24 h.
    pub window_open: bool,
    /// Carries the text outside the window (and when Meta says the window closed).
    pub template: Option<Template>,
}

/// Why a text was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Outside the window, and the org has no usable template for it (none configured, or
    /// Meta paused, disabled or rejected it: `private.usable_template`).
    #[error("outside the 24 h window and no usable template: none is configured, or Meta paused, disabled or rejected it")]
    NoTemplate,
}

/// Whether Meta took the text, or the outbox recorded it (no access token configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendStatus {
    Sent,
    Simulated,
}

/// What was sent, ready to be recorded: `{status, wamid, wamids, type}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub status: SendStatus,
    /// One id per part (a long text is several messages); none when simulated.
    pub wamids: Vec<Wamid>,
    /// `text` or `template`.
    pub kind: MessageKind,
}

impl Delivered {
    /// The id of the first part, which the message row is known by.
    pub fn wamid(&self) -> Option<&Wamid> {
        self.wamids.first()
    }
}

impl Serialize for Delivered {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row<'a> {
            status: SendStatus,
            wamid: Option<&'a Wamid>,
            wamids: &'a [Wamid],
            #[serde(rename = "type")]
            kind: MessageKind,
        }
        Row {
            status: self.status,
            wamid: self.wamid(),
            wamids: &self.wamids,
            kind: self.kind,
        }
        .serialize(serializer)
    }
}

/// A template body parameter is limited to 1024 characters.
const MAX_PARAMETER_CHARS: usize = 1024;

impl WhatsApp {
    /// Sends `text` to `recipient`: freeform when the window is open, else (or when Meta
    /// answers 131047) through the template. `outbound` is the recorded message (`sending`)
    /// this send delivers: its id goes out as the callback data every status echoes.
    pub async fn send_text(
        &self,
        recipient: &Recipient,
        text: String,
        outbound: Uuid,
    ) -> Result<Delivered, DeliveryError> {
        let freeform = Outgoing::Text(text.clone());
        self.send_freeform(recipient, freeform, &text, outbound)
            .await
    }

    /// Sends `rich` (reply buttons, a list, a reaction) to `recipient` when the window is
    /// open; else (or on 131047) the template carries its readable text, choices listed.
    pub async fn send_rich(
        &self,
        recipient: &Recipient,
        rich: Rich,
        outbound: Uuid,
    ) -> Result<Delivered, DeliveryError> {
        let readable = rich.readable();
        self.send_freeform(recipient, Outgoing::Rich(rich), &readable, outbound)
            .await
    }

    /// Sends `freeform` inside the window, else the template with `text` as its parameter.
    async fn send_freeform(
        &self,
        recipient: &Recipient,
        freeform: Outgoing,
        text: &str,
        outbound: Uuid,
    ) -> Result<Delivered, DeliveryError> {
        let Recipient { from, to, .. } = recipient;
        if recipient.window_open {
            match self.send_retrying(from, to, &freeform, outbound).await {
                Ok(sent) => return Ok(delivered(sent, freeform.kind())),
                Err(error) if error.action() == GraphAction::TemplateFallback => {
                    tracing::info!(
                        "outside the 24 h window (131047): falling back to the template"
                    );
                }
                Err(error) => return Err(error.into()),
            }
        }
        let template = recipient
            .template
            .clone()
            .ok_or(DeliveryError::NoTemplate)?;
        let message = Outgoing::Template {
            name: template.name,
            language: template.language,
            parameters: vec![text.chars().take(MAX_PARAMETER_CHARS).collect()],
        };
        let sent = self.send_retrying(from, to, &message, outbound).await?;
        Ok(delivered(sent, MessageKind::Template))
    }

    /// Sends with up to three tries when Meta throttles (130429, 131056, 4), fails (5xx) or
    /// cannot be reached, as long as the failed try certainly did not send.
    async fn send_retrying(
        &self,
        from: &PhoneNumberId,
        to: &Address,
        message: &Outgoing,
        outbound: Uuid,
    ) -> Result<Sent, GraphError> {
        let mut attempt = 0;
        loop {
            match self.send(from, to, message, outbound).await {
                Err(error)
                    if error.action() == GraphAction::Retry
                        && !error.maybe_sent()
                        && attempt < 2 =>
                {
                    attempt += 1;
                    tokio::time::sleep(crate::backoff::backoff(self.retry_base, attempt)).await;
                }
                result => return result,
            }
        }
    }
}

fn delivered(sent: Sent, kind: MessageKind) -> Delivered {
    Delivered {
        status: if sent.simulated {
            SendStatus::Simulated
        } else {
            SendStatus::Sent
        },
        wamids: sent.wamids,
        kind,
    }
}
