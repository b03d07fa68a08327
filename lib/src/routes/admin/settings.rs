//! `GET|PUT /api/admin/settings?org_id=`: the org's assistant settings.
//!
//! `GET` (any member) reads them under RLS. `PUT` (owners and admins) changes the fields
//! present in the body and nothing else (`admin_update_settings`, the only way users write
//! settings: it checks the caller's role and writes one audit row `settings.update` naming the
//! fields). Unknown fields and out-of-range values are 400; so is a model (or fallback model)
//! that the org's plan does not offer (`plans.models`, checked by the database). The bounds
//! here are the table's constraints (`assistant_settings` in the schema migration), exactly.

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
    contact_daily_token_cap,monthly_cost_budget_usd,updated_at";

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
}

/// A field that is present, even as `null`: `Some(None)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The longest system prompt, in characters (`assistant_settings_system_prompt_check`).
pub const SYSTEM_PROMPT_MAX_CHARS: usize = 8_000;

impl Update {
    /// Every present field within its bounds; the first one that is not is named.
    fn validate(&self) -> Result<(), String> {
        let text =
            |name: &str, value: &Option<String>, max: usize, ok: fn(char) -> bool| match value {
                Some(v) if v.trim().is_empty() || v.chars().count() > max || !v.chars().all(ok) => {
                    Err(format!("{name}: 1 to {max} allowed characters"))
                }
                _ => Ok(()),
            };
        let name_char = |c: char| c.is_ascii_alphanumeric() || "._:/-".contains(c);
        let template_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        text(
            "system_prompt",
            &self.system_prompt,
            SYSTEM_PROMPT_MAX_CHARS,
            |_| true,
        )?;
        text("model", &self.model, 100, name_char)?;
        text("fallback_model", &self.fallback_model, 100, name_char)?;
        text("language", &self.language, 35, |c| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_'
        })?;
        text("timezone", &self.timezone, 64, |c| {
            c.is_ascii_alphanumeric() || "/_+-".contains(c)
        })?;
        text("template_language", &self.template_language, 15, |c| {
            c.is_ascii_alphanumeric() || c == '_'
        })?;
        text(
            "reply_template",
            &self.reply_template.clone().flatten(),
            512,
            template_char,
        )?;
        text(
            "reminder_template",
            &self.reminder_template.clone().flatten(),
            512,
            template_char,
        )?;
        if let Some(tools) = &self.enabled_tools {
            let tool_ok = |t: &String| {
                (1..=64).contains(&t.len())
                    && t.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            };
            if tools.len() > 50 || !tools.iter().all(tool_ok) {
                return Err("enabled_tools: at most 50 names of [a-z0-9_]".into());
            }
        }
        if self
            .rate_limit_per_minute
            .is_some_and(|n| !(1..=10_000).contains(&n))
        {
            return Err("rate_limit_per_minute: 1 to 10000".into());
        }
        if self
            .contact_daily_token_cap
            .is_some_and(|n| !(0..=1_000_000_000).contains(&n))
        {
            return Err("contact_daily_token_cap: 0 to 1000000000".into());
        }
        if self
            .monthly_cost_budget_usd
            .is_some_and(|usd| !(0.0..=1_000_000.0).contains(&usd))
        {
            return Err("monthly_cost_budget_usd: 0 to 1000000".into());
        }
        Ok(())
    }
}

async fn settings(admin: Admin) -> HandlerResult {
    let org = admin.params().id("org_id")?;
    if admin.request.method() == http::Method::PUT {
        let update: Update = admin.body()?;
        update.validate().map_err(ApiError::BadRequest)?;
        let changed: Value = admin
            .rpc(
                "admin_update_settings",
                &json!({"p_org_id": org, "p_settings": update}),
            )
            .await?;
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
        let update: Update = serde_json::from_value(body).map_err(|e| e.to_string())?;
        update.validate().map(|()| update)
    }

    #[test]
    fn only_known_fields_within_bounds_pass() {
        assert!(update(json!({"model": "gpt-4o-mini", "rate_limit_per_minute": 20})).is_ok());
        assert!(update(json!({"plan": "pro"})).is_err(), "unknown field");
        assert!(update(json!({"rate_limit_per_minute": 0})).is_err());
        assert!(update(json!({"model": ""})).is_err());
        assert!(update(json!({"reply_template": "Bad Name"})).is_err());
        assert!(update(json!({"enabled_tools": ["log_expense", "DROP TABLE"]})).is_err());
    }

    #[test]
    fn the_system_prompt_is_bounded_in_characters() {
        let longest = "é".repeat(SYSTEM_PROMPT_MAX_CHARS);
        assert!(update(json!({ "system_prompt": longest })).is_ok());
        let over = "a".repeat(SYSTEM_PROMPT_MAX_CHARS + 1);
        assert!(update(json!({ "system_prompt": over })).is_err());
        assert!(update(json!({"system_prompt": " \n "})).is_err());
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
}
