//! Structured JSON logs with a redaction layer.
//!
//! Context lives in spans: the host opens one per request (`request_id`, `route`), and every
//! event inside prints the fields of its spans beside its own, as top-level keys
//! ([`redact_line`] flattens them; an event's own field wins over a span's, an inner span's
//! over an outer one's). Spans are kept whatever `LOG_LEVEL` is, so a warning keeps its context
//! when info lines are filtered out.
//!
//! Every line passes through [`redact_line`] before it is written: values of sensitive fields
//! (message bodies, phone numbers, tokens, keys, emails), event and span fields alike, are
//! replaced, and phone numbers, emails, bearer tokens, JWTs and API keys are masked wherever
//! else they appear. Security events are logged by one macro, [`security_event!`].
//!
//! With `SENTRY_DSN` set, [`ErrorTracking`] also sends `error!` events (with their spans'
//! fields) and panics to Sentry, each scrubbed by the same redaction ([`scrub_event`]) before
//! it leaves the process.

use std::io::{self, Write};
use std::sync::{Arc, LazyLock, Once};
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};
use tracing::Subscriber;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::fmt::{FormattedFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

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
    "user_id",
    "username",
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

/// Redacts one log line: JSON is walked field by field (its spans' fields first flattened
/// into it, see [`flatten_spans`]); anything else is pattern-masked.
pub fn redact_line(line: &str) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(mut value) => {
            flatten_spans(&mut value);
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

/// Moves the fields of a line's `spans` (root to leaf, as the JSON formatter lists them) to the
/// top level beside the event's own: an event field wins over a span field of the same name,
/// an inner span's over an outer one's. Span names are dropped.
fn flatten_spans(line: &mut Value) {
    let Some(object) = line.as_object_mut() else {
        return;
    };
    let Some(Value::Array(spans)) = object.remove("spans") else {
        return;
    };
    let mut inherited = Map::new();
    for span in spans {
        if let Value::Object(fields) = span {
            inherited.extend(fields.into_iter().filter(|(k, _)| k != "name"));
        }
    }
    for (key, value) in inherited {
        object.entry(key).or_insert(value);
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

/// The security events operators query (`security: true`, then `action`, then
/// `security_event`); logged by [`security_event!`], never with the payload or credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityEvent {
    /// Meta's subscription handshake with a wrong verify token.
    WebhookHandshakeRefused,
    /// A WhatsApp delivery whose `X-Hub-Signature-256` does not verify.
    WebhookSignatureRejected,
    /// A Stripe event whose `Stripe-Signature` does not verify.
    StripeSignatureRejected,
    /// A cron call without the right bearer secret.
    CronUnauthorized,
    /// An admin request whose access token is refused.
    AdminTokenRejected,
    /// A contact past `rate_limit_per_minute`.
    ContactRateLimited,
}

impl SecurityEvent {
    /// The `security_event` field.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebhookHandshakeRefused => "webhook_handshake_refused",
            Self::WebhookSignatureRejected => "webhook_signature_rejected",
            Self::StripeSignatureRejected => "stripe_signature_rejected",
            Self::CronUnauthorized => "cron_unauthorized",
            Self::AdminTokenRejected => "admin_token_rejected",
            Self::ContactRateLimited => "contact_rate_limited",
        }
    }

    /// The `action` field: what kind of refusal it is.
    pub fn action(self) -> &'static str {
        match self {
            Self::WebhookHandshakeRefused | Self::CronUnauthorized | Self::AdminTokenRejected => {
                "unauthorized"
            }
            Self::WebhookSignatureRejected | Self::StripeSignatureRejected => "invalid_signature",
            Self::ContactRateLimited => "rate_limit",
        }
    }

    /// The line's message.
    pub fn message(self) -> &'static str {
        match self {
            Self::WebhookHandshakeRefused => "refused a webhook handshake",
            Self::WebhookSignatureRejected => "rejected a webhook delivery",
            Self::StripeSignatureRejected => "webhook signature rejected",
            Self::CronUnauthorized => "refused a cron call without the right bearer secret",
            Self::AdminTokenRejected => "rejected an admin request",
            Self::ContactRateLimited => "contact rate limited",
        }
    }
}

