//! Google Calendar for orgs that connected one (`calendar_connections`): an OAuth access
//! token from the org's refresh token, then the Calendar API v3 `events` insert and list.
//! Tokens are never logged.
//!
//! A contact sees only their own events: each event we insert carries the contact's id as a
//! private extended property ([`CONTACT_PROPERTY`]), and a listing asks Google for that
//! property only (`privateExtendedProperty=key=value`, see
//! <https://developers.google.com/calendar/api/guides/extended-properties>) and drops any
//! event without it: the org's own (staff) events and other contacts' are never listed.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::configuration::{GoogleSettings, Secret};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The private extended property naming the contact an event was created for.
pub const CONTACT_PROPERTY: &str = "assistant_contact_id";

/// Why Google Calendar could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("Google answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("Google unreachable: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("unexpected Google response: {0}")]
    Decode(String),
}

impl From<reqwest::Error> for CalendarError {
    fn from(error: reqwest::Error) -> Self {
        Self::Transport(error.without_url())
    }
}

/// An org's connection: which calendar, and the refresh token that reaches it.
#[derive(Deserialize)]
pub struct Connection {
    pub calendar_id: String,
    pub refresh_token: Secret,
}

/// An event as listed by Google.
#[derive(Debug)]
pub struct GoogleEvent {
    pub id: String,
    pub title: String,
    /// `None` for an all-day event's time (its `date` is in `day`).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub day: Option<NaiveDate>,
}

/// The Google OAuth client and Calendar API of this process.
pub struct GoogleCalendar {
    http: reqwest::Client,
    settings: GoogleSettings,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct EventResource {
    id: String,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    start: Option<EventTime>,
    #[serde(default)]
    end: Option<EventTime>,
    #[serde(default, rename = "extendedProperties")]
    extended_properties: Option<ExtendedProperties>,
}

#[derive(Deserialize)]
struct ExtendedProperties {
    #[serde(default)]
    private: std::collections::HashMap<String, String>,
}

impl EventResource {
    fn is_of(&self, contact_id: &str) -> bool {
        self.extended_properties
            .as_ref()
            .and_then(|p| p.private.get(CONTACT_PROPERTY))
            .is_some_and(|c| c == contact_id)
    }
}

#[derive(Deserialize)]
struct EventTime {
    #[serde(rename = "dateTime")]
    date_time: Option<DateTime<chrono::FixedOffset>>,
    date: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct EventList {
    #[serde(default)]
    items: Vec<EventResource>,
}

impl GoogleCalendar {
    pub fn new(http: reqwest::Client, settings: GoogleSettings) -> Self {
        Self { http, settings }
    }

    /// A short-lived access token from the org's refresh token.
    pub async fn access_token(&self, connection: &Connection) -> Result<Secret, CalendarError> {
        let response = self
            .http
            .post(&self.settings.token_url)
            .timeout(TIMEOUT)
            .form(&[
                ("client_id", self.settings.client_id.as_str()),
                ("client_secret", self.settings.client_secret.expose()),
                ("refresh_token", connection.refresh_token.expose()),
                ("grant_type", "refresh_token"),
            ])
            .send()
            .await?;
        let token: TokenResponse = decode(response).await?;
        Ok(Secret::new(token.access_token))
    }

    /// Creates the event `id` (chosen by us, so a retry cannot create it twice: Google answers
    /// 409 for an id that exists, which means it was created before) of contact `contact_id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert(
        &self,
        token: &Secret,
        calendar_id: &str,
        id: &str,
        contact_id: &str,
        title: &str,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        time_zone: &str,
    ) -> Result<(), CalendarError> {
        let body = json!({
            "id": id,
            "summary": title,
            "start": {"dateTime": start.to_rfc3339(), "timeZone": time_zone},
            "end": {"dateTime": end.to_rfc3339(), "timeZone": time_zone},
            "extendedProperties": {"private": {CONTACT_PROPERTY: contact_id}},
        });
        let response = self
            .http
            .post(self.events_url(calendar_id))
            .timeout(TIMEOUT)
            .bearer_auth(token.expose())
            .json(&body)
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            return Ok(());
        }
        decode::<EventResource>(response).await.map(drop)
    }

    /// The events of contact `contact_id` between `from` and `to`, recurring ones expanded, in
    /// start order.
    pub async fn list(
        &self,
        token: &Secret,
        calendar_id: &str,
        contact_id: &str,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Vec<GoogleEvent>, CalendarError> {
        let response = self
            .http
            .get(self.events_url(calendar_id))
            .timeout(TIMEOUT)
            .bearer_auth(token.expose())
            .query(&[
                ("timeMin", from.to_rfc3339()),
                ("timeMax", to.to_rfc3339()),
                ("singleEvents", "true".into()),
                ("orderBy", "startTime".into()),
                ("maxResults", "50".into()),
                (
                    "privateExtendedProperty",
                    format!("{CONTACT_PROPERTY}={contact_id}"),
                ),
            ])
            .send()
            .await?;
        let list: EventList = decode(response).await?;
        Ok(list
            .items
            .into_iter()
            .filter(|item| item.is_of(contact_id))
            .map(|item| GoogleEvent {
                id: item.id,
                title: item.summary.unwrap_or_default(),
                start: item
                    .start
                    .as_ref()
                    .and_then(|t| t.date_time)
                    .map(|t| t.to_utc()),
                end: item
                    .end
                    .as_ref()
                    .and_then(|t| t.date_time)
                    .map(|t| t.to_utc()),
                day: item.start.and_then(|t| t.date),
            })
            .collect())
    }

    fn events_url(&self, calendar_id: &str) -> String {
        let mut url = format!("{}/calendars/", self.settings.calendar_base_url);
        url.extend(url::form_urlencoded::byte_serialize(calendar_id.as_bytes()));
        url.push_str("/events");
        url
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, CalendarError> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v["error"]["message"]
                    .as_str()
                    .or_else(|| v["error_description"].as_str())
                    .or_else(|| v["error"].as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(CalendarError::Api { status, message });
    }
    serde_json::from_slice(&bytes).map_err(|e| CalendarError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(properties: serde_json::Value) -> EventResource {
        serde_json::from_value(json!({"id": "evt1", "extendedProperties": properties}))
            .expect("an event")
    }

    #[test]
    fn an_event_is_the_contacts_only_when_its_private_property_names_them() {
        let mine = json!({"private": {CONTACT_PROPERTY: "c1"}});
        assert!(event(mine).is_of("c1"));
        assert!(!event(json!({"private": {CONTACT_PROPERTY: "c2"}})).is_of("c1"));
        assert!(!event(json!({"shared": {CONTACT_PROPERTY: "c1"}})).is_of("c1"));
        assert!(!event(json!(null)).is_of("c1"), "a staff event");
    }
}
