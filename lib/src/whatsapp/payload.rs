//! Webhook deliveries (`object: whatsapp_business_account`), parsed into every message and
//! status of the batch. A message of an unknown type is kept as `unsupported`; a message or
//! status without the ids needed to store it is skipped and counted, never failing the batch.
//!
//! Content never fails a delivery either: every string produced (and every string of the raw
//! payload kept) is storable in PostgreSQL, NUL and lone surrogates replaced by U+FFFD, bytes
//! that are not UTF-8 too, and over-long strings cut with a marker
//! ([`crate::supabase::storable`]). The limits, in characters:
//! - [`MAX_BODY_CHARS`] 8192 for the readable body: twice WhatsApp's 4096-character text
//!   limit (captions are at most 1024), room for joined contact names or a place's name and
//!   address, and still a bounded row and model prompt;
//! - [`MAX_PROFILE_NAME_CHARS`] 256 for the profile name (WhatsApp allows 25; `contacts.name`
//!   is an unbounded `text`);
//! - [`MAX_PAYLOAD_STRING_CHARS`] 16384 for any string inside the stored raw payload (ids and
//!   media ids are far shorter; the whole body is already bounded by `MAX_BODY_BYTES`).

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::account::{self, AccountEvent};
use super::pricing::{self, PricingCategory};
use crate::domain::{GroupId, MessageKind, PhoneNumberId, UserId, WaId, Wamid};
use crate::supabase::storable;

/// The longest readable body stored, in characters (see the module's documentation).
pub const MAX_BODY_CHARS: usize = 8192;

/// The longest profile name stored, in characters.
pub const MAX_PROFILE_NAME_CHARS: usize = 256;

/// The longest string kept inside a message's raw payload, in characters.
pub const MAX_PAYLOAD_STRING_CHARS: usize = 16384;

/// Everything one delivery carries.
#[derive(Debug, Default)]
pub struct Delivery {
    /// SHA-256 of the raw body: Meta redelivers the same bytes, so this dedupes deliveries.
    pub id: String,
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// Account, number, template and preference changes ([`account`]).
    pub account_events: Vec<AccountEvent>,
    /// Messages, statuses or account changes without usable ids.
    pub skipped: usize,
}

/// One inbound message, normalized for storage (`whatsapp_ingest`).
#[derive(Debug, Serialize)]
pub struct InboundMessage {
    pub ord: usize,
    pub phone_number_id: PhoneNumberId,
    /// The sender: a phone number, a BSUID, or both (at least one).
    #[serde(flatten)]
    pub sender: Sender,
    pub profile_name: Option<String>,
    pub wamid: Wamid,
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// The readable content: text, button title, caption, place… (`None` for media alone).
    pub body: Option<String>,
    /// The message as Meta sent it.
    pub payload: Value,
    pub sent_at: DateTime<Utc>,
    /// A system notice's new identity (`user_changed_number`, `user_changed_user_id`).
    pub new_wa_id: Option<WaId>,
    pub new_user_id: Option<UserId>,
    /// The message an edit, revoke or reaction is about.
    pub target_wamid: Option<Wamid>,
    /// A group message's group: stored, never answered privately.
    pub group_id: Option<GroupId>,
    /// Sent by the owner from the WhatsApp Business app to this person (`smb_message_echoes`):
    /// stored as a staff message, and the conversation goes to human mode for a while.
    pub echo: bool,
}

/// Who sent a message: Meta names a person by phone number (`from`, `contacts[].wa_id`), by
/// business-scoped user id (`from_user_id`, `contacts[].user_id`), or both; a user with a
/// username may withhold the number.
#[derive(Debug, Default, Serialize)]
pub struct Sender {
    pub wa_id: Option<WaId>,
    pub user_id: Option<UserId>,
    pub parent_user_id: Option<UserId>,
    pub username: Option<String>,
}

/// The longest username stored, in characters (`contacts.username`).
pub const MAX_USERNAME_CHARS: usize = 64;

