//! The dependency checks behind `/api/health`. None of them spends AI tokens: the providers
//! are asked for their model list, Meta for the token's own id.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{
    Check, ConfigurationCheck, HealthReport, ModelNotice, Optional, Overall, ServiceStatus,
    Services,
};
use crate::assistant::lifecycle::Stage;
use crate::assistant::Assistant;
use crate::configuration::{ProviderSettings, Settings};
use crate::supabase::{Caller, Postgrest};

/// What the checks use, lent by the route.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    pub settings: &'a Settings,
    /// The pooled HTTP client the providers and Meta are asked with.
    pub http: &'a reqwest::Client,
    /// The PostgREST client; `None` when a variable it needs is missing (the database is down).
    pub db: Option<&'a Postgrest>,
    /// The configured models and their shutdown dates.
    pub assistant: &'a Assistant,
    /// Whether errors go to Sentry (`SENTRY_DSN` set and valid).
    pub sentry: bool,
}

/// Runs every check concurrently and sums them up.
pub async fn check(parts: Parts<'_>) -> HealthReport {
    let settings = parts.settings;
    let timeout = settings.health.check_timeout;
    let (database, ai_primary, ai_fallback, whatsapp) = tokio::join!(
        database(parts.db, timeout),
        provider(parts, "openai", settings.openai.as_ref(), timeout),
        provider(parts, "anthropic", settings.anthropic.as_ref(), timeout),
        whatsapp(parts, timeout),
    );
    let services = Services {
        database,
        ai_primary,
        ai_fallback,
        whatsapp,
        sentry: Optional::of(parts.sentry),
        openai: Optional::of(settings.openai.is_some()),
        anthropic: Optional::of(settings.anthropic.is_some()),
        google_calendar: Optional::of(settings.google.is_some()),
        stripe: Optional::of(settings.stripe.webhook_secrets.is_ok()),
        stripe_api: Optional::of(settings.stripe.secret_key.is_some()),
    };
    HealthReport {
        status: overall(&services),
        timestamp: Utc::now(),
        version: settings.version.clone(),
        environment: settings.environment.clone(),
        sentry: services.sentry.status,
        services,
        models: model_notices(parts.assistant),
        configuration: ConfigurationCheck::of(settings),
    }
}

/// The configured models that retire within 30 days or have retired (the OpenAI check above
/// has just refreshed the shutdown dates it lists).
fn model_notices(assistant: &Assistant) -> Vec<ModelNotice> {
    let today = Utc::now().date_naive();
    let mut notices: Vec<ModelNotice> = Vec::new();
    for model in assistant.configured_models() {
        let stage = assistant.lifecycle().stage(model, today);
        if stage != Stage::Active && !notices.iter().any(|n| n.model == model) {
            notices.push(ModelNotice {
                model: model.to_string(),
                stage,
            });
        }
    }
    notices
}

fn overall(services: &Services) -> Overall {
    let optional = [
        &services.ai_primary,
        &services.ai_fallback,
        &services.whatsapp,
    ];
    if services.database.status != ServiceStatus::Up {
        Overall::Unhealthy
    } else if optional.iter().any(|c| c.status == ServiceStatus::Down) {
        Overall::Degraded
    } else {
        Overall::Healthy
    }
}

/// Times `probe`; a probe that fails or outlasts `timeout` is `down`.
async fn timed<F, E>(
    service: &'static str,
    provider: Option<&'static str>,
    timeout: Duration,
    probe: F,
) -> Check
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let status = match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(())) => ServiceStatus::Up,
        Ok(Err(error)) => {
            tracing::warn!(service, error = %error, "health check failed");
            ServiceStatus::Down
        }
        Err(_) => {
            tracing::warn!(service, "health check timed out");
            ServiceStatus::Down
        }
    };
    Check {
        status,
        provider,
        latency_ms: Some(started.elapsed().as_millis() as u64),
    }
}

fn not_configured(provider: Option<&'static str>) -> Check {
    Check {
        status: ServiceStatus::NotConfigured,
        provider,
        latency_ms: None,
    }
}

async fn database(db: Option<&Postgrest>, timeout: Duration) -> Check {
    let Some(db) = db else {
        return Check {
            status: ServiceStatus::Down,
            provider: None,
            latency_ms: None,
        };
    };
    timed("database", None, timeout, async {
        db.rpc("db_ping", Caller::Service).execute().await.map(drop)
    })
    .await
}

async fn provider(
    parts: Parts<'_>,
    name: &'static str,
    settings: Option<&ProviderSettings>,
    timeout: Duration,
) -> Check {
    let Some(settings) = settings else {
        return not_configured(Some(name));
    };
    if name != "anthropic" {
        // OpenAI's model list carries each model's `shutdown_date`: keep it for the lifecycle.
        let lifecycle = parts.assistant.lifecycle();
        let probe = lifecycle.refresh_openai(parts.http, settings, timeout);
        return timed(name, Some(name), timeout, async { probe.await.map(drop) }).await;
    }
    let request = parts
        .http
        .get(format!("{}/v1/models", settings.base_url))
        .header("x-api-key", settings.api_key.expose())
        .header("anthropic-version", "2023-06-01");
    timed(name, Some(name), timeout, ok_status(request)).await
}

async fn whatsapp(parts: Parts<'_>, timeout: Duration) -> Check {
    let settings = &parts.settings.whatsapp;
    let Some(token) = &settings.access_token else {
        return not_configured(None);
    };
    let request = parts
        .http
        .get(format!(
            "{}/{}/me",
            settings.graph_base_url, settings.graph_version
        ))
        .query(&[("fields", "id")])
        .bearer_auth(token.expose());
    timed("whatsapp", None, timeout, ok_status(request)).await
}

async fn ok_status(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(format!("answered {status}")),
    }
}
