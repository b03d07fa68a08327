//! `Stripe-Signature` verification: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`, where each
//! `v1` is HMAC-SHA256 of `"{t}.{raw body}"` under an endpoint secret. Every `v1` is tried
//! against every configured secret (rotation); other schemes (`v0`) are ignored.

use std::time::Duration;

use hmac::{Hmac, Mac};
use http::HeaderValue;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::configuration::Secret;

/// Why a delivery was refused. Logged as a security event; the caller only ever learns
/// "invalid signature".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no Stripe-Signature header")]
    MissingHeader,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("signed timestamp outside the tolerance")]
    OutsideTolerance,
    #[error("no v1 signature matches a configured secret")]
    NoMatch,
}

/// A parsed header: the signed timestamp and every `v1` signature that is valid hex.
struct SignatureHeader {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

impl SignatureHeader {
    fn parse(value: &HeaderValue) -> Result<Self, Rejection> {
        let value = value.to_str().map_err(|_| Rejection::Malformed)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        let mut v1_count = 0;
        for part in value.split(',') {
            let (key, value) = part.trim().split_once('=').ok_or(Rejection::Malformed)?;
            match key {
                "t" if timestamp.is_none() => {
                    timestamp = Some(value.parse::<i64>().map_err(|_| Rejection::Malformed)?)
                }
                "t" => return Err(Rejection::Malformed),
                "v1" => {
                    v1_count += 1;
                    // Not hex: it cannot match; the other v1 values may.
                    signatures.extend(hex::decode(value).ok());
                }
                _ => {}
            }
        }
        match timestamp {
            Some(timestamp) if v1_count > 0 => Ok(Self {
                timestamp,
                signatures,
            }),
            _ => Err(Rejection::Malformed),
        }
    }
}

/// Checks `header` against `body` (the raw bytes, before any parsing): the timestamp is within
/// `tolerance` of `now` (past or future) and some `v1` is the HMAC of one of `secrets`.
/// Signatures are compared in constant time.
pub fn verify(
    header: Option<&HeaderValue>,
    body: &[u8],
    secrets: &[Secret],
    tolerance: Duration,
    now: i64,
) -> Result<(), Rejection> {
    let header = SignatureHeader::parse(header.ok_or(Rejection::MissingHeader)?)?;
    if now.abs_diff(header.timestamp) > tolerance.as_secs() {
        return Err(Rejection::OutsideTolerance);
    }
    let matches = secrets.iter().any(|secret| {
        sign(secret, header.timestamp, body).is_some_and(|expected| {
            header
                .signatures
                .iter()
                .any(|candidate| bool::from(expected.as_slice().ct_eq(candidate)))
        })
    });
    if matches {
        Ok(())
    } else {
        Err(Rejection::NoMatch)
    }
}

/// HMAC-SHA256 of `"{timestamp}.{body}"` under `secret` (HMAC takes keys of any length, so
/// this is always `Some`).
fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> Option<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac.finalize().into_bytes().to_vec())
}
