//! WhatsApp identifiers, validated at the boundary.

use std::fmt;

use serde::Serialize;

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
    }
}
