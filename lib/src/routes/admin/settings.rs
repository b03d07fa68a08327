//! `GET|PUT /api/admin/settings?org_id=`: the org's assistant settings.
//!
//! `GET` (any member) reads them under RLS. `PUT` (owners and admins) changes the fields
//! present in the body and nothing else (`admin_update_settings`, the only way users write
//! settings: it checks the caller's role and writes one audit row `settings.update` naming the
//! fields). Unknown fields and values of the wrong type are 400 here; values out of bounds are
//! 400 from the database, whose CHECK constraints on `assistant_settings` are the one statement
//! of the limits (naming the field); so is a model (or fallback model) that the org's plan does
//! not offer (`plans.models`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use serde_json::Value;

use super::{ok, rows, serve, Admin};
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/admin/settings.rs",
    handler: |request, ctx| {
        Box::pin(serve(request, ctx, &["GET", "PUT"], |a| {
            Box::pin(settings(a))
        }))
    },
};

const COLUMNS: &str = "org_id,system_prompt,model,fallback_model,enabled_tools,language,timezone,\
    reply_template,reminder_template,template_language,rate_limit_per_minute,\
    contact_daily_token_cap,monthly_cost_budget_usd,welcome_message,staff_idle_minutes,answer_groups,\
    updated_at";

/// A partial update: absent fields are unchanged; the templates may be set to `null`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Update {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled_tools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    reply_template: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    reminder_template: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_per_minute: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_daily_token_cap: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monthly_cost_budget_usd: Option<f64>,
    /// The answer to a contact's first open of the chat; `null`: the built-in welcome.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    welcome_message: Option<Option<String>>,
    /// Minutes of staff silence (in the WhatsApp Business app) before the bot answers again.
    #[serde(skip_serializing_if = "Option::is_none")]
    staff_idle_minutes: Option<i32>,
    /// Group messages answered in the group (never privately); `false`: stored, unanswered.
    #[serde(skip_serializing_if = "Option::is_none")]
    answer_groups: Option<bool>,
}

/// A field that is present, even as `null`: `Some(None)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The message of a value out of the table's bounds. The database is the rule: the table's
/// CHECK constraints (`assistant_settings_<column>_check`), which `admin_update_settings`
/// reports as `settings: <column> is out of bounds` (22023); `openapi.json` states the same
/// limits for clients (the console reads them there; `tests/api/admin/limits.rs` keeps the two
/// equal). A value too large for `numeric(12, 2)` is the one bound a cast checks (22003).
fn out_of_bounds(error: ApiError) -> ApiError {
    let field = match &error {
        ApiError::BadRequest(message) => message
            .strip_prefix("settings: ")
            .and_then(|rest| rest.strip_suffix(" is out of bounds")),
        ApiError::Database(e) if e.code() == Some("22003") => Some("monthly_cost_budget_usd"),
        _ => None,
    };
    match field {
        Some(field) => ApiError::BadRequest(format!(
            "{field}: out of bounds (SettingsUpdate in /api/admin/openapi.json)"
        )),
        None => error,
    }
}

async fn settings(admin: Admin) -> HandlerResult {
    let org = admin.params().id("org_id")?;
    if admin.request.method() == http::Method::PUT {
        let update: Update = admin.body()?;
        let changed: Value = admin
            .rpc(
                "admin_update_settings",
                &json!({"p_org_id": org, "p_settings": update}),
            )
            .await
            .map_err(out_of_bounds)?;
        return ok(&changed);
    }
    let query = admin
        .from("assistant_settings")?
        .select(COLUMNS)
        .eq("org_id", org);
    let row = rows(query)
        .await?
        .into_iter()
        .next()
        .ok_or(ApiError::NotFound)?;
    ok(&row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(body: Value) -> Result<Update, String> {
        serde_json::from_value(body).map_err(|e| e.to_string())
    }

    #[test]
    fn only_known_fields_of_the_right_types_parse() {
        assert!(update(json!({"model": "gpt-4o-mini", "rate_limit_per_minute": 20})).is_ok());
        assert!(update(json!({"plan": "pro"})).is_err(), "unknown field");
        assert!(update(json!({"rate_limit_per_minute": "20"})).is_err());
        assert!(update(json!({"rate_limit_per_minute": 3_000_000_000_i64})).is_err());
        assert!(update(json!({"enabled_tools": ["log_expense", 7]})).is_err());
    }

    #[test]
    fn a_template_can_be_cleared_with_null_and_absent_fields_stay_absent() {
        let cleared = update(json!({"reply_template": null})).expect("valid");
        assert_eq!(
            serde_json::to_value(&cleared).expect("json"),
            json!({"reply_template": null})
        );
        let untouched = update(json!({"language": "es"})).expect("valid");
        assert_eq!(
            serde_json::to_value(&untouched).expect("json"),
            json!({"language": "es"})
        );
    }

    #[test]
    fn the_databases_bounds_error_names_the_field() {
        let error = out_of_bounds(ApiError::BadRequest(
            "settings: rate_limit_per_minute is out of bounds".into(),
        ));
        assert!(error.to_string().starts_with("rate_limit_per_minute: "));
        let other = out_of_bounds(ApiError::BadRequest("settings: unknown field".into()));
        assert_eq!(other.to_string(), "settings: unknown field");
    }
}
