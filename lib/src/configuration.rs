//! Process configuration, read once from environment variables (documented in `.env.example`).
//!
//! Optional settings fall back to safe defaults. A required variable that is missing does not
//! stop the process: it is kept as [`Missing`] and reported by the routes that need it, so that
//! `/api/health` still answers.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

/// A secret value: never printed by `Debug`, only read through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A required environment variable that is not set; names the variable. A setting given
/// under two names with different values is reported the same way, naming both
/// ([`CONFLICTS`]): neither value is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_missing(self.0))]
pub struct Missing(pub &'static str);

fn describe_missing(name: &str) -> String {
    if let Some((_, message)) = CONFLICTS.iter().find(|(names, _)| *names == name) {
        return message.to_string();
    }
    if name == "SUPABASE_JWKS_URL" {
        return "missing required environment variable SUPABASE_URL or SUPABASE_JWKS_URL (the \
                project's signing keys; SUPABASE_JWT_SECRET only for legacy HS256 tokens)"
            .into();
    }
    match ALIASES.iter().find(|(new, _)| *new == name) {
        Some((new, old)) => format!("missing required environment variable {new} (or {old})"),
        None => format!("missing required environment variable {name}"),
    }
}

/// The settings that have two names: `(new or conventional name, other name)`. Either works;
/// both set with different values is an error naming both, and neither value is used.
pub const ALIASES: [(&str, &str); 3] = [
    ("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"),
    ("SUPABASE_PUBLISHABLE_KEY", "SUPABASE_ANON_KEY"),
    ("STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRETS"),
];

/// The [`Missing`] of a conflict between two names of a setting, and its message.
const CONFLICTS: [(&str, &str); 3] = [
    (
        "SUPABASE_SECRET_KEY|SUPABASE_SERVICE_ROLE_KEY",
        "SUPABASE_SECRET_KEY and SUPABASE_SERVICE_ROLE_KEY are both set, to different values: set one",
    ),
    (
        "SUPABASE_PUBLISHABLE_KEY|SUPABASE_ANON_KEY",
        "SUPABASE_PUBLISHABLE_KEY and SUPABASE_ANON_KEY are both set, to different values: set one",
    ),
    (
        "STRIPE_WEBHOOK_SECRET|STRIPE_WEBHOOK_SECRETS",
        "STRIPE_WEBHOOK_SECRET and STRIPE_WEBHOOK_SECRETS are both set, to different values: set one",
    ),
];

/// A variable that is set but not used, and why (logged at startup, listed by `/api/health`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Ignored {
    pub variable: String,
    pub reason: String,
}

/// What kind of Supabase API key a value is, which decides how it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `sb_secret_…`: not a JWT; sent only as `apikey` (the gateway then acts as service_role).
    Secret,
    /// `sb_publishable_…`: not a JWT; sent as `apikey`, a user's token as the bearer.
    Publishable,
    /// A legacy `anon` / `service_role` JWT (also the local stack's): `apikey` and bearer.
    LegacyJwt,
}

impl KeyKind {
    pub fn of(key: &Secret) -> Self {
        let key = key.expose();
        if key.starts_with("sb_secret_") {
            Self::Secret
        } else if key.starts_with("sb_publishable_") {
            Self::Publishable
        } else {
            Self::LegacyJwt
        }
    }
}

/// Everything the routes read from the environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `APP_ENV`, else Vercel's `VERCEL_ENV`, else `development`.
    pub environment: String,
    /// Crate version, plus the short git commit on Vercel.
    pub version: String,
    /// `LOG_LEVEL`: error | warn | info | debug | trace.
    pub log_level: String,
    /// `MAX_BODY_BYTES`: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `SLOW_REQUEST_MS`: a request that takes longer logs `Slow request detected`.
    pub slow_request: Duration,
    pub database: Result<DatabaseSettings, Missing>,
    pub openai: Option<ProviderSettings>,
    pub anthropic: Option<ProviderSettings>,
    pub ai: AiSettings,
    /// Google Calendar for orgs that connected one; `None` without an OAuth client.
    pub google: Option<GoogleSettings>,
    pub whatsapp: WhatsAppSettings,
    pub stripe: StripeSettings,
    pub health: HealthSettings,
    pub processing: ProcessingSettings,
    /// Variables whose values were not valid numbers (their defaults were used); logged by
    /// `startup::init` once logging is up.
    pub invalid_variables: Vec<String>,
    /// Variables that are set but not used (two names of one setting that disagree, ...);
    /// logged by `startup::init` and listed by `/api/health`'s `configuration` check.
    pub ignored_variables: Vec<Ignored>,
    pub cron: CronSettings,
    pub admin: AdminSettings,
    /// `SENTRY_DSN`: errors and panics go to Sentry (scrubbed); unset, nothing is sent.
    pub sentry_dsn: Option<Secret>,
}

