//! `log_expense` and `expense_summary`: rows of `expenses`, summed by currency and category.

use chrono::{Days, NaiveTime};
use serde_json::{json, Value};

use super::{insert_once, object_schema, text, Scope, ToolError, ToolSpec};
use crate::assistant::parser::category_of;
use crate::assistant::time::{self, Period};
use crate::domain::{Amount, Currency};
use crate::supabase::Caller;

pub fn log_spec() -> ToolSpec {
    ToolSpec {
        name: "log_expense",
        description: "Record money the user spent.",
        parameters: object_schema(
            json!({
                "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 999_999_999},
                "currency": {"type": "string", "minLength": 3, "maxLength": 3,
                             "description": "ISO 4217 code; omit for the user's usual currency."},
                "category": {"type": "string", "minLength": 1, "maxLength": 40,
                             "description": "food, groceries, transport, housing, utilities, \
                                             health, entertainment, shopping or other."},
                "note": {"type": "string", "maxLength": 200},
                "date": {"type": "string", "minLength": 10, "maxLength": 10,
                         "description": "YYYY-MM-DD when not today."},
            }),
            &["amount"],
        ),
    }
}

pub fn summary_spec() -> ToolSpec {
    let periods: Vec<&str> = Period::ALL.iter().map(|p| p.name()).collect();
    ToolSpec {
        name: "expense_summary",
        description: "Total the user's expenses over a period, by currency and category.",
        parameters: object_schema(
            json!({
                "period": {"type": "string", "enum": periods},
                "category": {"type": "string", "minLength": 1, "maxLength": 40},
            }),
            &["period"],
        ),
    }
}

pub async fn log(scope: &Scope<'_>, input: &Value, key: &str) -> Result<Value, ToolError> {
    let amount = input["amount"]
        .as_f64()
        .and_then(Amount::from_f64)
        .ok_or_else(|| {
            ToolError::Invalid("amount must be positive, at most two decimals".into())
        })?;
    let currency = match text(input, "currency") {
        Some(code) => Currency::parse(code)
            .ok_or_else(|| ToolError::Invalid("currency must be an ISO 4217 code".into()))?,
        None => scope.currency.clone(),
    };
    let note = text(input, "note");
    let category = text(input, "category")
        .map(|c| c.to_lowercase())
        .unwrap_or_else(|| note.map(category_of).unwrap_or("other").to_string());
    let spent_at = match text(input, "date") {
        Some(date) => {
            let date = time::parse_date(date)
                .ok_or_else(|| ToolError::Invalid("date must be YYYY-MM-DD".into()))?;
            let noon = time::resolve(
                scope.tz,
                date.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap_or_default()),
            );
            if scope
                .now
                .checked_add_days(Days::new(1))
                .is_none_or(|tomorrow| noon > tomorrow)
            {
                return Err(ToolError::Invalid("date is in the future".into()));
            }
            noon
        }
        None => scope.now,
    };
    let expense: Value = insert_once(
        scope,
        "expenses",
        "id,amount,currency,category,note,spent_at",
        json!({
            "org_id": scope.org_id,
            "contact_id": scope.contact_id,
            "amount": amount.to_string(),
            "currency": currency,
            "category": category,
            "note": note,
            "spent_at": spent_at,
        }),
        key,
    )
    .await?;
    Ok(json!({"expense": expense}))
}

pub async fn summary(scope: &Scope<'_>, input: &Value) -> Result<Value, ToolError> {
    let period = text(input, "period")
        .and_then(Period::from_name)
        .ok_or_else(|| ToolError::Invalid("unknown period".into()))?;
    let (from, to) = period.range(scope.tz, scope.now);
    let totals: Value = scope
        .db
        .rpc("assistant_expense_summary", Caller::Service)
        .args(&json!({
            "p_org_id": scope.org_id,
            "p_contact_id": scope.contact_id,
            "p_from": from,
            "p_to": to,
            "p_category": text(input, "category"),
        }))
        .fetch()
        .await?
        .data;
    Ok(json!({"period": period, "from": from, "to": to, "totals": totals}))
}
