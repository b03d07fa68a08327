//! What the assistant is asked to answer: the claimed message with its contact, the org's
//! settings, the budget and the recent conversation (all from `whatsapp_claim_message`).

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::parser::Lang;
use crate::domain::{MessageKind, UserId, WaId, Wamid};

/// The claimed inbound message, and the org it belongs to.
#[derive(Debug, Deserialize)]
pub struct ClaimedMessage {
    pub id: Uuid,
    pub org_id: Uuid,
    pub wamid: Option<Wamid>,
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// The readable content (text, caption, button title…).
    pub body: Option<String>,
    /// The message as Meta sent it (media ids live here).
    #[serde(default)]
    pub payload: Value,
}

/// Who wrote it.
#[derive(Debug, Deserialize)]
pub struct Contact {
    pub id: Uuid,
    /// The phone number; `None` for a person known only by a BSUID.
    pub wa_id: Option<WaId>,
    #[serde(default)]
    pub user_id: Option<UserId>,
    /// The WhatsApp username, when they have one.
    #[serde(default)]
    pub username: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    /// The contact's IANA zone, else the org's, else UTC.
    pub timezone: String,
    pub opted_out: bool,
}

/// The org's `assistant_settings` (defaults when the org has none).
#[derive(Clone, Debug, Deserialize)]
pub struct OrgSettings {
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    pub fallback_model: Option<String>,
    pub enabled_tools: Option<Vec<String>>,
    pub language: String,
    pub reply_template: Option<String>,
    /// The answer to `request_welcome`; `None`: the built-in welcome.
    #[serde(default)]
    pub welcome_message: Option<String>,
    pub template_language: String,
    /// The org's `ai_latency` alert is open: the fallback model is tried first.
    #[serde(default)]
    pub fallback_first: bool,
}

/// Token use against the org's budget and the contact's daily cap.
#[derive(Debug, Deserialize)]
pub struct Budget {
    pub monthly_tokens: i64,
    /// Tokens used in the org's current budget period.
    pub used_tokens: i64,
    #[serde(default)]
    pub contact_daily_cap: i64,
    #[serde(default)]
    pub contact_used_today: i64,
}

impl Budget {
    pub fn org_exhausted(&self) -> bool {
        self.used_tokens >= self.monthly_tokens
    }

    pub fn contact_exhausted(&self) -> bool {
        self.contact_used_today >= self.contact_daily_cap
    }

    /// Whether another AI call may be made after `spent` tokens in this turn.
    pub fn allows(&self, spent: u64) -> bool {
        let spent = i64::try_from(spent).unwrap_or(i64::MAX);
        self.used_tokens.saturating_add(spent) < self.monthly_tokens
            && self.contact_used_today.saturating_add(spent) < self.contact_daily_cap
    }
}

/// An earlier message of the conversation.
#[derive(Debug, Deserialize)]
pub struct HistoryItem {
    pub direction: Direction,
    pub body: String,
}

/// Who wrote a message (`messages.direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The contact.
    Inbound,
    /// The assistant or the org's staff.
    Outbound,
}

/// One question for the assistant.
pub struct Turn<'a> {
    pub message: &'a ClaimedMessage,
    pub contact: &'a Contact,
    pub settings: &'a OrgSettings,
    pub budget: &'a Budget,
    pub history: &'a [HistoryItem],
    /// The turn's first message: with the tool and the call's number, the idempotency key of
    /// each tool call, the same in every retry of the turn.
    pub key: Uuid,
    /// False when processing decided the AI must not be used (budget or cap exhausted): the
    /// command parser answers alone.
    pub ai_allowed: bool,
}

impl Contact {
    /// The contact's language: their locale, else the org's language (`org_language`).
    pub fn lang(&self, org_language: &str) -> Lang {
        let spanish = |l: &str| l.to_ascii_lowercase().starts_with("es");
        match self.locale.as_deref() {
            Some(locale) if !locale.is_empty() => {
                if spanish(locale) {
                    Lang::Es
                } else {
                    Lang::En
                }
            }
            _ if spanish(org_language) => Lang::Es,
            _ => Lang::En,
        }
    }
}

impl Turn<'_> {
    /// The contact's language: their locale, else the org's language.
    pub fn lang(&self) -> Lang {
        self.contact.lang(&self.settings.language)
    }
}
