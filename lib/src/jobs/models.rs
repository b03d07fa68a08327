//! The model lifecycle stage of the retry-failed cron: every model the service is configured
//! with, every model a plan offers and every model an org's settings name is looked up in the
//! lifecycle (`assistant/lifecycle.rs`; OpenAI's `GET /v1/models` is read first when the last
//! read is older than its TTL). A model within 30 days of its shutdown raises one platform
//! alert (`org_id` null) `model_retiring` (warning), one past it `model_retired` (critical):
//! one per model and kind while it is open or acknowledged. The Graph API version the service
//! calls (`GRAPH_API_VERSION`) is looked up the same way in `lifecycle::GRAPH_VERSIONS`:
//! `graph_version_retiring` / `graph_version_retired`.

use std::collections::BTreeSet;

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::Jobs;
use crate::assistant::lifecycle::{self, Stage};
use crate::domain::{AlertKind, Severity};
use crate::supabase::{Caller, DbError, Postgrest};

/// Raises the lifecycle alerts not raised yet; returns how many were raised. Failures are
/// logged (this stage never fails the cron run).
pub async fn check_models(jobs: &Jobs) -> u64 {
    let Ok(db) = jobs.db() else { return 0 };
    match raise(jobs, db).await {
        Ok(raised) => raised,
        Err(error) => {
            tracing::warn!(error = %error, "model lifecycle check failed");
            0
        }
    }
}

#[derive(Deserialize)]
struct Plan {
    models: Vec<String>,
}

#[derive(Deserialize)]
struct ChosenModels {
    model: String,
    fallback_model: String,
}

#[derive(Deserialize)]
struct OpenAlert {
    kind: String,
    message: String,
}

/// What shuts down: an AI model, or the Graph API version the service calls.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Subject {
    Model(String),
    GraphVersion(String),
}

impl Subject {
    /// How its alert text starts, which is how an open alert is recognised as raised.
    fn prefix(&self) -> String {
        match self {
            Self::Model(model) => format!("Model {model} "),
            Self::GraphVersion(version) => format!("Graph API {version} "),
        }
    }

    fn kind(&self, stage: Stage) -> AlertKind {
        let retired = matches!(stage, Stage::Retired(_));
        match self {
            Self::Model(_) if retired => AlertKind::ModelRetired,
            Self::Model(_) => AlertKind::ModelRetiring,
            Self::GraphVersion(_) if retired => AlertKind::GraphVersionRetired,
            Self::GraphVersion(_) => AlertKind::GraphVersionRetiring,
        }
    }

    /// The alert text, [`Subject::prefix`] first.
    fn message(&self, stage: Stage, today: chrono::NaiveDate) -> Option<String> {
        match self {
            Self::Model(model) => message(model, stage, today),
            Self::GraphVersion(version) => graph_message(version, stage, today),
        }
    }
}

/// The alert text of a Graph API version.
fn graph_message(version: &str, stage: Stage, today: chrono::NaiveDate) -> Option<String> {
    let newest = lifecycle::DEFAULT_GRAPH_VERSION;
    Some(match stage {
        Stage::Active => return None,
        Stage::Retiring(date) => format!(
            "Graph API {version} stops being served on {date} (in {} days): set GRAPH_API_VERSION to {newest} (the newest).",
            (date - today).num_days()
        ),
        Stage::Retired(date) => format!(
            "Graph API {version} is no longer served since {date} (Meta answers with the oldest version it still serves): set GRAPH_API_VERSION to {newest}."
        ),
    })
}

/// The alert text of a model: names the model first (`Model <id> …`).
fn message(model: &str, stage: Stage, today: chrono::NaiveDate) -> Option<String> {
    let replace = match lifecycle::replacement(model) {
        Some(replacement) => format!("replace it (the provider names {replacement})"),
        None => "replace it".to_string(),
    };
    Some(match stage {
        Stage::Active => return None,
        Stage::Retiring(date) => format!(
            "Model {model} shuts down on {date} (in {} days): {replace} in the plans and settings that use it.",
            (date - today).num_days()
        ),
        Stage::Retired(date) => format!(
            "Model {model} shut down on {date}: turns skip it for the fallback; {replace} in the plans and settings that use it."
        ),
    })
}

