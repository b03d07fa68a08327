//! Structured JSON logs with a redaction layer.
//!
//! Every line passes through [`redact_line`] before it is written: values of sensitive fields
//! (message bodies, phone numbers, tokens, keys, emails) are replaced, and phone numbers,
//! emails, bearer tokens, JWTs and API keys are masked wherever else they appear.
//!
//! With `SENTRY_DSN` set, [`ErrorTracking`] also sends `error!` events and panics to Sentry,
//! each scrubbed by the same redaction ([`scrub_event`]) before it leaves the process.

use std::io::{self, Write};
use std::sync::{Arc, LazyLock, Once};
use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::configuration::Secret;

const REDACTED: &str = "[redacted]";

/// Fields whose values are never logged, whatever they contain.
const SENSITIVE_FIELDS: &[&str] = &[
    "body",
    "text",
    "content",
    "caption",
    "payload",
    "phone",
    "phone_number",
    "wa_id",
    "from",
    "to",
    "recipient",
    "email",
    "token",
    "access_token",
    "authorization",
    "apikey",
    "api_key",
    "secret",
    "password",
    "signature",
    "cookie",
];

/// Fields the pattern pass leaves alone (ids and timestamps that look like digit runs).
const TRUSTED_FIELDS: &[&str] = &["timestamp", "level", "target", "request_id", "latency_ms"];

const UUID_OR_PHONE: &str = concat!(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    r"|\+?[0-9][0-9 ().-]{5,18}[0-9]"
);

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (
            r"(?:Bearer|bearer|BEARER)[ \t]+[A-Za-z0-9._~+/=-]+",
            "Bearer [redacted]",
        ),
        (
            r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
            REDACTED,
        ),
        (
            r"(?:sk|rk|pk)[-_][A-Za-z0-9_-]{8,}|whsec_[A-Za-z0-9]+|EAA[A-Za-z0-9]{20,}",
            REDACTED,
        ),
        (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", REDACTED),
        // UUIDs are matched first so that their digit groups are not taken for a phone.
        (UUID_OR_PHONE, "[phone]"),
    ]
    .into_iter()
    .filter_map(|(pattern, replacement)| Regex::new(pattern).ok().map(|re| (re, replacement)))
    .collect()
});

/// Masks secrets and personal data in a string.
pub fn redact_text(text: &str) -> String {
    PATTERNS
        .iter()
        .fold(text.to_string(), |acc, (re, replacement)| {
            re.replace_all(&acc, |caps: &regex::Captures| mask(&caps[0], replacement))
                .into_owned()
        })
}

/// A digit run is a phone number when it holds 7 to 15 digits (E.164) and is neither a date
/// nor a UUID.
fn mask(found: &str, replacement: &str) -> String {
    if replacement != "[phone]" {
        return replacement.to_string();
    }
    let digits = found.chars().filter(char::is_ascii_digit).count();
    let b = found.as_bytes();
    let is_date = b.len() >= 10 && b[4] == b'-' && b[7] == b'-';
    let is_uuid = b.len() == 36 && found.matches('-').count() == 4;
    if (7..=15).contains(&digits) && !is_date && !is_uuid {
        replacement.to_string()
    } else {
        found.to_string()
    }
}

/// Redacts one log line: JSON is walked field by field; anything else is pattern-masked.
pub fn redact_line(line: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(mut value) => {
            redact_value(&mut value, None);
            let mut out = value.to_string();
            if line.ends_with('\n') {
                out.push('\n');
            }
            out
        }
        Err(_) => redact_text(line),
    }
}

fn redact_value(value: &mut Value, key: Option<&str>) {
    redact_value_trusting(value, key, TRUSTED_FIELDS)
}

fn redact_value_trusting(value: &mut Value, key: Option<&str>, trusted: &[&str]) {
    let key = key.map(str::to_ascii_lowercase);
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_)
            if key
                .as_deref()
                .is_some_and(|k| SENSITIVE_FIELDS.contains(&k)) =>
        {
            *value = Value::String(REDACTED.into())
        }
        Value::String(s) if !key.as_deref().is_some_and(|k| trusted.contains(&k)) => {
            *s = redact_text(s)
        }
        Value::Object(map) => map
            .iter_mut()
            .for_each(|(k, v)| redact_value_trusting(v, Some(k), trusted)),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| redact_value_trusting(v, key.as_deref(), trusted)),
        _ => {}
    }
}

