//! WhatsApp identifiers, validated at the boundary.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A WhatsApp user id: the phone number in international format, digits only.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct WaId(String);

impl WaId {
    pub fn parse(value: &str) -> Option<Self> {
        let digits = value.strip_prefix('+').unwrap_or(value);
        ((5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(digits.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A business-scoped user id (BSUID, `US.13491208655302741918`; a parent BSUID has `ENT`
/// after the country code): how Meta names a person, with or without a phone number.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Two capital letters (the ISO country code), a period, then letters, digits and periods
    /// (Meta: up to 128 characters after the country code).
    pub fn parse(value: &str) -> Option<Self> {
        let (country, rest) = value.split_once('.')?;
        (country.len() == 2
            && country.bytes().all(|b| b.is_ascii_uppercase())
            && (1..=150).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
        .then(|| Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A WhatsApp group's id (`messages[].group_id`, the `to` of a group send): 1 to 128 letters,
/// digits and `@._-`, as `conversations.group_id` stores it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct GroupId(String);

impl GroupId {
    pub fn parse(value: &str) -> Option<Self> {
        ((1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@._-".contains(&b)))
        .then(|| Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a message goes: a person's phone number when known (Meta recommends it), else their
/// BSUID; or a group (Groups API: `recipient_type: group`), never a person privately.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Phone(WaId),
    User(UserId),
    Group(GroupId),
}

impl Address {
    /// The phone number if it is valid, else the BSUID if it is; `None` when neither is.
    pub fn parse(wa_id: Option<&str>, user_id: Option<&str>) -> Option<Self> {
        let phone = wa_id.and_then(WaId::parse);
        Self::of(None, phone, user_id.and_then(UserId::parse))
    }

    /// Where a conversation's messages go: its group, else the person's phone number, else
    /// their BSUID (the one rule, for stored and claimed recipients alike).
    pub fn of(group: Option<GroupId>, phone: Option<WaId>, user: Option<UserId>) -> Option<Self> {
        group
            .map(Self::Group)
            .or(phone.map(Self::Phone))
            .or(user.map(Self::User))
    }
}

/// The Graph API id of a business phone number (how deliveries are routed to an org).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumberId(String);

impl PhoneNumberId {
    pub fn parse(value: &str) -> Option<Self> {
        ((1..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A WhatsApp message id (`wamid.…`), the key every message is deduplicated on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Wamid(String);

impl Wamid {
    pub fn parse(value: &str) -> Option<Self> {
        ((1..=512).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Deserializes an identifier through its `parse`, so a stored value is validated once, where
/// it is read.
macro_rules! parsed_from_text {
    ($($name:ident: $what:literal),*) => {$(
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
                Self::parse(&text).ok_or_else(|| serde::de::Error::custom(concat!("invalid ", $what)))
            }
        }
    )*};
}

parsed_from_text!(
    WaId: "wa_id",
    UserId: "user_id",
    GroupId: "group_id",
    PhoneNumberId: "phone_number_id",
    Wamid: "wamid"
);

/// A message's type (`messages.type`): what Meta sent, or what we sent. Types this service does
/// not read are stored as `unsupported`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Text,
    Interactive,
    Button,
    Reaction,
    Location,
    Contacts,
    Image,
    Audio,
    Video,
    Document,
    Sticker,
    /// Outbound only: an approved template (outside the 24 h window).
    Template,
    /// A cart sent from the catalog: acknowledged with its summary.
    Order,
    /// A notice from WhatsApp (an identity change): stored, never answered.
    System,
    /// The person opened the chat for the first time: answered with the welcome.
    #[serde(rename = "request_welcome")]
    RequestWelcome,
    /// The person edited an earlier message: the stored one takes the new text.
    Edit,
    /// The person deleted an earlier message: its content is cleared.
    Revoke,
    #[serde(other)]
    Unsupported,
}

impl MessageKind {
    /// The kind of an inbound message's `type` (unknown types are `unsupported`; `template` is
    /// never inbound).
    pub fn of_inbound(given: &str) -> Self {
        match serde_json::from_value(serde_json::Value::from(given)) {
            Ok(Self::Template) | Err(_) => Self::Unsupported,
            Ok(kind) => kind,
        }
    }

    /// Stored and never answered: a reaction, a system notice, an edit or a revoke.
    pub fn never_answered(self) -> bool {
        matches!(
            self,
            Self::Reaction | Self::System | Self::Edit | Self::Revoke
        )
    }

    /// The name stored in `messages.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Interactive => "interactive",
            Self::Button => "button",
            Self::Reaction => "reaction",
            Self::Location => "location",
            Self::Contacts => "contacts",
            Self::Image => "image",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Document => "document",
            Self::Sticker => "sticker",
            Self::Template => "template",
            Self::Order => "order",
            Self::System => "system",
            Self::RequestWelcome => "request_welcome",
            Self::Edit => "edit",
            Self::Revoke => "revoke",
            Self::Unsupported => "unsupported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_what_meta_sends_and_refuse_the_rest() {
        assert_eq!(
            WaId::parse("+15550001111").map(|w| w.0),
            Some("15550001111".into())
        );
        assert!(WaId::parse("1555-000").is_none());
        assert!(WaId::parse("").is_none());
        assert!(PhoneNumberId::parse("100000000000001").is_some());
        assert!(PhoneNumberId::parse("10000 1").is_none());
        assert!(Wamid::parse("wamid.HBgLMTU1NTAwMDExMTEVAgASGBQz==").is_some());
        assert!(Wamid::parse("wamid with space").is_none());
        assert_eq!(MessageKind::of_inbound("image"), MessageKind::Image);
        assert_eq!(
            MessageKind::of_inbound("hologram"),
            MessageKind::Unsupported
        );
        assert_eq!(
            MessageKind::of_inbound("template"),
            MessageKind::Unsupported
        );
        assert_eq!(MessageKind::Sticker.as_str(), "sticker");
        assert_eq!(
            MessageKind::of_inbound("request_welcome"),
            MessageKind::RequestWelcome
        );
        assert!(UserId::parse("US.13491208655302741918").is_some());
        assert!(UserId::parse("US.ENT.11815799212886844830").is_some());
        assert!(UserId::parse("us.1349").is_none());
        assert!(UserId::parse("US.").is_none());
        assert!(UserId::parse("US.12 34").is_none());
        assert_eq!(
            Address::parse(None, Some("US.1349")),
            UserId::parse("US.1349").map(Address::User)
        );
        assert!(matches!(
            Address::parse(Some("15550001111"), Some("US.1349")),
            Some(Address::Phone(_))
        ));
    }
}
