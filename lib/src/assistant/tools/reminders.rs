//! `create_reminder`, `list_reminders`, `cancel_reminder`: rows of `reminders` (sent by the
//! reminders cron, which also reschedules recurring ones).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{insert_once, local_iso, object_schema, text, Scope, ToolError, ToolSpec};
use crate::assistant::time;
use crate::domain::Recurrence;
use crate::supabase::Caller;

/// How many pending reminders `list_reminders` shows.
const LIST_LIMIT: usize = 20;

pub fn create_spec() -> ToolSpec {
    ToolSpec {
        name: "create_reminder",
        description: "Schedule a WhatsApp reminder for the user, once or repeating daily, \
                      weekly or monthly.",
        parameters: object_schema(
            json!({
                "text": {"type": "string", "minLength": 1, "maxLength": 1000,
                         "description": "What to remind the user of, in their words."},
                "due": {"type": "string", "minLength": 10, "maxLength": 40,
                        "description": "When, as a local date-time in the user's time zone: \
                                        YYYY-MM-DDTHH:MM (first occurrence if repeating)."},
                "recurrence": {"type": "string", "enum": ["none", "daily", "weekly", "monthly"]},
            }),
            &["text", "due"],
        ),
    }
}

pub fn list_spec() -> ToolSpec {
    ToolSpec {
        name: "list_reminders",
        description: "List the user's pending reminders, numbered in due order.",
        parameters: object_schema(json!({}), &[]),
    }
}

pub fn cancel_spec() -> ToolSpec {
    ToolSpec {
        name: "cancel_reminder",
        description: "Cancel one of the user's pending reminders: by its number in \
                      list_reminders, or by its id (as a chosen option carries it).",
        parameters: object_schema(
            json!({
                "number": {"type": "integer", "minimum": 1, "maximum": 1000},
                "id": {"type": "string", "minLength": 36, "maxLength": 36,
                       "description": "The reminder's id."},
            }),
            &[],
        ),
    }
}

#[derive(Deserialize)]
struct Row {
    id: Uuid,
    text: String,
    due_at: DateTime<Utc>,
    recurrence: Recurrence,
}

fn describe(scope: &Scope<'_>, row: &Row, number: Option<usize>) -> Value {
    let mut value = json!({
        "id": row.id,
        "text": row.text,
        "due_at": row.due_at,
        "due_local": local_iso(scope.tz, row.due_at),
        "recurrence": row.recurrence,
    });
    if let Some(number) = number {
        value["number"] = json!(number);
    }
    value
}

pub async fn create(scope: &Scope<'_>, input: &Value, key: &str) -> Result<Value, ToolError> {
    let reminder_text = text(input, "text").ok_or(ToolError::Invalid("text is empty".into()))?;
    let due = text(input, "due")
        .and_then(|due| time::parse_local_or_instant(scope.tz, due))
        .ok_or_else(|| {
            ToolError::Invalid("due must be a local date-time YYYY-MM-DDTHH:MM".into())
        })?;
    if due < scope.now - Duration::minutes(1) {
        return Err(ToolError::Invalid("due is in the past".into()));
    }
    let recurrence = input["recurrence"]
        .as_str()
        .and_then(Recurrence::parse)
        .unwrap_or_default();
    let row: Row = insert_once(
        scope,
        "reminders",
        "id,text,due_at,recurrence",
        json!({
            "org_id": scope.org_id,
            "contact_id": scope.contact_id,
            "text": reminder_text,
            "due_at": due,
            "recurrence": recurrence,
            "timezone": scope.tz.name(),
        }),
        key,
    )
    .await?;
    Ok(json!({"reminder": describe(scope, &row, None)}))
}

pub async fn list(scope: &Scope<'_>) -> Result<Value, ToolError> {
    let rows: Vec<Row> = scope
        .db
        .from("reminders", Caller::Service)
        .select("id,text,due_at,recurrence")
        .eq("org_id", scope.org_id)
        .eq("contact_id", scope.contact_id)
        .eq("status", "pending")
        .param("order", "due_at.asc,id.asc")
        .limit(LIST_LIMIT)
        .fetch()
        .await?
        .data;
    let reminders: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| describe(scope, row, Some(i + 1)))
        .collect();
    Ok(json!({"reminders": reminders}))
}

pub async fn cancel(scope: &Scope<'_>, input: &Value, key: &str) -> Result<Value, ToolError> {
    let number = input["number"].as_i64();
    let id = match input["id"].as_str() {
        Some(id) => Some(
            Uuid::parse_str(id)
                .map_err(|_| ToolError::Invalid("id is not a reminder id".into()))?,
        ),
        None => None,
    };
    if number.is_none() == id.is_none() {
        return Err(ToolError::Invalid("give either number or id".into()));
    }
    let cancelled: Option<Row> = scope
        .db
        .rpc("assistant_cancel_reminder", Caller::Service)
        .args(&json!({
            "p_org_id": scope.org_id,
            "p_contact_id": scope.contact_id,
            "p_number": number,
            "p_key": key,
            "p_reminder_id": id,
        }))
        .fetch()
        .await?
        .data;
    let row = cancelled.ok_or_else(|| match number {
        Some(number) => {
            ToolError::NotFound(format!("there is no pending reminder number {number}"))
        }
        None => ToolError::NotFound("that reminder is no longer pending".into()),
    })?;
    let mut value = describe(scope, &row, None);
    if let Some(number) = number {
        value["number"] = json!(number);
    }
    Ok(json!({"cancelled": value}))
}