/// Wraps a writer factory so that every line is redacted before it is written.
#[derive(Clone)]
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

/// A writer that redacts each write (the JSON formatter writes one whole line at a time).
pub struct RedactingWriter<W>(W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        self.0.write_all(redact_line(&line).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A JSON subscriber at `level` that writes redacted lines to `writer`. Its Sentry layer turns
/// `error!` events into Sentry events when a Sentry client is bound (see [`ErrorTracking`]) and
/// does nothing otherwise; other levels stay in the log only (no breadcrumbs: a thread's
/// breadcrumbs would mix other tenants' requests into an event).
pub fn subscriber<W>(level: &str, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let level = level.parse().unwrap_or(tracing::Level::INFO);
    let sentry =
        sentry::integrations::tracing::layer().event_filter(|metadata| match *metadata.level() {
            tracing::Level::ERROR => sentry::integrations::tracing::EventFilter::Event,
            _ => sentry::integrations::tracing::EventFilter::Ignore,
        });
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_max_level(level)
        .with_writer(Redacting(writer))
        .finish()
        .with(sentry)
}

/// Fields of a Sentry event that hold ids and times, never personal data: the pattern pass
/// would take their digit runs for phone numbers and break the event.
const SENTRY_TRUSTED_FIELDS: &[&str] = &[
    "event_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "timestamp",
    "start_timestamp",
    "level",
    "platform",
    "version",
    "thread_id",
    "line",
];

/// Scrubs a Sentry event with the log redaction: every field of the event (message,
/// exceptions, tags, extra, contexts, breadcrumbs) is walked as the JSON it is sent as;
/// values of sensitive fields are replaced, secrets and personal data masked elsewhere. The
/// request and user, which could hold personal data, are dropped. `None` (the event is not
/// sent) if the scrubbed event cannot be read back.
pub fn scrub_event(
    mut event: sentry::protocol::Event<'static>,
) -> Option<sentry::protocol::Event<'static>> {
    event.request = None;
    event.user = None;
    event.server_name = None;
    let mut value = serde_json::to_value(&event).ok()?;
    redact_value_trusting(&mut value, None, SENTRY_TRUSTED_FIELDS);
    serde_json::from_value(value).ok()
}

/// Error tracking: a Sentry client when `SENTRY_DSN` is set, nothing otherwise. Built once per
/// process in [`crate::startup::AppState`].
#[derive(Clone, Default)]
pub struct ErrorTracking(Option<Arc<sentry::Client>>);

impl ErrorTracking {
    /// Without a DSN (or with one Sentry cannot parse, which is logged): nothing is sent.
    /// With one: a client scrubbing every event ([`scrub_event`]), no default PII, bound to
    /// the current hub: the process's main hub when called on the main thread (every thread
    /// inherits it), the calling thread's own otherwise (a test's app). Installs the panic
    /// hook that reports panics, those that `host::handle` catches included.
    pub fn new(dsn: Option<&Secret>, environment: &str, release: &str) -> Self {
        let Some(dsn) = dsn else {
            return Self(None);
        };
        let dsn = match dsn.expose().parse::<sentry::types::Dsn>() {
            Ok(dsn) => dsn,
            Err(_) => {
                tracing::warn!("SENTRY_DSN is not a valid DSN: errors are not tracked");
                return Self(None);
            }
        };
        let options = sentry::ClientOptions {
            dsn: Some(dsn),
            environment: Some(environment.to_string().into()),
            release: Some(format!("whatsapp-assistant@{release}").into()),
            send_default_pii: false,
            max_breadcrumbs: 0,
            attach_stacktrace: false,
            before_send: Some(Arc::new(scrub_event)),
            shutdown_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        sentry::Hub::current().bind_client(Some(client.clone()));
        install_panic_hook();
        Self(Some(client))
    }

    /// Whether events go to Sentry.
    pub fn is_configured(&self) -> bool {
        self.0.is_some()
    }

    /// Waits up to `timeout` for the queued events to be sent (on a blocking thread: the
    /// transport's own thread sends them). A no-op without Sentry.
    pub async fn flush(&self, timeout: Duration) {
        if let Some(client) = self.0.clone() {
            let _ = tokio::task::spawn_blocking(move || client.flush(Some(timeout))).await;
        }
    }
}

/// Reports panics to the hub of the panicking thread (when it has a client), then runs the
/// previous hook. Sentry's own panic integration would bring a backtrace symbolizer into
/// every route binary; a stripped binary has no symbols to show anyway.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            sentry::Hub::with_active(|hub| {
                hub.capture_event(panic_event(info));
            });
            previous(info);
        }));
    });
}

