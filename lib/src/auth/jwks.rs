//! The project's JSON Web Key Set (`/auth/v1/.well-known/jwks.json`), cached per process.
//!
//! Keys are fetched on first use and kept for [`MAX_AGE`]. A token whose `kid` is not cached
//! (a key rotation) refetches the set, at most once per `JWKS_MIN_REFRESH_SECONDS`, so that a
//! stream of forged `kid`s cannot turn into a stream of fetches. One fetch at a time; the others
//! wait for it and read its result. Only signing keys for ES256 (P-256) and RS256 are kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::AuthError;

/// How long a fetched key set is used before it is fetched again.
const MAX_AGE: Duration = Duration::from_secs(600);

/// Timeout of one fetch of the key set.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The cached key set and its fetcher.
pub struct Jwks {
    http: reqwest::Client,
    url: String,
    min_refresh: Duration,
    cache: RwLock<Cache>,
    /// The last fetch attempt; held while fetching, so that one request fetches at a time.
    attempt: Mutex<Attempt>,
}

type Keys = HashMap<String, (Algorithm, DecodingKey)>;

#[derive(Default)]
struct Cache {
    keys: Keys,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct Attempt {
    at: Option<Instant>,
    failed: bool,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<serde_json::Value>,
}

impl Jwks {
    pub fn new(http: reqwest::Client, url: String, min_refresh: Duration) -> Self {
        Self {
            http,
            url,
            min_refresh,
            cache: RwLock::default(),
            attempt: Mutex::default(),
        }
    }

    /// The key with `kid` for `algorithm`, fetching the set when it is stale or lacks `kid`.
    /// When the endpoint is down, keys already known keep working.
    pub async fn key(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let kid = kid.ok_or(AuthError::UnknownKey(None))?;
        if let Some(key) = self.lookup(kid, algorithm, Some(MAX_AGE)).await {
            return Ok(key);
        }
        let refreshed = self.refresh().await;
        match (self.lookup(kid, algorithm, None).await, refreshed) {
            (Some(key), _) => Ok(key),
            (None, Err(error)) => Err(error),
            (None, Ok(())) => Err(AuthError::UnknownKey(Some(kid.to_string()))),
        }
    }

    /// A cached key for `kid` and `algorithm`, if the set is younger than `max_age`.
    async fn lookup(
        &self,
        kid: &str,
        algorithm: Algorithm,
        max_age: Option<Duration>,
    ) -> Option<DecodingKey> {
        let cache = self.cache.read().await;
        let fresh = match max_age {
            Some(max_age) => cache.fetched_at.is_some_and(|at| at.elapsed() < max_age),
            None => true,
        };
        match cache.keys.get(kid) {
            Some((alg, key)) if fresh && *alg == algorithm => Some(key.clone()),
            _ => None,
        }
    }

    /// Fetches the set, unless a fetch started less than `min_refresh` ago (then its outcome
    /// stands: a request that waited for it reads what it fetched).
    async fn refresh(&self) -> Result<(), AuthError> {
        let mut attempt = self.attempt.lock().await;
        if attempt.at.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return match attempt.failed {
                true => Err(AuthError::KeysUnavailable("the last fetch failed".into())),
                false => Ok(()),
            };
        }
        attempt.at = Some(Instant::now());
        attempt.failed = true;
        let keys = self.fetch().await.map_err(|reason| {
            tracing::warn!(reason = %reason, "JWKS fetch failed");
            AuthError::KeysUnavailable(reason)
        })?;
        tracing::info!(keys = keys.len(), "JWKS fetched");
        *self.cache.write().await = Cache {
            keys,
            fetched_at: Some(Instant::now()),
        };
        attempt.failed = false;
        Ok(())
    }

    async fn fetch(&self) -> Result<Keys, String> {
        let response = self
            .http
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("JWKS endpoint answered {}", response.status()));
        }
        let set: KeySet = response
            .json()
            .await
            .map_err(|e| format!("not a JWK set: {}", e.without_url()))?;
        Ok(set.keys.into_iter().filter_map(signing_key).collect())
    }
}

/// `(kid, (algorithm, key))` of a usable signing key; anything else is skipped (one odd key
/// never hides the others).
fn signing_key(value: serde_json::Value) -> Option<(String, (Algorithm, DecodingKey))> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    if matches!(jwk.common.public_key_use, Some(ref usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        _ => return None,
    };
    let kid = jwk.common.key_id.clone()?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, (algorithm, key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_es256_and_rs256_signing_keys_with_a_kid_are_kept() {
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256", "use": "sig",
            "x": "mKNkf4Y8vaD8K3nMMFiyRz7Own_lh3RMOc5UNheBQSw",
            "y": "3mi_NFrhXZx1yyIU97KYFiaZCVoUu0tIA5c5bCBPrFc"});
        assert_eq!(
            signing_key(ec.clone()).map(|(kid, (alg, _))| (kid, alg)),
            Some(("ec".into(), Algorithm::ES256))
        );
        let mut no_kid = ec.clone();
        no_kid.as_object_mut().expect("object").remove("kid");
        assert!(signing_key(no_kid).is_none());
        let mut encryption = ec.clone();
        encryption["use"] = json!("enc");
        assert!(signing_key(encryption).is_none());
        let mut mislabelled = ec;
        mislabelled["alg"] = json!("RS256");
        assert!(signing_key(mislabelled).is_none());
        // A symmetric key in a JWKS must never verify anything.
        let oct = json!({"kty": "oct", "kid": "hs", "alg": "HS256", "k": "c2VjcmV0"});
        assert!(signing_key(oct).is_none());
    }
}