async fn raise(jobs: &Jobs, db: &Postgrest) -> Result<u64, DbError> {
    let lifecycle = jobs.assistant.lifecycle();
    if let Some(openai) = jobs.settings.openai.as_ref().filter(|_| lifecycle.stale()) {
        let timeout = jobs.settings.check_timeout;
        if let Err(error) = lifecycle.refresh_openai(&jobs.http, openai, timeout).await {
            tracing::warn!(error = %error, "OpenAI model list not read; known dates used");
        }
    }
    let mut models: BTreeSet<String> = jobs
        .assistant
        .configured_models()
        .iter()
        .map(|m| m.to_string())
        .collect();
    let plans: Vec<Plan> = db
        .from("plans", Caller::Service)
        .select("models")
        .fetch()
        .await?
        .data;
    models.extend(plans.into_iter().flat_map(|p| p.models));
    let chosen: Vec<ChosenModels> = db
        .from("assistant_settings", Caller::Service)
        .select("model,fallback_model")
        .fetch()
        .await?
        .data;
    models.extend(chosen.into_iter().flat_map(|c| [c.model, c.fallback_model]));

    let today = Utc::now().date_naive();
    let graph = &jobs.settings.graph_version;
    let graph = (
        Subject::GraphVersion(graph.clone()),
        lifecycle::stage(lifecycle::graph_version_end(graph), today),
    );
    let due: Vec<(Subject, Stage)> = models
        .into_iter()
        .map(|m| {
            let stage = lifecycle.stage(&m, today);
            (Subject::Model(m), stage)
        })
        .chain([graph])
        .filter(|(_, stage)| *stage != Stage::Active)
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let open: Vec<OpenAlert> = db
        .from("alerts", Caller::Service)
        .select("kind,message")
        .filter("org_id", "is", "null")
        .filter(
            "kind",
            "in",
            "(model_retiring,model_retired,graph_version_retiring,graph_version_retired)",
        )
        .filter("status", "in", "(open,acknowledged)")
        .fetch()
        .await?
        .data;
    let mut rows = Vec::new();
    for (subject, stage) in due {
        let kind = subject.kind(stage);
        let kind_name = serde_json::to_value(kind).unwrap_or_default();
        let raised = open
            .iter()
            .any(|a| kind_name == a.kind.as_str() && a.message.starts_with(&subject.prefix()));
        let Some(text) = subject.message(stage, today).filter(|_| !raised) else {
            continue;
        };
        tracing::warn!(?subject, ?stage, "retiring: alert raised");
        let severity: Severity = kind.severity();
        rows.push(json!({"org_id": null, "kind": kind, "severity": severity, "message": text}));
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let raised = rows.len() as u64;
    db.from("alerts", Caller::Service)
        .insert(&rows)
        .execute()
        .await?;
    Ok(raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_names_the_model_first_and_its_date() {
        let today: chrono::NaiveDate = "2026-12-01".parse().expect("date");
        let date = "2026-12-11".parse().expect("date");
        let text = message("gpt-5-mini", Stage::Retiring(date), today).expect("text");
        assert!(
            text.starts_with(&Subject::Model("gpt-5-mini".into()).prefix()),
            "{text}"
        );
        assert!(
            text.contains("2026-12-11") && text.contains("10 days"),
            "{text}"
        );
        assert!(text.contains("gpt-6.1-terra"), "{text}");
        let text = message("claude-3-5-haiku-latest", Stage::Retired(date), today).expect("text");
        assert!(text.contains("skip"), "{text}");
        assert_eq!(message("gpt-6-luna", Stage::Active, today), None);
        let prefix = |m: &str| Subject::Model(m.into()).prefix();
        assert!(!prefix("gpt-5").starts_with(&prefix("gpt-5-mini")));
    }

    #[test]
    fn a_graph_version_alert_names_the_version_and_the_newest() {
        let today: chrono::NaiveDate = "2027-01-01".parse().expect("date");
        let v21 = Subject::GraphVersion("v21.0".into());
        let end = lifecycle::graph_version_end("v21.0");
        let stage = lifecycle::stage(end, today);
        assert_eq!(v21.kind(stage), AlertKind::GraphVersionRetiring);
        let text = v21.message(stage, today).expect("text");
        assert!(text.starts_with("Graph API v21.0 "), "{text}");
        assert!(
            text.contains("2027-01-21") && text.contains("20 days"),
            "{text}"
        );
        assert!(text.contains("v27.0"), "{text}");
        let newest = Subject::GraphVersion(lifecycle::DEFAULT_GRAPH_VERSION.into());
        let end = lifecycle::graph_version_end(lifecycle::DEFAULT_GRAPH_VERSION);
        assert_eq!(newest.message(lifecycle::stage(end, today), today), None);
    }
}