/// The cron routes (`/api/cron/*`).
#[derive(Clone, Debug)]
pub struct CronSettings {
    /// `CRON_SECRET`: the bearer token Vercel Cron sends; without it the routes answer 503.
    pub secret: Result<Secret, Missing>,
    /// `CRON_TIME_BUDGET_MS`: a run begins no new work after this long (default 30000: with a
    /// send begun just before, at most `GRAPH_TIMEOUT_MS` more, it stays under the functions'
    /// `maxDuration` of 60 s).
    pub time_budget: Duration,
    /// `CRON_BATCH_SIZE`: reminders or dead letter entries claimed per round trip (default 50).
    pub batch_size: usize,
    /// `CRON_CONCURRENCY`: items a run works on at once (default 10).
    pub concurrency: usize,
    /// `CRON_LEASE_SECONDS`: how long a claim holds a reminder or dead letter entry before
    /// another run may take it (default 120).
    pub lease: Duration,
    /// `CRON_RETRY_BASE_SECONDS`: the wait after a first failed attempt; doubles with each
    /// attempt, at most 6 h (default 60).
    pub retry_base: Duration,
    /// `OUTCOME_GRACE_SECONDS`: how long a send may stay `sending` before its outcome counts as
    /// unknown (default 300: longer than any live worker's worst case, a function's
    /// `maxDuration` of 60 s and the 120 s leases).
    pub outcome_grace: Duration,
    pub retention: RetentionSettings,
    pub monitor: MonitorSettings,
}

/// The thresholds of the monitor (`/api/cron/monitor`): a figure over its threshold in the
/// window opens an alert, back under resolves it. The AI cost budget is per org
/// (`assistant_settings.monthly_cost_budget_usd`, default $100).
#[derive(Clone, Debug)]
pub struct MonitorSettings {
    /// `MONITOR_WINDOW_MINUTES`: the sliding window of the figures (default 15).
    pub window: Duration,
    /// `ALERT_ERROR_RATE_PERCENT`: failed among processed + failed inbound messages (default 5).
    pub error_rate_percent: usize,
    /// `ALERT_WEBHOOK_LATENCY_MS`: p95 of the deliveries' acknowledgement latency (default 4000).
    pub webhook_latency_ms: usize,
    /// `ALERT_AI_LATENCY_MS`: p95 of the AI provider calls' latency (default 10000).
    pub ai_latency_ms: usize,
    /// `ALERT_TOOL_FAILURE_PERCENT`: tool executions in error (default 10).
    pub tool_failure_percent: usize,
    /// `ALERT_DB_LATENCY_MS`: the monitor's own `db_ping` round trip (default 200).
    pub db_latency_ms: usize,
    /// `MONITOR_MIN_SAMPLES`: the rates and the latency count only over at least this many
    /// rows in the window (default 20: one failure among three messages pages nobody).
    pub min_samples: usize,
}

/// How long the retention cron (`/api/cron/retention`) keeps each kind of row, in days;
/// `None` (the variable set to 0) keeps them forever. Messages are kept unless an org sets
/// `assistant_settings.message_retention_days`.
#[derive(Clone, Debug)]
pub struct RetentionSettings {
    /// `WEBHOOK_RETENTION_DAYS` (default 30).
    pub webhooks: Option<usize>,
    /// `AI_REQUEST_RETENTION_DAYS` (default 90): `ai_requests` rows, with their tool executions.
    pub ai_requests: Option<usize>,
    /// `TOOL_EXECUTION_RETENTION_DAYS` (default 90).
    pub tool_executions: Option<usize>,
    /// `RATE_LIMIT_RETENTION_DAYS` (default 1): `rate_limits` windows.
    pub rate_limits: Option<usize>,
    /// `DEAD_LETTER_RETENTION_DAYS` (default 30): resolved dead letter entries.
    pub dead_letters: Option<usize>,
    /// `ALERT_RETENTION_DAYS` (default 90): resolved alerts.
    pub alerts: Option<usize>,
    /// `RETENTION_BATCH_SIZE`: rows deleted per round trip (default 5000).
    pub batch_size: usize,
}