fn panic_event(info: &std::panic::PanicHookInfo<'_>) -> sentry::protocol::Event<'static> {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".into());
    let location = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    sentry::protocol::Event {
        level: sentry::Level::Fatal,
        exception: vec![sentry::protocol::Exception {
            ty: "panic".into(),
            value: Some(format!("{message}{location}")),
            mechanism: Some(sentry::protocol::Mechanism {
                ty: "panic".into(),
                handled: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }]
        .into(),
        ..Default::default()
    }
}

/// Installs the process-wide subscriber on stdout (once; later calls are no-ops).
pub fn init(level: &str) {
    let _ = tracing::subscriber::set_global_default(subscriber(level, io::stdout));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sentry::protocol::{Breadcrumb, Context, Event, Exception};

    use super::*;

    const PHONE: &str = "+15550001111";
    const TOKEN: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    const BODY: &str = "remind me to pay the rent";

    fn event() -> Event<'static> {
        let mut fields = BTreeMap::new();
        fields.insert("body".to_string(), Value::from(BODY));
        fields.insert("wa_id".to_string(), Value::from("15550001111"));
        fields.insert("detail".to_string(), Value::from(format!("call {PHONE}")));
        let mut event = Event {
            message: Some(format!("send to {PHONE} failed with {TOKEN}")),
            exception: vec![Exception {
                ty: "panic".into(),
                value: Some(format!("Bearer {TOKEN} for someone@example.com")),
                ..Default::default()
            }]
            .into(),
            breadcrumbs: vec![Breadcrumb {
                message: Some(format!("inbound from {PHONE}")),
                data: fields.clone(),
                ..Default::default()
            }]
            .into(),
            extra: fields.clone(),
            user: Some(sentry::User {
                email: Some("someone@example.com".into()),
                ..Default::default()
            }),
            server_name: Some("host-1".into()),
            ..Default::default()
        };
        event.tags.insert("recipient".into(), "15550001111".into());
        event
            .contexts
            .insert("Rust Tracing Fields".into(), Context::Other(fields));
        event
    }

    #[test]
    fn no_message_text_phone_number_token_or_email_survives_the_scrub() {
        let original = event();
        let id = original.event_id;
        let scrubbed = scrub_event(original).expect("the event is still sent");
        let json = serde_json::to_string(&scrubbed).unwrap();
        for secret in [
            BODY,
            PHONE,
            "15550001111",
            TOKEN,
            "someone@example.com",
            "host-1",
        ] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        assert_eq!(scrubbed.event_id, id, "ids are kept");
        assert_eq!(
            scrubbed.message.as_deref(),
            Some("send to [phone] failed with [redacted]")
        );
        assert_eq!(scrubbed.extra["body"], "[redacted]");
        assert_eq!(scrubbed.extra["detail"], "call [phone]");
        assert_eq!(scrubbed.tags["recipient"], "[redacted]");
        assert!(scrubbed.user.is_none());
    }

    #[test]
    fn ids_and_times_are_not_taken_for_phone_numbers() {
        // An event id whose hex holds a long digit run, and a trace context.
        let mut event = Event {
            event_id: "12345678-9012-4345-8789-012345678901".parse().unwrap(),
            message: Some("plain".into()),
            ..Default::default()
        };
        event.contexts.insert(
            "trace".into(),
            Context::Trace(Box::new(sentry::protocol::TraceContext {
                trace_id: "12345678901234567890123456789012".parse().unwrap(),
                span_id: "1234567890123456".parse().unwrap(),
                ..Default::default()
            })),
        );
        let scrubbed = scrub_event(event.clone()).expect("the event is still sent");
        assert_eq!(scrubbed.event_id, event.event_id);
        assert_eq!(
            serde_json::to_value(&scrubbed.contexts).unwrap(),
            serde_json::to_value(&event.contexts).unwrap()
        );
    }

    #[test]
    fn without_a_dsn_or_with_a_bad_one_nothing_is_configured() {
        assert!(!ErrorTracking::new(None, "test", "0").is_configured());
        let bad = Secret::new("not a dsn");
        assert!(!ErrorTracking::new(Some(&bad), "test", "0").is_configured());
    }
}
