//! Webhook deliveries (`object: whatsapp_business_account`), parsed into every message and
//! status of the batch. A message of an unknown type is kept as `unsupported`; a message or
//! status without the ids needed to store it is skipped and counted, never failing the batch.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::{PhoneNumberId, WaId, Wamid};

/// Message types stored under their own name; anything else is `unsupported`.
const KNOWN_TYPES: &[&str] = &[
    "text",
    "interactive",
    "button",
    "reaction",
    "location",
    "contacts",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "unsupported",
];

/// Everything one delivery carries.
#[derive(Debug, Default)]
pub struct Delivery {
    /// SHA-256 of the raw body: Meta redelivers the same bytes, so this dedupes deliveries.
    pub id: String,
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// Messages or statuses without usable ids.
    pub skipped: usize,
}

/// One inbound message, normalized for storage (`whatsapp_ingest`).
#[derive(Debug, Serialize)]
pub struct InboundMessage {
    pub ord: usize,
    pub phone_number_id: PhoneNumberId,
    pub wa_id: WaId,
    pub profile_name: Option<String>,
    pub wamid: Wamid,
    #[serde(rename = "type")]
    pub kind: String,
    /// The readable content: text, button title, caption, place… (`None` for media alone).
    pub body: Option<String>,
    /// The message as Meta sent it.
    pub payload: Value,
    pub sent_at: DateTime<Utc>,
}

/// A status of an outbound message.
#[derive(Debug, Serialize)]
pub struct StatusUpdate {
    pub phone_number_id: PhoneNumberId,
    pub wamid: Wamid,
    pub status: String,
    pub at: DateTime<Utc>,
    pub errors: Option<Value>,
}

#[derive(Deserialize)]
struct Payload {
    object: String,
    #[serde(default, deserialize_with = "list")]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default, deserialize_with = "list")]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    /// Kept raw: a change of an unexpected shape is skipped, never failing the batch.
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize)]
struct ChangeValue {
    metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "list")]
    contacts: Vec<Contact>,
    #[serde(default, deserialize_with = "list")]
    messages: Vec<Value>,
    #[serde(default, deserialize_with = "list")]
    statuses: Vec<Value>,
}

/// A list that may also be absent or `null`.
fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: Option<String>,
}

#[derive(Deserialize)]
struct Contact {
    wa_id: Option<String>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

/// Why a body is not a WhatsApp delivery.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not JSON of the webhook shape: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("object is not whatsapp_business_account")]
    WrongObject,
}

impl Delivery {
    /// Parses a (signature-verified) webhook body.
    pub fn parse(body: &[u8]) -> Result<Self, PayloadError> {
        let payload: Payload = serde_json::from_slice(body)?;
        if payload.object != "whatsapp_business_account" {
            return Err(PayloadError::WrongObject);
        }
        let mut delivery = Delivery {
            id: hex::encode(Sha256::digest(body)),
            ..Self::default()
        };
        for value in payload
            .entry
            .into_iter()
            .flat_map(|e| e.changes)
            .filter_map(|c| c.value)
        {
            match serde_json::from_value::<ChangeValue>(value) {
                Ok(value) => delivery.add(value),
                Err(_) => delivery.skipped += 1,
            }
        }
        Ok(delivery)
    }

    fn add(&mut self, value: ChangeValue) {
        let number = value.metadata.and_then(|m| m.phone_number_id);
        let Some(number) = number.as_deref().and_then(PhoneNumberId::parse) else {
            self.skipped += value.messages.len() + value.statuses.len();
            return;
        };
        for raw in value.messages {
            let ord = self.messages.len();
            match inbound(ord, &number, &value.contacts, raw) {
                Some(message) => self.messages.push(message),
                None => self.skipped += 1,
            }
        }
        for raw in value.statuses {
            match status(&number, raw) {
                Some(status) => self.statuses.push(status),
                None => self.skipped += 1,
            }
        }
    }
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    value
        .get("timestamp")
        .and_then(|t| {
            t.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| t.as_i64())
        })
        .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
        .unwrap_or_else(Utc::now)
}

fn inbound(
    ord: usize,
    number: &PhoneNumberId,
    contacts: &[Contact],
    raw: Value,
) -> Option<InboundMessage> {
    let wa_id = WaId::parse(raw.get("from")?.as_str()?)?;
    let wamid = Wamid::parse(raw.get("id")?.as_str()?)?;
    let given = raw
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unsupported");
    let kind = if KNOWN_TYPES.contains(&given) {
        given
    } else {
        "unsupported"
    };
    let profile_name = contacts
        .iter()
        .find(|c| c.wa_id.as_deref() == Some(wa_id.as_str()))
        .and_then(|c| c.profile.as_ref()?.name.clone());
    Some(InboundMessage {
        ord,
        phone_number_id: number.clone(),
        body: readable_body(kind, &raw),
        kind: kind.to_string(),
        sent_at: timestamp(&raw),
        wa_id,
        wamid,
        profile_name,
        payload: raw,
    })
}

/// What a person reads in the message, by type.
fn readable_body(kind: &str, raw: &Value) -> Option<String> {
    match kind {
        "text" => text(raw, "/text/body"),
        "interactive" => text(raw, "/interactive/button_reply/title")
            .or_else(|| text(raw, "/interactive/list_reply/title")),
        "button" => text(raw, "/button/text"),
        "reaction" => text(raw, "/reaction/emoji"),
        "location" => {
            let place = [text(raw, "/location/name"), text(raw, "/location/address")];
            let place: Vec<String> = place.into_iter().flatten().collect();
            (!place.is_empty()).then(|| place.join(", "))
        }
        "contacts" => {
            let names: Vec<String> = raw
                .get("contacts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| text(c, "/name/formatted_name"))
                .collect();
            (!names.is_empty()).then(|| names.join(", "))
        }
        "image" | "video" | "document" => {
            text(raw, &format!("/{kind}/caption")).or_else(|| text(raw, "/document/filename"))
        }
        _ => None,
    }
}

fn status(number: &PhoneNumberId, raw: Value) -> Option<StatusUpdate> {
    let status = raw.get("status")?.as_str()?;
    if !["sent", "delivered", "read", "failed"].contains(&status) {
        return None;
    }
    Some(StatusUpdate {
        phone_number_id: number.clone(),
        wamid: Wamid::parse(raw.get("id")?.as_str()?)?,
        status: status.to_string(),
        at: timestamp(&raw),
        errors: raw.get("errors").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_items_are_skipped_without_failing_the_batch() {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"changes": [
                {"value": {"metadata": {"phone_number_id": "100000000000001"},
                    "contacts": [{"profile": {"name": "No wa_id"}}],
                    "messages": [
                        {"from": "15550001111", "id": "wamid.A", "timestamp": "1", "type": "text", "text": {"body": "hi"}},
                        {"from": "not a number", "id": "wamid.B", "type": "text"}
                    ]}},
                {"value": {"metadata": {}, "messages": [{"id": "wamid.C"}]}},
                {"value": {"messages": "not a list"}}
            ]}]
        });
        let delivery = Delivery::parse(body.to_string().as_bytes()).expect("parsed");
        assert_eq!(delivery.messages.len(), 1);
        assert_eq!(delivery.messages[0].body.as_deref(), Some("hi"));
        assert_eq!(delivery.skipped, 3);
    }
}
