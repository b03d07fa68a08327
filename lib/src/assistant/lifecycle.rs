//! When models shut down. Two sources:
//!
//! - [`KNOWN`]: the dates the providers publish (OpenAI's deprecations page, Anthropic's model
//!   deprecations page), in code; a model is matched exactly or by its longest listed name
//!   followed by `-` (`gpt-4o-mini-2024-07-18` is `gpt-4o-mini`, `claude-3-5-haiku-latest` is
//!   `claude-3-5-haiku`; `gpt-5` does not match `gpt-5.1`);
//! - OpenAI's `GET /v1/models`, whose models carry `shutdown_date` (`YYYY-MM-DD` or null):
//!   read by the health check and the retry-failed cron (never on a turn), kept for
//!   [`FETCHED_TTL`] in [`Lifecycle`] (one per process, in the assistant). A fetched date wins
//!   over a known one for the same id.
//!
//! A model is `retiring` within [`WARN_DAYS`] days of its shutdown date and `retired` from
//! that date on: a retired model is skipped when the candidates of a turn are chosen.
//!
//! The Graph API version (`GRAPH_API_VERSION`) has the same stages, from [`GRAPH_VERSIONS`]
//! (Meta's "Available Until" dates).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// How many days before its shutdown a model raises an alert.
pub const WARN_DAYS: i64 = 30;
/// How long a `GET /v1/models` answer is used before it is read again.
pub const FETCHED_TTL: Duration = Duration::from_secs(6 * 3600);

/// Published shutdown dates (model, date, named replacement), checked 2026-12-01:
/// OpenAI <https://developers.openai.com/api/docs/deprecations>, Anthropic
/// <https://platform.claude.com/docs/en/about-claude/model-deprecations>.
pub const KNOWN: &[(&str, &str, &str)] = &[
    // OpenAI
    ("gpt-4o", "2027-01-14", "gpt-6-luna"),
    ("gpt-4o-2024-05-13", "2026-10-23", "gpt-6-luna"),
    ("gpt-4o-mini", "2027-01-14", "gpt-6-luna"),
    ("gpt-4.1", "2027-01-14", "gpt-6-luna"),
    ("gpt-4.1-mini", "2027-01-14", "gpt-6-luna"),
    ("gpt-4.1-nano", "2026-10-23", "gpt-6-luna"),
    ("gpt-5", "2026-12-11", "gpt-6.1-sol"),
    ("gpt-5-mini", "2026-12-11", "gpt-6.1-terra"),
    ("gpt-5-nano", "2026-12-11", "gpt-6-luna"),
    ("gpt-4o-transcribe", "2027-02-26", "gpt-transcribe"),
    ("gpt-4o-mini-transcribe", "2027-02-26", "gpt-transcribe"),
    ("gpt-4o-transcribe-diarize", "2027-02-26", "gpt-transcribe"),
    ("whisper-1", "2027-02-26", "gpt-transcribe"),
    // Anthropic
    ("claude-3-5-haiku", "2026-02-19", "claude-haiku-4-5"),
    ("claude-3-7-sonnet", "2026-02-19", ""),
    ("claude-sonnet-4-0", "2026-06-15", "claude-sonnet-4-6"),
    (
        "claude-sonnet-4-20250514",
        "2026-06-15",
        "claude-sonnet-4-6",
    ),
    ("claude-opus-4-0", "2026-06-15", "claude-opus-4-8"),
    ("claude-opus-4-20250514", "2026-06-15", "claude-opus-4-8"),
];

/// Graph API versions, newest first, and the day each stops being served ("Available Until";
/// `None` while Meta says TBD), checked 2026-12-08: Meta's Graph API changelog
/// <https://developers.facebook.com/docs/graph-api/changelog> and "Introducing Graph API v27.0"
/// <https://developers.facebook.com/blog/post/2026/11/04/introducing-graph-api-v27-and-marketing-api-v27/>
/// (v27.0, November 4, 2026). A version is served at least two years after the next one is
/// released; a call to an expired one is answered by the oldest version still served.
pub const GRAPH_VERSIONS: &[(&str, Option<&str>)] = &[
    ("v27.0", None),
    ("v26.0", None),
    ("v25.0", Some("2028-07-29")),
    ("v24.0", Some("2028-02-18")),
    ("v23.0", Some("2027-10-08")),
    ("v22.0", Some("2027-05-20")),
    ("v21.0", Some("2027-01-21")),
    ("v20.0", Some("2026-09-24")),
    ("v19.0", Some("2026-05-21")),
    ("v18.0", Some("2026-01-26")),
];