/// The admin API: how Supabase access tokens are verified, and which browsers may call it.
#[derive(Clone, Debug)]
pub struct AdminSettings {
    /// `SUPABASE_JWT_SECRET`: verifies HS256 access tokens (legacy Supabase keys, local stack).
    pub jwt_secret: Option<Secret>,
    /// `SUPABASE_JWKS_URL`, else `SUPABASE_URL/auth/v1/.well-known/jwks.json`: ES256 and RS256
    /// access tokens are verified with these keys, chosen by `kid`.
    pub jwks_url: Option<String>,
    /// `SUPABASE_JWT_ISSUER`, else `SUPABASE_URL/auth/v1`: the `iss` every token must carry.
    pub issuer: Result<String, Missing>,
    /// `JWKS_MIN_REFRESH_SECONDS`: an unknown `kid` refetches the keys at most this often.
    pub jwks_min_refresh: Duration,
    /// `ADMIN_ALLOWED_ORIGINS`: comma-separated browser origins allowed by CORS.
    pub allowed_origins: Vec<String>,
    /// `SUPABASE_URL` (no trailing `/`): where the admin console signs users in.
    pub supabase_url: Option<String>,
}

/// Background processing of inbound messages.
#[derive(Clone, Debug)]
pub struct ProcessingSettings {
    /// `WEBHOOK_MAX_BACKLOG`: messages queued in this process; more stay stored for the cron.
    pub max_backlog: usize,
    /// `WEBHOOK_CONCURRENCY`: messages processed at once in this process (its workers).
    pub concurrency: usize,
    /// `WEBHOOK_MAX_BATCH`: deliveries stored in one transaction (group commit; 1: each alone).
    pub max_batch: usize,
    /// `PROCESSING_LEASE_SECONDS`: how long a claim holds a turn before others may take it.
    pub lease: Duration,
    /// `COALESCE_MS`: how long a new message waits in the in-process queue before its turn
    /// begins, so that a burst of bubbles is answered as one turn (default 1000; 0 = at once).
    pub coalesce: Duration,
    /// `GRAPH_RETRY_BASE_MS`: first backoff of a throttled Graph send (doubles, 3 tries).
    pub retry_base: Duration,
    /// `MAX_ATTEMPTS`: attempts of one item (an inbound message's processing, a reminder's
    /// send, a dead letter entry's work) after which it is discarded with an alert and never
    /// claimed again (default 5, at least 1). Every claim counts, whatever ended it.
    pub max_attempts: u32,
}

/// How to reach PostgREST (hosted Supabase or a bare PostgREST).
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// `POSTGREST_URL`, else `SUPABASE_URL` + `/rest/v1`.
    pub rest_url: String,
    /// `SUPABASE_SECRET_KEY` (`sb_secret_…`), or the legacy `SUPABASE_SERVICE_ROLE_KEY` JWT.
    pub service_role_key: Secret,
    /// `SUPABASE_PUBLISHABLE_KEY` (`sb_publishable_…`), or the legacy `SUPABASE_ANON_KEY` JWT.
    pub anon_key: Option<Secret>,
    pub timeout: Duration,
}

/// An LLM provider's endpoint and key.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    pub base_url: String,
    pub api_key: Secret,
}

/// How the assistant uses the AI providers.
#[derive(Clone, Debug)]
pub struct AiSettings {
    /// `AI_REQUEST_TIMEOUT_MS`: one provider call (default 12000).
    pub request_timeout: Duration,
    /// `AI_TURN_DEADLINE_MS`: every call, retry and fallback of one message together (default
    /// 15000): a message a webhook worker starts at the end of its 40 s drain window still fits
    /// the function's 60 s with the rest of the pipeline.
    pub turn_deadline: Duration,
    /// `AI_MAX_RETRIES`: retries of one provider on 429, 5xx and 529 (default 2).
    pub max_retries: u32,
    /// `AI_RETRY_BASE_MS`: first backoff of a retry without `retry-after` (default 500, doubles).
    pub retry_base: Duration,
    /// `AI_MAX_TOOL_ROUNDS`: rounds of tool calls per message (default 4).
    pub max_tool_rounds: usize,
    /// `AI_HISTORY_MESSAGES`: recent messages read with the claim (default 20).
    pub history_messages: usize,
    /// `AI_HISTORY_TOKENS`: estimated tokens of history sent to the model (default 2000).
    pub history_tokens: usize,
    /// `AI_MAX_OUTPUT_TOKENS`: the longest answer asked for (default 600).
    pub max_output_tokens: u32,
    /// `AI_THINKING_TOKENS`: what a thinking model (Claude 5.5) may spend thinking, on top of
    /// the answer: its `max_tokens` is the sum (default 4000).
    pub thinking_tokens: u32,
    /// `AI_MODELS`: JSON prices and image support per model, over the defaults in code.
    pub models: Option<String>,
    /// `OPENAI_TRANSCRIBE_MODEL`: voice notes (default `gpt-transcribe`, priced by the minute).
    pub transcribe_model: String,
}

