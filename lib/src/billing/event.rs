//! The envelope of a Stripe event: what the handler reads before the database gets the whole
//! event. Parsed only after the signature has been verified.

use serde_json::Value;

use super::BillingError;

/// The latest `created` accepted: 9999-12-31T23:59:59Z, within PostgreSQL's timestamps.
const LATEST_CREATED: i64 = 253_402_300_799;

/// A Stripe subscription id: `sub_` then ASCII letters, digits or `_`, so it is safe in an
/// API path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionId(String);

impl SubscriptionId {
    /// `None` when `value` is not shaped like a subscription id.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.strip_prefix("sub_")?;
        let valid = (1..=255).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        valid.then(|| Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Stripe event with an id, a type, a creation time (which orders events, in the database)
/// and a `data.object`.
#[derive(Debug)]
pub struct Event {
    pub id: String,
    pub kind: String,
    /// The subscription the event is about, whose current state the Stripe API can tell:
    /// `customer.subscription.*` events and checkout sessions that started one.
    pub subscription: Option<SubscriptionId>,
    /// The whole event, as received.
    pub json: Value,
}

impl Event {
    /// Reads a verified body; anything that is not a Stripe event is a 400.
    pub fn parse(body: &[u8]) -> Result<Self, BillingError> {
        let json: Value = serde_json::from_slice(body).map_err(|_| malformed())?;
        let text = |key: &str| {
            json[key]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let created = json["created"].as_i64();
        let (Some(id), Some(kind), Some(1..=LATEST_CREATED)) = (text("id"), text("type"), created)
        else {
            return Err(malformed());
        };
        let object = json
            .pointer("/data/object")
            .filter(|object| object.is_object())
            .ok_or_else(malformed)?;
        let subscription = if kind.starts_with("customer.subscription.") {
            Some(
                object["id"]
                    .as_str()
                    .and_then(SubscriptionId::parse)
                    .ok_or_else(malformed)?,
            )
        } else if kind == "checkout.session.completed" {
            reference(&object["subscription"]).and_then(SubscriptionId::parse)
        } else {
            None
        };
        Ok(Self {
            id,
            kind,
            subscription,
            json,
        })
    }
}

/// A Stripe reference: an id, or the object itself when expanded.
fn reference(value: &Value) -> Option<&str> {
    value.as_str().or_else(|| value["id"].as_str())
}

fn malformed() -> BillingError {
    BillingError::Malformed
}
