//! Structured JSON logs with a redaction layer.
//!
//! Every line passes through [`redact_line`] before it is written: values of sensitive fields
//! (message bodies, phone numbers, tokens, keys, emails) are replaced, and phone numbers,
//! emails, bearer tokens, JWTs and API keys are masked wherever else they appear.

use std::io::{self, Write};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;

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
    let key = key.map(str::to_ascii_lowercase);
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_)
            if key
                .as_deref()
                .is_some_and(|k| SENSITIVE_FIELDS.contains(&k)) =>
        {
            *value = Value::String(REDACTED.into())
        }
        Value::String(s) if !key.as_deref().is_some_and(|k| TRUSTED_FIELDS.contains(&k)) => {
            *s = redact_text(s)
        }
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact_value(v, Some(k))),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| redact_value(v, key.as_deref())),
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

/// A JSON subscriber at `level` that writes redacted lines to `writer`.
pub fn subscriber<W>(level: &str, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let level = level.parse().unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_max_level(level)
        .with_writer(Redacting(writer))
        .finish()
}

/// Installs the process-wide subscriber on stdout (once; later calls are no-ops).
pub fn init(level: &str) {
    let _ = tracing::subscriber::set_global_default(subscriber(level, io::stdout));
}