/// Google OAuth client and API endpoints for calendar connections.
#[derive(Clone, Debug)]
pub struct GoogleSettings {
    pub client_id: String,
    pub client_secret: Secret,
    /// `GOOGLE_OAUTH_TOKEN_URL`, default `https://oauth2.googleapis.com/token`.
    pub token_url: String,
    /// `GOOGLE_CALENDAR_BASE_URL`, default `https://www.googleapis.com/calendar/v3`.
    pub calendar_base_url: String,
}

/// The WhatsApp Cloud API (Meta Graph API) and its webhook.
#[derive(Clone, Debug)]
pub struct WhatsAppSettings {
    pub graph_base_url: String,
    pub graph_version: String,
    /// `WHATSAPP_ACCESS_TOKEN`; without it outbound messages are recorded as simulated.
    pub access_token: Option<Secret>,
    /// `GRAPH_TIMEOUT_MS`: how long one Graph API call may take (default 15 s).
    pub timeout: Duration,
    /// `WHATSAPP_APP_SECRET`: signs webhook deliveries (`X-Hub-Signature-256`).
    pub app_secret: Result<Secret, Missing>,
    /// `WHATSAPP_VERIFY_TOKEN`: answers Meta's subscription handshake.
    pub verify_token: Result<Secret, Missing>,
    /// `WHATSAPP_MEDIA_HOSTS`: comma-separated hosts a media URL returned by Graph may point
    /// at (over https); `.example.net` means any host under `example.net`. Default
    /// [`DEFAULT_MEDIA_HOSTS`]. The Graph base URL's own origin is always allowed besides.
    pub media_hosts: Vec<String>,
}

/// Where Meta serves WhatsApp media: `lookaside.fbsbx.com` (the URL the media endpoint
/// documents) and Meta's CDNs.
pub const DEFAULT_MEDIA_HOSTS: &str = "lookaside.fbsbx.com,.fbcdn.net,.whatsapp.net";

/// Stripe billing webhook and API.
#[derive(Clone, Debug)]
pub struct StripeSettings {
    /// `STRIPE_WEBHOOK_SECRET` or `STRIPE_WEBHOOK_SECRETS`: comma-separated endpoint secrets
    /// (several during rotation).
    pub webhook_secrets: Result<Vec<Secret>, Missing>,
    /// `STRIPE_SECRET_KEY`: when set, subscription events are refetched from the API.
    pub secret_key: Option<Secret>,
    /// `STRIPE_API_BASE_URL`, default `https://api.stripe.com`.
    pub api_base_url: String,
    /// `STRIPE_WEBHOOK_TOLERANCE_SECONDS`: maximum age of a signed timestamp (default 300).
    pub tolerance: Duration,
    /// `STRIPE_API_TIMEOUT_MS`: timeout of one Stripe API call (default 5000).
    pub api_timeout: Duration,
}

