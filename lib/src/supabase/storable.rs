//! Text that PostgreSQL will store. `text` and `jsonb` refuse NUL (`\u0000`), and JSON can
//! carry lone UTF-16 surrogates (`\ud800`) that serde_json (rightly) refuses to decode: either
//! would fail a whole write, so content from outside is made storable first. What cannot be
//! stored becomes U+FFFD; what is too long is cut with [`TRUNCATED`] at its end.

use std::borrow::Cow;

use serde_json::Value;

/// Ends a string cut by [`truncate`].
pub const TRUNCATED: &str = "…[truncated]";

/// `text` with every NUL replaced by U+FFFD.
pub fn text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` storable and at most `max_chars` characters long (the last of them [`TRUNCATED`]
/// when it had to be cut).
pub fn bounded(text: &str, max_chars: usize) -> String {
    truncate(self::text(text).into_owned(), max_chars)
}

/// `value` at most `max_chars` characters long, ending in [`TRUNCATED`] when it was cut.
pub fn truncate(mut value: String, max_chars: usize) -> String {
    let Some((cut, _)) = value.char_indices().nth(max_chars) else {
        return value;
    };
    let marker = TRUNCATED.chars().count();
    if max_chars < marker {
        value.truncate(cut);
        return value;
    }
    let at = value
        .char_indices()
        .nth(max_chars - marker)
        .map_or(cut, |(index, _)| index);
    value.truncate(at);
    value.push_str(TRUNCATED);
    value
}

/// Makes every string of `value` (object keys too) storable, each cut to `max_chars`.
pub fn json(value: &mut Value, max_chars: usize) {
    match value {
        Value::String(s) => {
            if s.contains('\0') || s.chars().nth(max_chars).is_some() {
                *s = bounded(s, max_chars);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| json(item, max_chars)),
        Value::Object(map) => {
            if map
                .keys()
                .any(|k| k.contains('\0') || k.chars().nth(max_chars).is_some())
            {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(key, value)| (bounded(&key, max_chars), value))
                    .collect();
            }
            map.values_mut().for_each(|item| json(item, max_chars));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// JSON bytes serde_json can decode whatever their content: bytes that are not UTF-8 become
/// U+FFFD, and so does every `\uD800`-`\uDFFF` escape that is not half of a surrogate pair
/// (a high one followed by a low one). Everything else is left as it was, byte for byte, so
/// that valid JSON stays the same JSON (and invalid JSON stays invalid). For bodies whose
/// signature was already checked on the bytes as received.
pub fn repair_json(body: &[u8]) -> Cow<'_, [u8]> {
    let body = match String::from_utf8_lossy(body) {
        Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
    };
    if !has_lone_surrogate(&body) {
        return body;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            out.push(body[i]);
            i += 1;
            continue;
        }
        match escape_at(&body, i) {
            Escape::Pair => {
                out.extend_from_slice(&body[i..i + 12]);
                i += 12;
            }
            Escape::Lone => {
                out.extend_from_slice(b"\\ufffd");
                i += 6;
            }
            Escape::Other(len) => {
                out.extend_from_slice(&body[i..i + len]);
                i += len;
            }
        }
    }
    Cow::Owned(out)
}

enum Escape {
    /// `\uD8xx\uDCxx`: 12 bytes, valid.
    Pair,
    /// A surrogate escape without its other half: 6 bytes.
    Lone,
    /// Any other escape (or a backslash at the end): this many bytes, kept.
    Other(usize),
}

/// The UTF-16 code unit of a `\uXXXX` escape at `at`.
fn unit_at(body: &[u8], at: usize) -> Option<u16> {
    let escape = body.get(at..at.checked_add(6)?)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

fn escape_at(body: &[u8], at: usize) -> Escape {
    let high = 0xD800..=0xDBFF;
    let low = 0xDC00..=0xDFFF;
    match unit_at(body, at) {
        Some(unit) if high.contains(&unit) => match unit_at(body, at + 6) {
            Some(next) if low.contains(&next) => Escape::Pair,
            _ => Escape::Lone,
        },
        Some(unit) if low.contains(&unit) => Escape::Lone,
        Some(_) => Escape::Other(6),
        // `\"`, `\\`, `\n`...: the backslash and what it escapes (one ASCII byte, or the
        // start of a UTF-8 character, copied on by the caller's loop).
        None => Escape::Other(if at + 1 < body.len() { 2 } else { 1 }),
    }
}

fn has_lone_surrogate(body: &[u8]) -> bool {
    let mut i = 0;
    while let Some(offset) = body
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\\'))
    {
        let at = i + offset;
        match escape_at(body, at) {
            Escape::Lone => return true,
            Escape::Pair => i = at + 12,
            Escape::Other(len) => i = at + len,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_becomes_the_replacement_character() {
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
        let mut value = json!({"k\u{0}": ["x\u{0}", {"n": 1, "s": "ok"}]});
        json(&mut value, 100);
        assert_eq!(
            value,
            json!({"k\u{FFFD}": ["x\u{FFFD}", {"n": 1, "s": "ok"}]})
        );
    }

    #[test]
    fn long_text_is_cut_with_a_marker_on_a_character_boundary() {
        let cut = bounded(&"é".repeat(50), 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(cut.ends_with(TRUNCATED));
        assert_eq!(bounded("short", 20), "short");
        assert_eq!(bounded(&"x".repeat(20), 20), "x".repeat(20));
        assert_eq!(
            truncate("abcdef".into(), 3),
            "abc",
            "no room for the marker"
        );
    }

    #[test]
    fn lone_surrogates_are_replaced_and_pairs_kept() {
        let repaired = |body: &str| String::from_utf8(repair_json(body.as_bytes()).into_owned());
        let decode = |body: &str| -> Value {
            serde_json::from_slice(&repair_json(body.as_bytes())).expect("decodes")
        };
        assert_eq!(decode(r#"{"a":"x\ud800y"}"#), json!({"a": "x\u{FFFD}y"}));
        assert_eq!(decode(r#"{"a":"\udc00"}"#), json!({"a": "\u{FFFD}"}));
        assert_eq!(decode(r#"{"a":"\ud83d\ude00"}"#), json!({"a": "😀"}));
        assert_eq!(
            decode(r#"{"a":"\ud83d\ud83d\ude00"}"#),
            json!({"a": "\u{FFFD}😀"})
        );
        assert_eq!(
            decode(r#"{"a":"\\ud800"}"#),
            json!({"a": "\\ud800"}),
            "not an escape"
        );
        let untouched = r#"{"a":"\u00e9\n\"\\"}"#;
        assert_eq!(repaired(untouched).as_deref(), Ok(untouched));
        assert!(matches!(
            repair_json(untouched.as_bytes()),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            decode("{\"a\":\"\u{e9}\\ud800\"}"),
            json!({"a": "é\u{FFFD}"})
        );
        let not_utf8 = b"{\"a\":\"\xff\"}";
        let value: Value = serde_json::from_slice(&repair_json(not_utf8)).expect("decodes");
        assert_eq!(value, json!({"a": "\u{FFFD}"}));
        assert_eq!(
            repair_json(b"\\").as_ref(),
            b"\\",
            "a lone backslash at the end"
        );
    }
}
