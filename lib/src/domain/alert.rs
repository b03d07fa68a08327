//! Org alerts the service raises from Rust (the database raises the others itself, e.g.
//! `processing_failures` and `dead_letter_discarded`): each kind has one severity and one text.

use serde::{Serialize, Serializer};

/// How urgent an alert is (`alerts.severity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// What went wrong (`alerts.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The org's monthly token budget is spent: only built-in commands are answered.
    BudgetExhausted,
    /// Graph error 190: the access token must be replaced.
    WhatsappTokenExpired,
    /// A configured or offered AI model shuts down within 30 days (platform-wide, no org).
    ModelRetiring,
    /// A configured or offered AI model is past its shutdown date: turns skip it.
    ModelRetired,
    /// The configured Graph API version stops being served within 30 days (no org).
    GraphVersionRetiring,
    /// The configured Graph API version is no longer served (no org).
    GraphVersionRetired,
    /// The monitor's figures (`/api/cron/monitor`), one open alert per org and kind at most:
    /// inbound messages failing over `ALERT_ERROR_RATE_PERCENT`.
    ErrorRate,
    /// The p95 acknowledgement latency of webhook deliveries is over `ALERT_WEBHOOK_LATENCY_MS`.
    WebhookLatency,
    /// The p95 AI provider latency is over `ALERT_AI_LATENCY_MS`: turns try the fallback first.
    AiLatency,
    /// The budget period's AI cost is over `assistant_settings.monthly_cost_budget_usd`.
    AiCost,
    /// Tool executions failing over `ALERT_TOOL_FAILURE_PERCENT`.
    ToolFailureRate,
    /// The database round trip is over `ALERT_DB_LATENCY_MS` (platform-wide, no org).
    DbLatency,
    /// Raised by the database from Meta's account webhooks
    /// (`private.whatsapp_apply_account_events`), with this severity and a text naming the
    /// event: Meta restricted, banned or disabled the WhatsApp Business account.
    WhatsappAccountRestricted,
    /// Meta reported a policy violation on the WhatsApp Business account.
    WhatsappAccountViolation,
    /// Meta lowered a number's quality rating or messaging limit (resolved when raised again).
    WhatsappNumberQuality,
    /// Meta paused, disabled or rejected the org's reply or reminder template: messages
    /// outside the 24 h window cannot be sent.
    WhatsappTemplateUnusable,
}

impl AlertKind {
    pub fn severity(self) -> Severity {
        match self {
            Self::BudgetExhausted
            | Self::ModelRetiring
            | Self::GraphVersionRetiring
            | Self::WebhookLatency
            | Self::AiLatency
            | Self::AiCost
            | Self::ToolFailureRate
            | Self::DbLatency
            | Self::WhatsappAccountViolation
            | Self::WhatsappNumberQuality => Severity::Warning,
            Self::WhatsappTokenExpired
            | Self::ModelRetired
            | Self::GraphVersionRetired
            | Self::ErrorRate
            | Self::WhatsappAccountRestricted
            | Self::WhatsappTemplateUnusable => Severity::Critical,
        }
    }

    /// The alert's text, as operators read it.
    pub fn message(self) -> &'static str {
        match self {
            Self::BudgetExhausted => {
                "The monthly AI token budget is exhausted; only built-in commands are answered."
            }
            Self::WhatsappTokenExpired => {
                "The WhatsApp access token expired (Graph error 190): replace WHATSAPP_ACCESS_TOKEN."
            }
            Self::ModelRetiring => "An AI model in use or offered shuts down within 30 days.",
            Self::ModelRetired => {
                "An AI model in use or offered is past its shutdown date; turns skip it."
            }
            Self::GraphVersionRetiring => {
                "The Graph API version (GRAPH_API_VERSION) stops being served within 30 days."
            }
            Self::GraphVersionRetired => {
                "The Graph API version (GRAPH_API_VERSION) is no longer served by Meta."
            }
            Self::ErrorRate => "Inbound messages fail over the error rate threshold.",
            Self::WebhookLatency => {
                "Webhook acknowledgement latency (p95) is over its threshold; Meta may retry."
            }
            Self::AiLatency => {
                "AI provider latency (p95) is over its threshold; turns try the fallback model first."
            }
            Self::AiCost => {
                "The AI and WhatsApp cost of this budget period is over the org's cost budget."
            }
            Self::ToolFailureRate => "Tool executions fail over the tool failure threshold.",
            Self::DbLatency => "Database latency is over its threshold.",
            Self::WhatsappAccountRestricted => {
                "Meta restricted or disabled the WhatsApp Business account: sending may stop."
            }
            Self::WhatsappAccountViolation => {
                "Meta reported a policy violation on the WhatsApp Business account."
            }
            Self::WhatsappNumberQuality => {
                "Meta lowered a WhatsApp number's quality rating or messaging limit."
            }
            Self::WhatsappTemplateUnusable => {
                "Meta paused, disabled or rejected the template in use: messages outside the 24 h window cannot be sent."
            }
        }
    }
}

/// An alert to raise: serialized as `{kind, severity, message}` for the database functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alert(pub AlertKind);

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row {
            kind: AlertKind,
            severity: Severity,
            message: &'static str,
        }
        Row {
            kind: self.0,
            severity: self.0.severity(),
            message: self.0.message(),
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_stored_with_its_severity_and_text() {
        let json = serde_json::to_value(Alert(AlertKind::WhatsappTokenExpired)).expect("json");
        assert_eq!(json["kind"], "whatsapp_token_expired");
        assert_eq!(json["severity"], "critical");
        assert!(json["message"].as_str().is_some_and(|m| m.contains("190")));
    }
}