/// A status of an outbound message.
#[derive(Debug, Serialize)]
pub struct StatusUpdate {
    pub phone_number_id: PhoneNumberId,
    pub wamid: Wamid,
    pub status: String,
    pub at: DateTime<Utc>,
    pub errors: Option<Value>,
    /// The outbound message it is about, from the `biz_opaque_callback_data` every send
    /// carries (our `messages.id`): known even before the send's wamids are recorded.
    pub callback: Option<Uuid>,
    /// The pricing category Meta charges the message in, when the status says it is billable
    /// ([`pricing::charge`]).
    pub charge: Option<PricingCategory>,
}

#[derive(Deserialize)]
struct Payload {
    object: String,
    #[serde(default, deserialize_with = "list")]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    /// The WhatsApp Business Account id: account-level changes name no number.
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, deserialize_with = "list")]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    /// The webhook field (`messages`, `account_update`, …); absent: `messages`. Kept raw: a
    /// value of an unexpected type is an unknown field, skipped.
    #[serde(default)]
    field: Option<Value>,
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
    /// `smb_message_echoes`: what the owner sent from the WhatsApp Business app.
    #[serde(default, deserialize_with = "list")]
    message_echoes: Vec<Value>,
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
    user_id: Option<String>,
    parent_user_id: Option<String>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
    username: Option<String>,
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
    /// Parses a (signature-verified) webhook body. Lone surrogate escapes and bytes that are
    /// not UTF-8 are replaced first ([`storable::repair_json`]), so that they cost the string
    /// they are in a character, not the whole batch; the id stays the digest of the bytes as
    /// received.
    pub fn parse(body: &[u8]) -> Result<Self, PayloadError> {
        let payload: Payload = serde_json::from_slice(&storable::repair_json(body))?;
        if payload.object != "whatsapp_business_account" {
            return Err(PayloadError::WrongObject);
        }
        let mut delivery = Delivery {
            id: hex::encode(Sha256::digest(body)),
            ..Self::default()
        };
        for entry in payload.entry {
            let waba_id = entry.id.as_ref().and_then(Value::as_str);
            for change in entry.changes {
                let Some(value) = change.value else { continue };
                match change
                    .field
                    .as_ref()
                    .map_or(Some("messages"), Value::as_str)
                {
                    Some(field) if account::FIELDS.contains(&field) => {
                        let (events, skipped) = account::parse(field, waba_id, &value);
                        delivery.account_events.extend(events);
                        delivery.skipped += skipped;
                    }
                    Some("messages" | "smb_message_echoes") => delivery.add_change(value),
                    _ => delivery.skipped += 1,
                }
            }
        }
        Ok(delivery)
    }

    /// Whether the delivery has nothing to store.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.statuses.is_empty() && self.account_events.is_empty()
    }

    /// A `messages` or `smb_message_echoes` change (or one without a field): its messages,
    /// echoes and statuses.
    fn add_change(&mut self, value: Value) {
        match serde_json::from_value::<ChangeValue>(value) {
            Ok(value) => self.add(value),
            Err(_) => self.skipped += 1,
        }
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
        for raw in value.message_echoes {
            let ord = self.messages.len();
            match echo(ord, &number, raw) {
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

/// Unix seconds of years 1970 to 9999: later (or negative) ones overflow RFC 3339's four-digit
/// year, which PostgreSQL would refuse for the whole batch.
const TIMESTAMPS: std::ops::RangeInclusive<i64> = 0..=253_402_300_799;

/// The item's `timestamp` (Unix seconds, as a string or a number); now when it has none that
/// is usable.
fn timestamp(value: &Value) -> DateTime<Utc> {
    value
        .get("timestamp")
        .and_then(|t| {
            t.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| t.as_i64())
        })
        .filter(|secs| TIMESTAMPS.contains(secs))
        .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
        .unwrap_or_else(Utc::now)
}

fn inbound(
    ord: usize,
    number: &PhoneNumberId,
    contacts: &[Contact],
    raw: Value,
) -> Option<InboundMessage> {
    let wamid = Wamid::parse(raw.get("id")?.as_str()?)?;
    let given = raw
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unsupported");
    let kind = MessageKind::of_inbound(given);
    let (sender, contact) = sender(&raw, contacts)?;
    let profile_name = contact
        .and_then(|c| c.profile.as_ref()?.name.as_deref())
        .map(|name| storable::bounded(name, MAX_PROFILE_NAME_CHARS));
    let body = readable_body(kind, &raw).map(|body| storable::bounded(&body, MAX_BODY_CHARS));
    let id_at = |pointer: &str| text(&raw, pointer);
    let target_wamid = match kind {
        MessageKind::Edit => id_at("/edit/original_message_id"),
        MessageKind::Revoke => id_at("/revoke/original_message_id"),
        MessageKind::Reaction => id_at("/reaction/message_id"),
        _ => None,
    }
    .as_deref()
    .and_then(Wamid::parse);
    let (new_wa_id, new_user_id) = match kind {
        MessageKind::System => (
            id_at("/system/wa_id").as_deref().and_then(WaId::parse),
            id_at("/system/user_id").as_deref().and_then(UserId::parse),
        ),
        _ => (None, None),
    };
    // A group message is never answered privately: one whose group id is unusable is skipped.
    let group_id = match raw.get("group_id") {
        None | Some(Value::Null) => None,
        Some(id) => Some(id.as_str().and_then(GroupId::parse)?),
    };
    let mut payload = raw;
    storable::json(&mut payload, MAX_PAYLOAD_STRING_CHARS);
    Some(InboundMessage {
        ord,
        phone_number_id: number.clone(),
        body,
        kind,
        sent_at: timestamp(&payload),
        sender,
        wamid,
        profile_name,
        payload,
        new_wa_id,
        new_user_id,
        target_wamid,
        group_id,
        echo: false,
    })
}

/// An echo of what the business sent from the WhatsApp Business app to the person `to`
/// (`to_user_id`); stored like an inbound message of that person, marked `echo`.
fn echo(ord: usize, number: &PhoneNumberId, raw: Value) -> Option<InboundMessage> {
    let mut person = raw.clone();
    let object = person.as_object_mut()?;
    for (from, to) in [("to", "from"), ("to_user_id", "from_user_id")] {
        match object.remove(from) {
            Some(id) => object.insert(to.into(), id),
            None => object.remove(to),
        };
    }
    let mut message = inbound(ord, number, &[], person)?;
    let mut payload = raw;
    storable::json(&mut payload, MAX_PAYLOAD_STRING_CHARS);
    message.payload = payload;
    message.echo = true;
    message.new_wa_id = None;
    message.new_user_id = None;
    message.target_wamid = None;
    Some(message)
}

/// The sender of `raw` (`from`, `from_user_id`; a system notice may name the old BSUID as
/// `system.previous_user_id`), completed by its entry in `contacts` (matched by either id),
/// and that entry. `None` when no usable id names the sender.
fn sender<'a>(raw: &Value, contacts: &'a [Contact]) -> Option<(Sender, Option<&'a Contact>)> {
    let wa_id = text(raw, "/from").as_deref().and_then(WaId::parse);
    let user_id = text(raw, "/from_user_id")
        .or_else(|| text(raw, "/system/previous_user_id"))
        .as_deref()
        .and_then(UserId::parse);
    let contact = contacts.iter().find(|c| {
        let same_number =
            wa_id.is_some() && c.wa_id.as_deref().and_then(WaId::parse).as_ref() == wa_id.as_ref();
        let same_user = user_id.is_some()
            && c.user_id.as_deref().and_then(UserId::parse).as_ref() == user_id.as_ref();
        same_number || same_user
    });
    let from_contact = |id: fn(&Contact) -> Option<&str>| contact.and_then(id);
    let wa_id = wa_id.or_else(|| from_contact(|c| c.wa_id.as_deref()).and_then(WaId::parse));
    let user_id =
        user_id.or_else(|| from_contact(|c| c.user_id.as_deref()).and_then(UserId::parse));
    if wa_id.is_none() && user_id.is_none() {
        return None;
    }
    let sender = Sender {
        wa_id,
        user_id,
        parent_user_id: text(raw, "/from_parent_user_id")
            .or_else(|| from_contact(|c| c.parent_user_id.as_deref()).map(str::to_owned))
            .as_deref()
            .and_then(UserId::parse),
        username: contact
            .and_then(|c| c.profile.as_ref()?.username.as_deref())
            .filter(|u| !u.trim().is_empty())
            .map(|u| storable::bounded(u, MAX_USERNAME_CHARS)),
    };
    Some((sender, contact))
}

/// What a person reads in the message, by type.
fn readable_body(kind: MessageKind, raw: &Value) -> Option<String> {
    match kind {
        MessageKind::Text => text(raw, "/text/body"),
        MessageKind::Interactive => text(raw, "/interactive/button_reply/title")
            .or_else(|| text(raw, "/interactive/list_reply/title")),
        MessageKind::Button => text(raw, "/button/text"),
        MessageKind::Reaction => text(raw, "/reaction/emoji"),
        MessageKind::Location => {
            let place = [text(raw, "/location/name"), text(raw, "/location/address")];
            let place: Vec<String> = place.into_iter().flatten().collect();
            (!place.is_empty()).then(|| place.join(", "))
        }
        MessageKind::Contacts => {
            let names: Vec<String> = raw
                .get("contacts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| text(c, "/name/formatted_name"))
                .collect();
            (!names.is_empty()).then(|| names.join(", "))
        }
        MessageKind::Image | MessageKind::Video | MessageKind::Document => {
            let caption = format!("/{}/caption", kind.as_str());
            text(raw, &caption).or_else(|| text(raw, "/document/filename"))
        }
        MessageKind::System => text(raw, "/system/body"),
        MessageKind::Edit => {
            let edited = raw.pointer("/edit/message")?;
            let kind = MessageKind::of_inbound(edited.get("type")?.as_str()?);
            readable_body(kind, edited)
        }
        MessageKind::Order => order_summary(raw),
        _ => None,
    }
}

/// An order's summary: its number of items and, when every item has the same currency, its
/// total (`3 items, 45.50 USD`).
fn order_summary(raw: &Value) -> Option<String> {
    let items = raw.pointer("/order/product_items")?.as_array()?;
    let quantity = |item: &Value| item.get("quantity").and_then(number).unwrap_or(1.0);
    let count: f64 = items.iter().map(quantity).sum();
    let currencies: Vec<&str> = items
        .iter()
        .filter_map(|i| i.get("currency")?.as_str())
        .collect();
    let total: Option<f64> = items
        .iter()
        .map(|i| Some(quantity(i) * i.get("item_price").and_then(number)?))
        .sum();
    let mut summary = format!("{count} items");
    if let (Some(total), Some(first)) = (total, currencies.first()) {
        if currencies.len() == items.len() && currencies.iter().all(|c| c == first) {
            summary.push_str(&format!(", {total:.2} {first}"));
        }
    }
    Some(summary)
}

/// A number Meta may send as a JSON number or a string; finite only.
fn number(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str()?.parse().ok())
        .filter(|n: &f64| n.is_finite() && n.abs() < 1e15)
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
        errors: raw.get("errors").cloned().map(|mut errors| {
            storable::json(&mut errors, MAX_PAYLOAD_STRING_CHARS);
            errors
        }),
        callback: raw
            .get("biz_opaque_callback_data")
            .and_then(Value::as_str)
            .and_then(|data| Uuid::parse_str(data).ok()),
        charge: pricing::charge(raw.get("pricing")),
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

    #[test]
    fn content_postgresql_refuses_is_replaced_not_fatal() {
        let long = "x".repeat(MAX_BODY_CHARS + 10);
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"value":{{
            "metadata":{{"phone_number_id":"100000000000001"}},
            "contacts":[{{"wa_id":"15550001111","profile":{{"name":"Nul\u0000Name"}}}}],
            "messages":[
              {{"from":"15550001111","id":"wamid.A","timestamp":"99999999999999","type":"text",
                "text":{{"body":"a\u0000b"}},"k\u0000":"\ud800"}},
              {{"from":"15550001111","id":"wamid.B","timestamp":"1700000000","type":"text",
                "text":{{"body":"{long}"}}}}
            ],
            "statuses":[{{"id":"wamid.S","status":"failed","timestamp":"-5",
              "errors":[{{"title":"t\u0000","x":"\udfff"}}]}}]
            }}}}]}}]}}"#
        );
        let delivery = Delivery::parse(body.as_bytes()).expect("parsed");
        assert_eq!(delivery.id, hex::encode(Sha256::digest(body.as_bytes())));
        let [first, second] = delivery.messages.as_slice() else {
            panic!("two messages: {:?}", delivery.messages);
        };
        assert_eq!(first.body.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(first.profile_name.as_deref(), Some("Nul\u{FFFD}Name"));
        assert_eq!(first.payload["text"]["body"], "a\u{FFFD}b");
        assert_eq!(first.payload["k\u{FFFD}"], "\u{FFFD}");
        assert!((Utc::now() - first.sent_at).num_seconds().abs() < 60, "now");
        let stored = second.body.as_deref().expect("body");
        assert_eq!(stored.chars().count(), MAX_BODY_CHARS);
        assert!(stored.ends_with(storable::TRUNCATED));
        let errors = delivery.statuses[0].errors.as_ref().expect("errors");
        assert_eq!(errors[0]["title"], "t\u{FFFD}");
        assert_eq!(errors[0]["x"], "\u{FFFD}");
        let json = serde_json::to_string(&delivery.messages).expect("json");
        assert!(!json.contains("\\u0000") && !json.contains('\0'));
    }

    #[test]
    fn senders_are_named_by_number_bsuid_or_both_and_echoes_by_their_recipient() {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"changes": [
                {"field": "messages", "value": {"metadata": {"phone_number_id": "100000000000001"},
                    "contacts": [{"profile": {"name": "Ana", "username": "@ana"},
                                  "user_id": "US.1349", "parent_user_id": "US.ENT.1181"}],
                    "messages": [
                        {"from_user_id": "US.1349", "id": "wamid.A", "type": "order",
                         "order": {"product_items": [
                             {"quantity": "2", "item_price": "3.50", "currency": "EUR"},
                             {"quantity": 1, "item_price": 1, "currency": "EUR"}]}},
                        {"id": "wamid.B", "type": "text", "text": {"body": "nobody"}}
                    ]}},
                {"field": "smb_message_echoes", "value": {
                    "metadata": {"phone_number_id": "100000000000001"},
                    "message_echoes": [{"from": "15550100001", "to": "15550001111",
                        "id": "wamid.C", "type": "text", "text": {"body": "from the app"}}]}},
                {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
            ]}]
        });
        let delivery = Delivery::parse(body.to_string().as_bytes()).expect("parsed");
        let [order, echo] = delivery.messages.as_slice() else {
            panic!("two messages: {:?}", delivery.messages);
        };
        assert!(order.sender.wa_id.is_none());
        assert_eq!(
            order.sender.user_id.as_ref().map(UserId::as_str),
            Some("US.1349")
        );
        assert_eq!(
            order.sender.parent_user_id.as_ref().map(UserId::as_str),
            Some("US.ENT.1181")
        );
        assert_eq!(order.sender.username.as_deref(), Some("@ana"));
        assert_eq!(order.profile_name.as_deref(), Some("Ana"));
        assert_eq!(order.body.as_deref(), Some("3 items, 8.00 EUR"));
        assert!(echo.echo && !order.echo);
        assert_eq!(
            echo.sender.wa_id.as_ref().map(WaId::as_str),
            Some("15550001111")
        );
        assert_eq!(echo.payload["to"], "15550001111", "kept as Meta sent it");
        assert_eq!(
            delivery.skipped, 2,
            "a message naming nobody, an account_update"
        );
    }

    /// Properties: no delivery makes the parser panic, and everything it keeps is storable
    /// (issue 11). Deliveries are shaped like Meta's, with hostile strings in every field a
    /// sender controls, lone surrogate escapes spliced into the JSON text, odd timestamps and
    /// ids; and raw bytes of any kind. 3,000 + 1,000 cases, beside the command parser's 6,000.
    mod properties {
        use chrono::Datelike;
        use proptest::prelude::*;
        use serde_json::json;

        use super::*;

        /// Spliced into the JSON text as escapes serde_json cannot write itself.
        const LONE_HIGH: char = '\u{E000}';
        const LONE_LOW: char = '\u{E001}';

        const ODD: &[&str] = &[
            "\0",
            "\u{1}",
            "\u{7f}",
            "\u{85}",
            "\u{200f}",
            "\u{202e}",
            "\u{feff}",
            "😀",
            "👨‍👩‍👧",
            "٣",
            "３",
            "e\u{301}",
            "\\",
            "\"",
            "\\u0000",
            "\u{10ffff}",
            "ok",
            "remind me in 999999999999999min to x",
            "wamid.HBgL",
            "15550001111",
        ];

        fn hostile() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                8 => prop::sample::select(ODD).prop_map(str::to_string),
                2 => Just(LONE_HIGH.to_string()),
                2 => Just(LONE_LOW.to_string()),
                4 => any::<char>().prop_map(String::from),
                2 => any::<u64>().prop_map(|n| n.to_string()),
            ];
            prop::collection::vec(piece, 0..6).prop_map(|parts| parts.concat())
        }

        /// An id that is sometimes valid and sometimes not.
        fn id(valid: &'static str) -> impl Strategy<Value = Value> {
            prop_oneof![
                3 => Just(json!(valid)),
                1 => hostile().prop_map(Value::from),
                1 => any::<i64>().prop_map(Value::from),
                1 => Just(Value::Null),
            ]
        }

        fn timestamp() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(json!("1767225600")),
                any::<i64>().prop_map(|n| json!(n.to_string())),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)),
                hostile().prop_map(Value::from),
            ]
        }

        fn message() -> impl Strategy<Value = Value> {
            let kind = prop::sample::select(
                &[
                    "text",
                    "interactive",
                    "button",
                    "reaction",
                    "location",
                    "contacts",
                    "image",
                    "document",
                    "audio",
                    "sticker",
                    "order",
                    "video",
                    "system",
                    "request_welcome",
                    "edit",
                    "revoke",
                    "",
                ][..],
            );
            // Now and then a body past the limits (cut, never refused).
            let body = prop_oneof![
                20 => hostile(),
                1 => hostile().prop_map(|h| format!("{h}{}", "é".repeat(MAX_BODY_CHARS))),
            ];
            (id("15550001111"), id("wamid.HBgLMTU1NTAwMDExMTEV"), kind, timestamp(),
             body, hostile(), hostile(), id("US.13491208655302741918"), timestamp())
                .prop_map(|(from, wamid, kind, ts, long, b, c, user, n)| {
                    let a: String = long.chars().take(20).collect();
                    json!({
                        "from": from, "id": wamid, "type": kind, "timestamp": ts,
                        "from_user_id": user, "group_id": b,
                        "system": {"body": long, "wa_id": b, "user_id": c, "type": a},
                        "edit": {"original_message_id": a, "message": {"type": kind, "text": {"body": long}}},
                        "revoke": {"original_message_id": c},
                        "order": {"product_items": [{"quantity": n, "item_price": ts, "currency": c}, {"item_price": n}]},
                        "text": {"body": long},
                        "interactive": {"button_reply": {"id": b, "title": c}},
                        "button": {"text": b, "payload": c},
                        "reaction": {"emoji": c, "message_id": a},
                        "location": {"name": a, "address": b, "latitude": 1e308},
                        "contacts": [{"name": {"formatted_name": a}}, {"name": {"formatted_name": c}}],
                        "image": {"id": b, "caption": a, "mime_type": c},
                        "document": {"id": c, "filename": b},
                        a.clone(): {b.clone(): c},
                    })
                })
        }

        fn delivery() -> impl Strategy<Value = String> {
            let status = (id("wamid.S"), prop::sample::select(&["sent", "read", "failed", "x"][..]),
                          timestamp(), hostile())
                .prop_map(|(wamid, status, ts, text)| json!({
                    "id": wamid, "status": status, "timestamp": ts,
                    "errors": [{"code": 131026, "title": text, "error_data": {"details": text}}],
                }));
            let name = prop_oneof![
                4 => hostile(),
                1 => hostile().prop_map(|h| format!("{h}{}", "n".repeat(MAX_PROFILE_NAME_CHARS))),
            ];
            let value = (id("100000000000001"), hostile(), name,
                         prop::collection::vec(message(), 0..4),
                         prop::collection::vec(status, 0..3))
                .prop_map(|(number, wa_id, name, messages, statuses)| json!({
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550000000", "phone_number_id": number},
                    "contacts": [{"wa_id": "15550001111", "profile": {"name": name}},
                                 {"wa_id": wa_id, "profile": {"name": wa_id}}],
                    "messages": messages,
                    "statuses": statuses,
                }));
            prop::collection::vec(value, 1..3).prop_map(|values| {
                let changes: Vec<Value> = values
                    .into_iter()
                    .map(|v| json!({"field": "messages", "value": v}))
                    .collect();
                json!({"object": "whatsapp_business_account",
                       "entry": [{"id": "1", "changes": changes}]})
                .to_string()
                .replace(LONE_HIGH, "\\ud800")
                .replace(LONE_LOW, "\\udfff")
            })
        }

        fn storable(text: &str) -> bool {
            !text.contains('\0')
        }

        fn no_nul(value: &Value) -> bool {
            match value {
                Value::String(s) => storable(s),
                Value::Array(items) => items.iter().all(no_nul),
                Value::Object(map) => map.iter().all(|(k, v)| storable(k) && no_nul(v)),
                _ => true,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::with_cases(3_000)
            })]

            #[test]
            fn hostile_deliveries_parse_into_storable_rows(body in delivery()) {
                let delivery = Delivery::parse(body.as_bytes())
                    .map_err(|e| TestCaseError::fail(format!("{e}: {body}")))?;
                for message in &delivery.messages {
                    prop_assert!(message.body.as_deref().is_none_or(storable));
                    prop_assert!(message
                        .body
                        .as_deref()
                        .is_none_or(|b| b.chars().count() <= MAX_BODY_CHARS));
                    prop_assert!(message.profile_name.as_deref().is_none_or(storable));
                    prop_assert!(message
                        .profile_name
                        .as_deref()
                        .is_none_or(|n| n.chars().count() <= MAX_PROFILE_NAME_CHARS));
                    prop_assert!(message.sent_at.year() <= 9999);
                }
                let stored = serde_json::to_value((&delivery.messages, &delivery.statuses))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(no_nul(&stored), "NUL reaches the database");
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::with_cases(1_000)
            })]

            #[test]
            fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512),
                                     prefix in prop::sample::select(&[
                                         "", "{\"object\":\"whatsapp_business_account\",\"entry\":[",
                                         "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"value\":{\"messages\":[{\"text\":\"",
                                     ][..])) {
                let mut body = prefix.as_bytes().to_vec();
                body.extend_from_slice(&bytes);
                let _ = Delivery::parse(&body);
                let _ = Delivery::parse(&bytes);
            }
        }
    }
}