/// The default `GRAPH_API_VERSION`: the newest stable version.
pub const DEFAULT_GRAPH_VERSION: &str = GRAPH_VERSIONS[0].0;

/// The day Graph API `version` stops being served, when Meta has set it.
pub fn graph_version_end(version: &str) -> Option<NaiveDate> {
    GRAPH_VERSIONS
        .iter()
        .find(|(v, _)| *v == version)
        .and_then(|(_, date)| (*date)?.parse().ok())
}

/// Where a model is in its life, on a given day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "shutdown_date")]
pub enum Stage {
    /// No shutdown within [`WARN_DAYS`] (or none announced).
    Active,
    /// Shuts down on this date, within [`WARN_DAYS`].
    Retiring(NaiveDate),
    /// Shut down on this date: requests fail.
    Retired(NaiveDate),
}

/// Stage of a model whose shutdown date is `shutdown` (if any), on `today`.
pub fn stage(shutdown: Option<NaiveDate>, today: NaiveDate) -> Stage {
    match shutdown {
        Some(date) if date <= today => Stage::Retired(date),
        Some(date) if (date - today).num_days() <= WARN_DAYS => Stage::Retiring(date),
        _ => Stage::Active,
    }
}

/// The published shutdown date of `model` ([`KNOWN`]), exact or by longest `name-` prefix.
pub fn known(model: &str) -> Option<NaiveDate> {
    KNOWN
        .iter()
        .filter(|(name, _, _)| {
            model == *name
                || model
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|(name, _, _)| name.len())
        .and_then(|(_, date, _)| date.parse().ok())
}

/// The replacement the provider names for `model`, when known.
pub fn replacement(model: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .filter(|(name, _, _)| {
            model == *name
                || model
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|(name, _, _)| name.len())
        .map(|(_, _, replacement)| *replacement)
        .filter(|r| !r.is_empty())
}

/// The shutdown dates of this process: the known ones and the last `GET /v1/models` read.
#[derive(Default)]
pub struct Lifecycle {
    fetched: RwLock<Option<(Instant, HashMap<String, NaiveDate>)>>,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ListedModel>,
}

#[derive(Deserialize)]
struct ListedModel {
    id: String,
    #[serde(default)]
    shutdown_date: Option<String>,
}

impl Lifecycle {
    /// The shutdown date of `model`: the fetched one, else the published one. No I/O.
    pub fn shutdown(&self, model: &str) -> Option<NaiveDate> {
        let fetched = self.fetched.read().ok().and_then(|guard| {
            guard
                .as_ref()
                .and_then(|(_, dates)| dates.get(model).copied())
        });
        fetched.or_else(|| known(model))
    }

    /// The stage of `model` on `today`.
    pub fn stage(&self, model: &str, today: NaiveDate) -> Stage {
        stage(self.shutdown(model), today)
    }

    /// Whether the last `GET /v1/models` read is missing or older than [`FETCHED_TTL`].
    pub fn stale(&self) -> bool {
        self.fetched.read().map_or(true, |guard| {
            guard
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= FETCHED_TTL)
        })
    }

    /// Keeps the shutdown dates of an OpenAI `GET /v1/models` answer (`body`); returns how
    /// many models carry one. A body that is not a model list changes nothing.
    pub fn remember_openai(&self, body: &[u8]) -> Option<usize> {
        let list: ModelList = serde_json::from_slice(body).ok()?;
        let dates: HashMap<String, NaiveDate> = list
            .data
            .into_iter()
            .filter_map(|m| Some((m.id, m.shutdown_date?.parse().ok()?)))
            .collect();
        let count = dates.len();
        if let Ok(mut guard) = self.fetched.write() {
            *guard = Some((Instant::now(), dates));
        }
        Some(count)
    }

    /// Reads OpenAI's `GET {base_url}/models` and keeps its shutdown dates; `Ok(None)` when
    /// it answered 2xx with something else than a model list (kept dates stay).
    pub async fn refresh_openai(
        &self,
        http: &reqwest::Client,
        settings: &crate::configuration::ProviderSettings,
        timeout: Duration,
    ) -> Result<Option<usize>, String> {
        let response = http
            .get(format!("{}/models", settings.base_url))
            .bearer_auth(settings.api_key.expose())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok(self.remember_openai(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn published_dates_match_snapshots_and_aliases_but_not_other_families() {
        assert_eq!(known("claude-3-5-haiku-latest"), Some(day("2026-02-19")));
        assert_eq!(known("claude-3-5-haiku-20241022"), Some(day("2026-02-19")));
        assert_eq!(known("gpt-4o-mini-2024-07-18"), Some(day("2027-01-14")));
        assert_eq!(known("gpt-4o-mini-transcribe"), Some(day("2027-02-26")));
        assert_eq!(known("gpt-4o-2024-05-13"), Some(day("2026-10-23")));
        assert_eq!(known("gpt-5-mini-2025-08-07"), Some(day("2026-12-11")));
        assert_eq!(known("gpt-5.1"), None, "gpt-5 is not gpt-5.1");
        assert_eq!(known("claude-sonnet-4-5"), None, "sonnet 4 is not 4.5");
        assert_eq!(known("gpt-6-luna"), None);
        assert_eq!(known("claude-haiku-5-5"), None);
        assert_eq!(
            known("gpt-transcribe"),
            None,
            "the default transcription model"
        );
        assert_eq!(
            replacement("gpt-4o-mini-transcribe"),
            Some("gpt-transcribe")
        );
        assert_eq!(
            replacement("claude-3-5-haiku-latest"),
            Some("claude-haiku-4-5")
        );
    }

    #[test]
    fn the_default_graph_version_is_the_newest_and_older_ones_expire() {
        assert_eq!(DEFAULT_GRAPH_VERSION, "v27.0");
        assert_eq!(graph_version_end("v27.0"), None, "TBD");
        assert_eq!(graph_version_end("v23.0"), Some(day("2027-10-08")));
        assert_eq!(
            stage(graph_version_end("v21.0"), day("2027-01-01")),
            Stage::Retiring(day("2027-01-21"))
        );
        assert_eq!(
            stage(graph_version_end("v20.0"), day("2026-12-08")),
            Stage::Retired(day("2026-09-24"))
        );
        assert_eq!(graph_version_end("v99.0"), None, "unknown");
    }

    #[test]
    fn a_model_is_retiring_within_30_days_and_retired_from_its_date() {
        let today = day("2026-12-01");
        assert_eq!(stage(None, today), Stage::Active);
        assert_eq!(stage(Some(day("2027-01-14")), today), Stage::Active);
        assert_eq!(
            stage(Some(day("2026-12-31")), today),
            Stage::Retiring(day("2026-12-31"))
        );
        assert_eq!(
            stage(Some(day("2026-12-01")), today),
            Stage::Retired(day("2026-12-01"))
        );
        let json = serde_json::to_value(Stage::Retiring(day("2026-12-31"))).expect("json");
        assert_eq!(json["status"], "retiring");
        assert_eq!(json["shutdown_date"], "2026-12-31");
    }

    #[test]
    fn fetched_dates_win_and_age() {
        let lifecycle = Lifecycle::default();
        assert!(lifecycle.stale());
        assert_eq!(
            lifecycle.stage("claude-3-5-haiku-latest", day("2026-12-01")),
            Stage::Retired(day("2026-02-19"))
        );
        let body = br#"{"object":"list","data":[
            {"id":"gpt-6-luna","object":"model","created":1,"owned_by":"openai","shutdown_date":"2026-12-20"},
            {"id":"gpt-6.1-sol","object":"model","created":1,"owned_by":"openai","shutdown_date":null},
            {"id":"gpt-4o","object":"model","created":1,"owned_by":"openai"}]}"#;
        assert_eq!(lifecycle.remember_openai(body), Some(1));
        assert!(!lifecycle.stale());
        assert_eq!(
            lifecycle.stage("gpt-6-luna", day("2026-12-01")),
            Stage::Retiring(day("2026-12-20"))
        );
        assert_eq!(
            lifecycle.shutdown("gpt-4o"),
            Some(day("2027-01-14")),
            "known"
        );
        assert_eq!(lifecycle.remember_openai(b"<html>"), None);
        assert_eq!(lifecycle.shutdown("gpt-6-luna"), Some(day("2026-12-20")));
    }
}