/// `/api/health` behaviour.
#[derive(Clone, Debug)]
pub struct HealthSettings {
    pub cache_ttl: Duration,
    pub check_timeout: Duration,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests). Empty values
    /// count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self::read(lookup).0
    }

    /// Every variable the settings are read from, with its default: the one statement of the
    /// defaults, which `.env.example` and `docs/configuration.md` repeat (a test keeps them
    /// equal). Read twice, with nothing set and with everything set, so that no variable is
    /// hidden behind another.
    pub fn variables() -> Vec<Variable> {
        let mut all: Vec<Variable> = Vec::new();
        for value in [None, Some("set")] {
            for read in Self::read(|_| value.map(String::from)).1 {
                match all.iter_mut().find(|v| v.name == read.name) {
                    Some(known) => known.default = known.default.take().or(read.default),
                    None => all.push(read),
                }
            }
        }
        all
    }

    fn read(lookup: impl Fn(&str) -> Option<String>) -> (Self, Vec<Variable>) {
        let env = Env {
            lookup,
            invalid: RefCell::default(),
            ignored: RefCell::default(),
            read: RefCell::default(),
        };
        let mut settings = Self {
            environment: match env.get("VERCEL_ENV") {
                Some(vercel) => env.get("APP_ENV").unwrap_or(vercel),
                None => env.text("APP_ENV", "development"),
            },
            version: version(env.get("VERCEL_GIT_COMMIT_SHA")),
            log_level: env.text("LOG_LEVEL", "info"),
            max_body_bytes: env.number("MAX_BODY_BYTES", 1024 * 1024),
            slow_request: Duration::from_millis(env.number("SLOW_REQUEST_MS", 1000) as u64),
            database: database_settings(&env),
            openai: provider(
                &env,
                "OPENAI_API_KEY",
                "OPENAI_BASE_URL",
                "https://api.openai.com/v1",
            ),
            anthropic: provider(
                &env,
                "ANTHROPIC_API_KEY",
                "ANTHROPIC_BASE_URL",
                "https://api.anthropic.com",
            ),
            ai: ai_settings(&env),
            google: google_settings(&env),
            whatsapp: WhatsAppSettings {
                graph_base_url: env.text("GRAPH_API_BASE_URL", "https://graph.facebook.com"),
                graph_version: env.text(
                    "GRAPH_API_VERSION",
                    crate::assistant::lifecycle::DEFAULT_GRAPH_VERSION,
                ),
                access_token: env.get("WHATSAPP_ACCESS_TOKEN").map(Secret::new),
                timeout: Duration::from_millis(env.number("GRAPH_TIMEOUT_MS", 15_000) as u64),
                app_secret: env.required("WHATSAPP_APP_SECRET").map(Secret::new),
                verify_token: env.required("WHATSAPP_VERIFY_TOKEN").map(Secret::new),
                media_hosts: env
                    .text("WHATSAPP_MEDIA_HOSTS", DEFAULT_MEDIA_HOSTS)
                    .split(',')
                    .map(|host| host.trim().to_ascii_lowercase())
                    .filter(|host| !host.is_empty())
                    .collect(),
            },
            stripe: StripeSettings {
                webhook_secrets: env.aliased(2).map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(Secret::new)
                        .collect()
                }),
                secret_key: env.get("STRIPE_SECRET_KEY").map(Secret::new),
                api_base_url: env
                    .text("STRIPE_API_BASE_URL", "https://api.stripe.com")
                    .trim_end_matches('/')
                    .to_string(),
                tolerance: Duration::from_secs(
                    env.number("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300) as u64
                ),
                api_timeout: Duration::from_millis(env.number("STRIPE_API_TIMEOUT_MS", 5000) as u64),
            },
            processing: ProcessingSettings {
                max_backlog: env.number("WEBHOOK_MAX_BACKLOG", 10_000).max(1),
                concurrency: env.number("WEBHOOK_CONCURRENCY", 8).max(1),
                max_batch: env.number("WEBHOOK_MAX_BATCH", 64).max(1),
                lease: Duration::from_secs(env.number("PROCESSING_LEASE_SECONDS", 120) as u64),
                coalesce: Duration::from_millis(env.number("COALESCE_MS", 1000) as u64),
                retry_base: Duration::from_millis(env.number("GRAPH_RETRY_BASE_MS", 1000) as u64),
                max_attempts: env.number("MAX_ATTEMPTS", 5).clamp(1, 1_000_000) as u32,
            },
            cron: CronSettings {
                secret: env.required("CRON_SECRET").map(Secret::new),
                time_budget: Duration::from_millis(env.number("CRON_TIME_BUDGET_MS", 30_000) as u64),
                batch_size: env.number("CRON_BATCH_SIZE", 50).max(1),
                concurrency: env.number("CRON_CONCURRENCY", 10).max(1),
                lease: Duration::from_secs(env.number("CRON_LEASE_SECONDS", 120).max(1) as u64),
                retry_base: Duration::from_secs(env.number("CRON_RETRY_BASE_SECONDS", 60) as u64),
                outcome_grace: Duration::from_secs(
                    env.number("OUTCOME_GRACE_SECONDS", 300).max(1) as u64
                ),
                retention: RetentionSettings {
                    webhooks: env.days("WEBHOOK_RETENTION_DAYS", 30),
                    ai_requests: env.days("AI_REQUEST_RETENTION_DAYS", 90),
                    tool_executions: env.days("TOOL_EXECUTION_RETENTION_DAYS", 90),
                    rate_limits: env.days("RATE_LIMIT_RETENTION_DAYS", 1),
                    dead_letters: env.days("DEAD_LETTER_RETENTION_DAYS", 30),
                    alerts: env.days("ALERT_RETENTION_DAYS", 90),
                    batch_size: env.number("RETENTION_BATCH_SIZE", 5000).clamp(1, 100_000),
                },
                monitor: MonitorSettings {
                    window: Duration::from_secs(
                        env.number("MONITOR_WINDOW_MINUTES", 15).clamp(1, 24 * 60) as u64 * 60,
                    ),
                    error_rate_percent: env.number("ALERT_ERROR_RATE_PERCENT", 5).min(100),
                    webhook_latency_ms: env.number("ALERT_WEBHOOK_LATENCY_MS", 4000),
                    ai_latency_ms: env.number("ALERT_AI_LATENCY_MS", 10_000),
                    tool_failure_percent: env.number("ALERT_TOOL_FAILURE_PERCENT", 10).min(100),
                    db_latency_ms: env.number("ALERT_DB_LATENCY_MS", 200),
                    min_samples: env.number("MONITOR_MIN_SAMPLES", 20).max(1),
                },
            },
            admin: admin_settings(&env),
            sentry_dsn: env.get("SENTRY_DSN").map(Secret::new),
            health: HealthSettings {
                cache_ttl: Duration::from_millis(env.number("HEALTH_CACHE_MS", 2000) as u64),
                check_timeout: Duration::from_millis(
                    env.number("HEALTH_CHECK_TIMEOUT_MS", 2000) as u64
                ),
            },
            invalid_variables: Vec::new(),
            ignored_variables: Vec::new(),
        };
        settings.invalid_variables = env.invalid.take();
        settings.ignored_variables = env.ignored.take();
        (settings, env.read.take())
    }
}

