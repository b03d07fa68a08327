//! The assistant's tools: reminders, expenses and calendar events, scoped to one org and one
//! contact. The model calls them by name with JSON input; the command parser calls the same
//! ones. Every input is checked against the tool's JSON Schema first, and every run is
//! recorded in the turn's [`Ledger`].
//!
//! Side effects happen once: each call of a turn has an idempotency key (the turn's first
//! message, the tool, the call's number among that tool's calls in the turn), the same in every
//! retry of the turn. A reminder, expense or calendar event is stored under its key (a retry
//! gets the row stored before), a Google event's id is derived from it, and a cancellation is
//! recorded with it.

mod calendar;
mod expenses;
pub mod google;
mod reminders;
pub mod reply;
pub mod schema;

use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

use super::ledger::{Ledger, ToolExecution};
use crate::domain::{Currency, Wamid};
use crate::supabase::{Caller, DbError, Postgrest, Resolution, Return};

pub use google::{CalendarError, GoogleCalendar};

/// A tool as the model sees it.
#[derive(Clone, Debug)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema of the input.
    pub parameters: Value,
}

/// Whom a tool acts for, and where and when they are.
pub struct Scope<'a> {
    pub db: &'a Postgrest,
    pub google: Option<&'a GoogleCalendar>,
    pub org_id: Uuid,
    pub contact_id: Uuid,
    pub tz: Tz,
    pub now: DateTime<Utc>,
    /// The currency of amounts given without one.
    pub currency: Currency,
    /// The org's `assistant_settings.enabled_tools`.
    pub enabled: &'a [String],
    /// The turn's first message: the start of every call's idempotency key.
    pub turn_key: Uuid,
    /// The message the reply answers, which `react` reacts to.
    pub reply_to: Option<&'a Wamid>,
}

/// Why a tool did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool {0}")]
    Unknown(String),
    #[error("the tool {0} is not enabled for this organisation")]
    Disabled(String),
    /// The input breaks the schema or names something impossible (a past time).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Valid, but there is nothing to act on (no reminder with that number).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

/// Every tool, enabled or not (the reply tools are always offered).
pub fn all_specs() -> Vec<ToolSpec> {
    vec![
        reply::buttons_spec(),
        reply::list_spec(),
        reply::react_spec(),
        reminders::create_spec(),
        reminders::list_spec(),
        reminders::cancel_spec(),
        expenses::log_spec(),
        expenses::summary_spec(),
        calendar::create_spec(),
        calendar::list_spec(),
    ]
}

/// The tools the org enabled, and the reply tools.
pub fn specs(enabled: &[String]) -> Vec<ToolSpec> {
    all_specs()
        .into_iter()
        .filter(|spec| is_enabled(enabled, spec.name))
        .collect()
}

fn is_enabled(enabled: &[String], name: &str) -> bool {
    reply::is_reply_tool(name) || enabled.iter().any(|e| e == name)
}

/// Runs tool `name` with `input` and records it in `ledger` (linked to the provider attempt
/// that asked for it, if any).
pub async fn execute(
    scope: &Scope<'_>,
    ledger: &mut Ledger,
    ai_request_id: Option<Uuid>,
    name: &str,
    input: &Value,
) -> Result<Value, ToolError> {
    let (at, started) = (Utc::now(), Instant::now());
    let number = 1 + ledger
        .tool_executions
        .iter()
        .filter(|t| t.tool == name)
        .count();
    let key = format!("{}:{name}:{number}", scope.turn_key);
    let result = run(scope, name, input, &key).await;
    if let Err(error) = &result {
        tracing::info!(tool = name, error = %error, "tool call failed");
    }
    ledger.tool_executions.push(ToolExecution {
        id: Uuid::new_v4(),
        ai_request_id,
        tool: name.chars().take(100).collect(),
        input: input.clone(),
        output: result.as_ref().ok().cloned(),
        status: if result.is_ok() { "success" } else { "error" },
        error: result.as_ref().err().map(ToString::to_string),
        latency_ms: started.elapsed().as_millis() as u64,
        at,
    });
    result
}