/// Logs a [`SecurityEvent`] as a warning with `security = true`, its `action`,
/// `security_event` and message, plus the fields given after it (`tracing` field syntax);
/// the current spans add the request's context.
///
/// ```text
/// security_event!(SecurityEvent::AdminTokenRejected, reason = %error);
/// ```
#[macro_export]
macro_rules! security_event {
    ($kind:expr $(, $($field:tt)+)?) => {{
        let kind: $crate::telemetry::SecurityEvent = $kind;
        ::tracing::warn!(
            security = true,
            action = kind.action(),
            security_event = kind.name(),
            $($($field)+,)?
            "{}",
            kind.message()
        )
    }};
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

/// A JSON subscriber that writes redacted lines to `writer`: events at `level` and above, with
/// their spans' fields (spans at every level are kept, so that a warning logged when `level`
/// is `warn` still carries its request). Its Sentry layer turns `error!` events into Sentry
/// events when a Sentry client is bound (see [`ErrorTracking`]) and does nothing otherwise;
/// other levels stay in the log only (no breadcrumbs: a thread's breadcrumbs would mix other
/// tenants' requests into an event).
pub fn subscriber<W>(level: &str, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let level: tracing::Level = level.parse().unwrap_or(tracing::Level::INFO);
    let filter = tracing_subscriber::filter::filter_fn(move |metadata| {
        metadata.is_span() || *metadata.level() <= level
    });
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_writer(Redacting(writer));
    // The layer's own span tracking stays off (`span_filter`): sentry 0.46 corrupts a thread's
    // hub when one span is entered on two threads at once (getsentry/sentry-rust#946), as the
    // request span is by a handler and its background work.
    let sentry = sentry::integrations::tracing::layer()
        .span_filter(|_| false)
        .event_mapper(sentry_event);
    tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(sentry)
}

/// An `error!` event as a Sentry event, with its spans' fields beside its own in the event's
/// "Rust Tracing Fields" context (the same precedence as [`flatten_spans`]); other levels are
/// not sent.
fn sentry_event<S>(
    event: &tracing::Event<'_>,
    ctx: Context<'_, S>,
) -> sentry::integrations::tracing::EventMapping
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use sentry::integrations::tracing::{event_from_event, EventMapping};
    use sentry::protocol::Context as SentryContext;

    if *event.metadata().level() != tracing::Level::ERROR {
        return EventMapping::Ignore;
    }
    let mut sentry_event = event_from_event(event, None::<&Context<'_, S>>);
    let mut inherited = Map::new();
    for span in ctx
        .event_scope(event)
        .into_iter()
        .flat_map(|s| s.from_root())
    {
        let extensions = span.extensions();
        let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
            continue;
        };
        if let Ok(Value::Object(fields)) = serde_json::from_str(&fields.fields) {
            inherited.extend(fields);
        }
    }
    if !inherited.is_empty() {
        let context = sentry_event
            .contexts
            .entry("Rust Tracing Fields".into())
            .or_insert_with(|| SentryContext::Other(Default::default()));
        if let SentryContext::Other(fields) = context {
            for (key, value) in inherited {
                fields.entry(key).or_insert(value);
            }
        }
    }
    EventMapping::Event(sentry_event)
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

    /// What a subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The JSON lines `emit` logs through [`subscriber`] at `level`.
    fn lines_at(level: &str, emit: impl FnOnce()) -> Vec<Value> {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing::subscriber::with_default(subscriber(level, move || writer.clone()), emit);
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    #[test]
    fn a_warning_keeps_its_info_spans_fields_when_info_lines_are_filtered_out() {
        let lines = lines_at("warn", || {
            let span = tracing::info_span!("request", request_id = "req-1", route = "/api/x");
            let _entered = span.enter();
            tracing::info!("filtered out");
            tracing::warn!("kept");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["message"], "kept");
        assert_eq!(lines[0]["request_id"], "req-1");
        assert_eq!(lines[0]["route"], "/api/x");
    }

    #[test]
    fn a_security_event_is_a_warning_with_its_kind_action_and_fields() {
        let lines = lines_at("info", || {
            crate::security_event!(SecurityEvent::StripeSignatureRejected, reason = "stale");
            crate::security_event!(SecurityEvent::ContactRateLimited);
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["security"], true);
        assert_eq!(line["action"], "invalid_signature");
        assert_eq!(line["security_event"], "stripe_signature_rejected");
        assert_eq!(line["reason"], "stale");
        assert_eq!(line["message"], "webhook signature rejected");
        assert_eq!(lines[1]["action"], "rate_limit");
        assert_eq!(lines[1]["security_event"], "contact_rate_limited");
    }

    #[test]
    fn without_a_dsn_or_with_a_bad_one_nothing_is_configured() {
        assert!(!ErrorTracking::new(None, "test", "0").is_configured());
        let bad = Secret::new("not a dsn");
        assert!(!ErrorTracking::new(Some(&bad), "test", "0").is_configured());
    }
}