/// A variable the settings are read from, and its default (`None`: unset means off, missing
/// or derived from another variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub default: Option<String>,
}

/// Environment lookup that treats empty values as unset, notes invalid numbers and ignored
/// variables, and every variable read with its default.
struct Env<F> {
    lookup: F,
    invalid: RefCell<Vec<String>>,
    ignored: RefCell<Vec<Ignored>>,
    read: RefCell<Vec<Variable>>,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, name: &str) -> Option<String> {
        self.note(name, None);
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// Notes that `name` is read, with `default`.
    fn note(&self, name: &str, default: Option<String>) {
        let mut read = self.read.borrow_mut();
        match read.iter_mut().find(|v| v.name == name) {
            Some(known) => known.default = known.default.take().or(default),
            None => read.push(Variable {
                name: name.to_string(),
                default,
            }),
        }
    }

    /// A text setting, `default` when unset.
    fn text(&self, name: &str, default: &str) -> String {
        self.note(name, Some(default.to_string()));
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    fn required(&self, name: &'static str) -> Result<String, Missing> {
        self.get(name).ok_or(Missing(name))
    }

    /// The setting `ALIASES[index]`, under either name (the same value under both is fine).
    /// Two different values: neither is used, both are noted as ignored, and the error names
    /// both.
    fn aliased(&self, index: usize) -> Result<String, Missing> {
        let (new, old) = ALIASES[index];
        match (self.get(new), self.get(old)) {
            (Some(a), Some(b)) if a.trim() != b.trim() => {
                let mut ignored = self.ignored.borrow_mut();
                for (variable, other) in [(new, old), (old, new)] {
                    ignored.push(Ignored {
                        variable: variable.to_string(),
                        reason: format!("{other} is also set, to a different value"),
                    });
                }
                Err(Missing(CONFLICTS[index].0))
            }
            (Some(value), _) | (None, Some(value)) => Ok(value),
            (None, None) => Err(Missing(new)),
        }
    }

    /// A non-negative number; an unparsable value falls back to the default and is noted.
    /// A retention in days; 0 keeps forever (`None`).
    fn days(&self, name: &str, default: usize) -> Option<usize> {
        Some(self.number(name, default)).filter(|days| *days > 0)
    }

    fn number(&self, name: &str, default: usize) -> usize {
        self.note(name, Some(default.to_string()));
        match self.get(name).map(|v| v.trim().parse::<usize>()) {
            None => default,
            Some(Ok(value)) => value,
            Some(Err(_)) => {
                self.invalid.borrow_mut().push(name.to_string());
                default
            }
        }
    }
}

fn version(commit: Option<String>) -> String {
    let base = env!("CARGO_PKG_VERSION");
    match commit {
        Some(sha) => format!("{base}+{}", &sha[..sha.len().min(7)]),
        None => base.to_string(),
    }
}

fn database_settings(
    env: &Env<impl Fn(&str) -> Option<String>>,
) -> Result<DatabaseSettings, Missing> {
    let rest_url = match env.get("POSTGREST_URL") {
        Some(url) => url,
        None => format!(
            "{}/rest/v1",
            env.required("SUPABASE_URL")?.trim_end_matches('/')
        ),
    };
    Ok(DatabaseSettings {
        rest_url: rest_url.trim_end_matches('/').to_string(),
        service_role_key: Secret::new(env.aliased(0)?),
        anon_key: match env.aliased(1) {
            Ok(key) => Some(Secret::new(key)),
            Err(Missing("SUPABASE_PUBLISHABLE_KEY")) => None,
            Err(conflict) => return Err(conflict),
        },
        timeout: Duration::from_millis(env.number("DATABASE_TIMEOUT_MS", 5000) as u64),
    })
}

fn ai_settings(env: &Env<impl Fn(&str) -> Option<String>>) -> AiSettings {
    let millis = |name, default| Duration::from_millis(env.number(name, default) as u64);
    AiSettings {
        request_timeout: millis("AI_REQUEST_TIMEOUT_MS", 12_000),
        turn_deadline: millis("AI_TURN_DEADLINE_MS", 15_000),
        max_retries: env.number("AI_MAX_RETRIES", 2) as u32,
        retry_base: millis("AI_RETRY_BASE_MS", 500),
        max_tool_rounds: env.number("AI_MAX_TOOL_ROUNDS", 4),
        history_messages: env.number("AI_HISTORY_MESSAGES", 20),
        history_tokens: env.number("AI_HISTORY_TOKENS", 2000),
        max_output_tokens: env.number("AI_MAX_OUTPUT_TOKENS", 600) as u32,
        thinking_tokens: env.number("AI_THINKING_TOKENS", 4000) as u32,
        models: env.get("AI_MODELS"),
        transcribe_model: env.text("OPENAI_TRANSCRIBE_MODEL", "gpt-transcribe"),
    }
}

fn google_settings(env: &Env<impl Fn(&str) -> Option<String>>) -> Option<GoogleSettings> {
    Some(GoogleSettings {
        client_id: env.get("GOOGLE_CLIENT_ID")?,
        client_secret: Secret::new(env.get("GOOGLE_CLIENT_SECRET")?),
        token_url: env.text(
            "GOOGLE_OAUTH_TOKEN_URL",
            "https://oauth2.googleapis.com/token",
        ),
        calendar_base_url: env
            .text(
                "GOOGLE_CALENDAR_BASE_URL",
                "https://www.googleapis.com/calendar/v3",
            )
            .trim_end_matches('/')
            .to_string(),
    })
}

fn admin_settings(env: &Env<impl Fn(&str) -> Option<String>>) -> AdminSettings {
    let supabase_url = env
        .get("SUPABASE_URL")
        .map(|url| url.trim_end_matches('/').to_string());
    AdminSettings {
        jwt_secret: env.get("SUPABASE_JWT_SECRET").map(Secret::new),
        jwks_url: env.get("SUPABASE_JWKS_URL").or_else(|| {
            supabase_url
                .as_ref()
                .map(|url| format!("{url}/auth/v1/.well-known/jwks.json"))
        }),
        issuer: env
            .get("SUPABASE_JWT_ISSUER")
            .or_else(|| supabase_url.as_ref().map(|url| format!("{url}/auth/v1")))
            .ok_or(Missing("SUPABASE_JWT_ISSUER")),
        jwks_min_refresh: Duration::from_secs(env.number("JWKS_MIN_REFRESH_SECONDS", 30) as u64),
        allowed_origins: env
            .get("ADMIN_ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_string())
            .filter(|origin| !origin.is_empty())
            .collect(),
        supabase_url,
    }
}

fn provider(
    env: &Env<impl Fn(&str) -> Option<String>>,
    key: &str,
    url: &str,
    default_url: &str,
) -> Option<ProviderSettings> {
    Some(ProviderSettings {
        api_key: Secret::new(env.get(key)?),
        base_url: env.text(url, default_url).trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_numbers_fall_back_to_defaults_and_are_noted() {
        let settings = Settings::from_lookup(|name| match name {
            "MAX_BODY_BYTES" => Some("lots".into()),
            "WEBHOOK_CONCURRENCY" => Some("4".into()),
            _ => None,
        });
        assert_eq!(settings.max_body_bytes, 1024 * 1024);
        assert_eq!(settings.processing.concurrency, 4);
        assert_eq!(
            settings.invalid_variables,
            vec!["MAX_BODY_BYTES".to_string()]
        );
        assert_eq!(settings.database.err(), Some(Missing("SUPABASE_URL")));
    }

    /// Set by the platform (Vercel), never by a deployment: not listed.
    const PLATFORM: [&str; 2] = ["VERCEL_ENV", "VERCEL_GIT_COMMIT_SHA"];
    /// Read outside this module (`host::local`: the dev server's port), listed all the same.
    const ELSEWHERE: [&str; 1] = ["PORT"];

    /// The names in a docs table row's first cell outside parentheses (the other names of a
    /// setting are inside), and its default cell.
    fn rows(docs: &str) -> Vec<(Vec<String>, Vec<String>, String)> {
        let ticked = |text: &str| -> Vec<String> {
            text.split('`')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect()
        };
        docs.lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                let first = cells[0].trim_start_matches("| ");
                let outside: String = first
                    .split('(')
                    .map(|p| p.split(')').next_back().unwrap_or(""))
                    .collect();
                (ticked(&outside), ticked(first), cells[1].to_string())
            })
            .collect()
    }

    #[test]
    fn every_variable_read_is_in_env_example_and_the_docs_with_its_default() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let read = |file: &str| std::fs::read_to_string(format!("{root}/{file}")).expect(file);
        let (example, docs) = (read(".env.example"), read("docs/configuration.md"));
        let rows = rows(&docs);
        let variables = Settings::variables();
        let mut errors = Vec::new();
        for Variable { name, default } in &variables {
            if PLATFORM.contains(&name.as_str()) {
                continue;
            }
            let prefix = format!("{name}=");
            match (example.lines().find(|l| l.starts_with(&prefix)), default) {
                (None, _) => errors.push(format!(".env.example does not list {name}")),
                (Some(line), Some(default)) if line != format!("{prefix}{default}") => {
                    errors.push(format!(".env.example has {line}; the default is {default}"))
                }
                _ => {}
            }
            let Some((names, all, cell)) = rows.iter().find(|(_, all, _)| all.contains(name))
            else {
                errors.push(format!("docs/configuration.md does not list {name}"));
                continue;
            };
            // `A`, `B` | `1`, `2`: each name's own default; one name: the whole cell.
            let defaults: Vec<&str> = cell.split(", ").collect();
            let position = names.iter().position(|n| n == name);
            let own = match position {
                Some(i) if names.len() > 1 && defaults.len() == names.len() => defaults[i],
                _ => cell.as_str(),
            };
            if let Some(default) = default {
                if !own.contains(&format!("`{default}`")) {
                    errors.push(format!(
                        "docs/configuration.md gives {name} the default {own:?}; it is `{default}` ({all:?})"
                    ));
                }
            }
        }
        let known =
            |name: &str| ELSEWHERE.contains(&name) || variables.iter().any(|v| v.name == name);
        for line in example
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
        {
            let name = &line[..line.find('=').unwrap_or_default()];
            if !known(name) {
                errors.push(format!(".env.example lists {name}, which is not read"));
            }
        }
        for (_, all, _) in &rows {
            for name in all
                .iter()
                .filter(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            {
                if !known(name) && !PLATFORM.contains(&name.as_str()) {
                    errors.push(format!(
                        "docs/configuration.md lists {name}, which is not read"
                    ));
                }
            }
        }
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn every_number_read_has_its_default_noted() {
        let variables = Settings::variables();
        let max_body = variables.iter().find(|v| v.name == "MAX_BODY_BYTES");
        assert_eq!(max_body.and_then(|v| v.default.as_deref()), Some("1048576"));
        let key = variables.iter().find(|v| v.name == "OPENAI_BASE_URL");
        assert_eq!(
            key.and_then(|v| v.default.as_deref()),
            Some("https://api.openai.com/v1"),
            "read only once OPENAI_API_KEY is set: found by the second reading"
        );
    }

    #[test]
    fn max_attempts_defaults_to_five_and_is_at_least_one() {
        let default = Settings::from_lookup(|_| None);
        assert_eq!(default.processing.max_attempts, 5);
        let zero = Settings::from_lookup(|name| (name == "MAX_ATTEMPTS").then(|| "0".into()));
        assert_eq!(zero.processing.max_attempts, 1);
        let three = Settings::from_lookup(|name| (name == "MAX_ATTEMPTS").then(|| "3".into()));
        assert_eq!(three.processing.max_attempts, 3);
    }
}