async fn run(scope: &Scope<'_>, name: &str, input: &Value, key: &str) -> Result<Value, ToolError> {
    let spec = all_specs()
        .into_iter()
        .find(|spec| spec.name == name)
        .ok_or_else(|| ToolError::Unknown(name.chars().take(100).collect()))?;
    if !is_enabled(scope.enabled, name) {
        return Err(ToolError::Disabled(name.to_string()));
    }
    schema::validate(&spec.parameters, input).map_err(ToolError::Invalid)?;
    match name {
        reply::BUTTONS | reply::LIST | reply::REACT => reply::run(scope, name, input),
        "create_reminder" => reminders::create(scope, input, key).await,
        "list_reminders" => reminders::list(scope).await,
        "cancel_reminder" => reminders::cancel(scope, input, key).await,
        "log_expense" => expenses::log(scope, input, key).await,
        "expense_summary" => expenses::summary(scope, input).await,
        "create_calendar_event" => calendar::create(scope, input, key).await,
        "list_calendar_events" => calendar::list(scope, input).await,
        other => Err(ToolError::Unknown(other.to_string())),
    }
}

/// How an instant reads on the contact's wall clock, for tool outputs: `2026-03-07T09:00`.
pub fn local_iso(tz: Tz, instant: DateTime<Utc>) -> String {
    super::time::local(tz, instant)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// Reads back what [`local_iso`] wrote.
pub fn parse_local_iso(value: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M").ok()
}

/// Stores `row` in `table` under the call's idempotency `key`, or, when a run of the same call
/// stored it already, reads that row back; either way returns it (its `columns`).
async fn insert_once<T: DeserializeOwned>(
    scope: &Scope<'_>,
    table: &str,
    columns: &str,
    mut row: Value,
    key: &str,
) -> Result<T, ToolError> {
    row["idempotency_key"] = json!(key);
    let inserted: Vec<T> = scope
        .db
        .from(table, Caller::Service)
        .select(columns)
        .upsert(&row, "org_id,idempotency_key", Resolution::IgnoreDuplicates)
        .returning(Return::Representation)
        .fetch()
        .await?
        .data;
    if let Some(row) = inserted.into_iter().next() {
        return Ok(row);
    }
    let stored: Vec<T> = scope
        .db
        .from(table, Caller::Service)
        .select(columns)
        .eq("org_id", scope.org_id)
        .eq("idempotency_key", key)
        .fetch()
        .await?
        .data;
    stored
        .into_iter()
        .next()
        .ok_or_else(|| ToolError::NotFound(format!("the {table} row was not stored")))
}

/// A string field of a validated input.
fn text<'v>(input: &'v Value, field: &str) -> Option<&'v str> {
    input[field]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The schema of an object whose fields are `properties`, of which `required` are required.
fn object_schema(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_uses_only_what_the_validator_checks() {
        const KNOWN: &[&str] = &[
            "type",
            "properties",
            "required",
            "additionalProperties",
            "enum",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "description",
            "items",
            "minItems",
            "maxItems",
        ];
        fn keys(schema: &Value, out: &mut Vec<String>) {
            if let Some(object) = schema.as_object() {
                for (key, value) in object {
                    out.push(key.clone());
                    if key == "properties" {
                        for field in value.as_object().into_iter().flat_map(|o| o.values()) {
                            keys(field, out);
                        }
                    }
                    if key == "items" {
                        keys(value, out);
                    }
                }
            }
        }
        for spec in all_specs() {
            let mut used = Vec::new();
            keys(&spec.parameters, &mut used);
            for key in used {
                assert!(KNOWN.contains(&key.as_str()), "{}: {key}", spec.name);
            }
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
        }
        assert_eq!(all_specs().len(), 10);
    }
}
