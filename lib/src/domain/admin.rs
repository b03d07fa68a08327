//! Values the admin API takes from requests, validated at the boundary.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// A record id: a UUID in its canonical hyphenated form (`[id]` segments, `org_id`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Id(Uuid);

impl Id {
    pub fn parse(value: &str) -> Option<Self> {
        (value.len() == 36)
            .then(|| Uuid::try_parse(value).ok())
            .flatten()
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("expected a UUID"))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A member's role in an org.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Viewer,
}

/// Who answers a conversation: the assistant, or the org's staff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationMode {
    Bot,
    Human,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical_uuids_only() {
        let id = "11111111-1111-1111-1111-111111111111";
        assert_eq!(Id::parse(id).map(|i| i.to_string()), Some(id.to_string()));
        assert!(Id::parse("11111111111111111111111111111111").is_none());
        assert!(Id::parse("{11111111-1111-1111-1111-111111111111}").is_none());
        assert!(Id::parse("not-a-uuid").is_none());
        assert!(Id::parse("").is_none());
    }
}
