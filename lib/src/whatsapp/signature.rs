//! `X-Hub-Signature-256` verification: HMAC-SHA256 of the raw body with the app secret,
//! compared in constant time, before anything parses the body.
//!
//! Meta signs the escaped-unicode form of a payload (non-ASCII as `\uXXXX`, lowercase hex,
//! surrogate pairs above U+FFFF). The raw bytes are tried first; when they hold non-ASCII, the
//! signature of their escaped form is accepted too.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a signature was refused (for the security log; the caller only sees 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature header malformed")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// Checks `header` (`sha256=<64 hex>`) against `body` signed with `secret`.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    if matches(secret, body, &expected) {
        return Ok(());
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.is_ascii() => {
            if matches(secret, escape_non_ascii(text).as_bytes(), &expected) {
                Ok(())
            } else {
                Err(SignatureError::Mismatch)
            }
        }
        _ => Err(SignatureError::Mismatch),
    }
}

fn matches(secret: &[u8], body: &[u8], expected: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(expected).is_ok()
}

/// `text` with every non-ASCII character as `\uXXXX` (lowercase; UTF-16 surrogate pairs above
/// U+FFFF), the form Meta signs.
pub fn escape_non_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut units = [0u16; 2];
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The `X-Hub-Signature-256` header value for `body` (tools and tests that sign deliveries).
#[cfg(any(test, feature = "dev-tools"))]
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_meta() {
        assert_eq!(
            escape_non_ascii("¿Sí? 😀"),
            "\\u00bfS\\u00ed? \\ud83d\\ude00"
        );
        assert_eq!(escape_non_ascii("plain"), "plain");
    }
}
