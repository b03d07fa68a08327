//! `create_calendar_event` and `list_calendar_events`: in the org's Google Calendar when it
//! connected one (and the service has a Google OAuth client), always in `calendar_events`.
//! Either way a contact lists only their own events (see `google` for how).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::google::{Connection, GoogleCalendar};
use super::{insert_once, local_iso, object_schema, text, Scope, ToolError, ToolSpec};
use crate::assistant::time;
use crate::supabase::Caller;

/// `duration_minutes`: the schema's bounds, checked again before a duration is built from it.
const DURATION_MINUTES: std::ops::RangeInclusive<i64> = 5..=1440;

/// `days` of `list_calendar_events`, likewise.
const LIST_DAYS: std::ops::RangeInclusive<i64> = 1..=31;

pub fn create_spec() -> ToolSpec {
    ToolSpec {
        name: "create_calendar_event",
        description: "Add an event to the user's calendar.",
        parameters: object_schema(
            json!({
                "title": {"type": "string", "minLength": 1, "maxLength": 200},
                "start": {"type": "string", "minLength": 10, "maxLength": 40,
                          "description": "Local date-time YYYY-MM-DDTHH:MM in the user's time zone."},
                "duration_minutes": {"type": "integer", "minimum": DURATION_MINUTES.start(),
                                     "maximum": DURATION_MINUTES.end()},
            }),
            &["title", "start"],
        ),
    }
}

pub fn list_spec() -> ToolSpec {
    ToolSpec {
        name: "list_calendar_events",
        description: "List the user's calendar events from now on.",
        parameters: object_schema(
            json!({"days": {"type": "integer", "minimum": LIST_DAYS.start(), "maximum": LIST_DAYS.end(),
                            "description": "How many days ahead (default 7)."}}),
            &[],
        ),
    }
}

#[derive(Deserialize)]
struct Row {
    title: String,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
}

/// The org's Google Calendar, when both the service and the org are set up for it.
async fn google<'a>(
    scope: &Scope<'a>,
) -> Result<Option<(&'a GoogleCalendar, Connection)>, ToolError> {
    let Some(google) = scope.google else {
        return Ok(None);
    };
    let connections: Vec<Connection> = scope
        .db
        .from("calendar_connections", Caller::Service)
        .select("calendar_id,refresh_token")
        .eq("org_id", scope.org_id)
        .fetch()
        .await?
        .data;
    Ok(connections.into_iter().next().map(|c| (google, c)))
}

pub async fn create(scope: &Scope<'_>, input: &Value, key: &str) -> Result<Value, ToolError> {
    let title = text(input, "title").ok_or(ToolError::Invalid("title is empty".into()))?;
    let start = text(input, "start")
        .and_then(|s| time::parse_local_or_instant(scope.tz, s))
        .ok_or_else(|| {
            ToolError::Invalid("start must be a local date-time YYYY-MM-DDTHH:MM".into())
        })?;
    if start < scope.now - Duration::minutes(1) {
        return Err(ToolError::Invalid("start is in the past".into()));
    }
    let minutes = match &input["duration_minutes"] {
        Value::Null => 60,
        given => given
            .as_i64()
            .filter(|m| DURATION_MINUTES.contains(m))
            .ok_or_else(|| ToolError::Invalid("duration_minutes must be 5 to 1440".into()))?,
    };
    let end = Duration::try_minutes(minutes)
        .and_then(|length| start.checked_add_signed(length))
        .ok_or_else(|| ToolError::Invalid("the event ends beyond the calendar".into()))?;
    let external_id = match google(scope).await? {
        Some((google, connection)) => {
            let token = google.access_token(&connection).await?;
            let span = (start, end);
            let tz = scope.tz.name();
            let id = event_id(key);
            let contact = scope.contact_id.to_string();
            google
                .insert(
                    &token,
                    &connection.calendar_id,
                    &id,
                    &contact,
                    title,
                    span,
                    tz,
                )
                .await?;
            Some(id)
        }
        None => None,
    };
    let _: Value = insert_once(
        scope,
        "calendar_events",
        "id",
        json!({
            "org_id": scope.org_id,
            "contact_id": scope.contact_id,
            "title": title,
            "starts_at": start,
            "ends_at": end,
            "external_id": external_id,
        }),
        key,
    )
    .await?;
    Ok(json!({"event": {
        "title": title,
        "start_local": local_iso(scope.tz, start),
        "end_local": local_iso(scope.tz, end),
        "google_calendar": external_id.is_some(),
    }}))
}

pub async fn list(scope: &Scope<'_>, input: &Value) -> Result<Value, ToolError> {
    let days = match &input["days"] {
        Value::Null => 7,
        given => given
            .as_i64()
            .filter(|d| LIST_DAYS.contains(d))
            .ok_or_else(|| ToolError::Invalid("days must be 1 to 31".into()))?,
    };
    let until = Duration::try_days(days)
        .and_then(|ahead| scope.now.checked_add_signed(ahead))
        .ok_or_else(|| ToolError::Invalid("days reaches beyond the calendar".into()))?;
    let span = (scope.now, until);
    let (events, source) = match google(scope).await? {
        Some((google, connection)) => {
            let token = google.access_token(&connection).await?;
            let contact = scope.contact_id.to_string();
            let listed = google
                .list(&token, &connection.calendar_id, &contact, span)
                .await?;
            let events: Vec<Value> = listed
                .into_iter()
                .map(|event| match (event.start, event.day) {
                    (Some(start), _) => json!({
                        "title": event.title,
                        "start_local": local_iso(scope.tz, start),
                        "end_local": event.end.map(|end| local_iso(scope.tz, end)),
                    }),
                    (None, day) => json!({"title": event.title, "all_day": day, "id": event.id}),
                })
                .collect();
            (events, "google_calendar")
        }
        None => (stored(scope, span).await?, "stored"),
    };
    Ok(json!({"events": events, "source": source, "days": days}))
}

/// The Google event id of the call `key`: its bytes in hex (Google accepts ids of 5 to 1024
/// base32hex characters, `0-9a-v`), so a retried call names the same event.
fn event_id(key: &str) -> String {
    hex::encode(key)
}

async fn stored(
    scope: &Scope<'_>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<Value>, ToolError> {
    let rows: Vec<Row> = scope
        .db
        .from("calendar_events", Caller::Service)
        .select("title,starts_at,ends_at")
        .eq("org_id", scope.org_id)
        .eq("contact_id", scope.contact_id)
        .filter(
            "starts_at",
            "gte",
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
        .filter(
            "starts_at",
            "lt",
            to.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
        .order("starts_at", true)
        .limit(50)
        .fetch()
        .await?
        .data;
    Ok(rows
        .iter()
        .map(|row| {
            json!({
                "title": row.title,
                "start_local": local_iso(scope.tz, row.starts_at),
                "end_local": row.ends_at.map(|end| local_iso(scope.tz, end)),
            })
        })
        .collect())
}
