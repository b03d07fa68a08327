//! Supabase access tokens: who is calling the admin API.
//!
//! `Authorization: Bearer <token>` is verified before anything else: by default ES256 / RS256
//! with a key of the project's JWKS (asymmetric signing keys) chosen by `kid` (see [`jwks`];
//! `SUPABASE_URL/auth/v1/.well-known/jwks.json` unless `SUPABASE_JWKS_URL` says otherwise), or,
//! the legacy option, HS256 with the project's JWT secret when `SUPABASE_JWT_SECRET` is set.
//! Only those algorithms are accepted (never `none`, never HS256 keyed with a public key);
//! `exp` and `nbf` are checked with a small leeway, `aud` must be `authenticated`, `iss` the
//! project's issuer, and `role` `authenticated` with a user id in `sub`. The token is then
//! forwarded to PostgREST as it came, so that row-level security decides.

mod jwks;

use std::time::Duration;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

use self::jwks::Jwks;
use crate::configuration::{AdminSettings, Missing, Secret};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY: Duration = Duration::from_secs(30);

/// The audience of every Supabase access token of a signed-in user.
const AUDIENCE: &str = "authenticated";

/// A verified caller.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub email: Option<String>,
    /// The access token as received, forwarded to PostgREST.
    pub token: Secret,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("not a JWT: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("no key for this token (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("token rejected: {0}")]
    Rejected(jsonwebtoken::errors::Error),
    #[error("the token is not a signed-in user's")]
    NotAUser,
    /// The signing keys could not be fetched: nobody can be verified until they can.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
    #[error(transparent)]
    NotConfigured(#[from] Missing),
}

/// The claims read from a verified token (`exp`, `nbf`, `aud`, `iss` are checked on the way).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: Option<String>,
    email: Option<String>,
}

/// Verifies access tokens; built once per process (the JWKS cache lives here).
pub struct Authenticator {
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Result<String, Missing>,
}

impl Authenticator {
    pub fn new(http: reqwest::Client, settings: &AdminSettings) -> Self {
        Self {
            secret: settings
                .jwt_secret
                .as_ref()
                .map(|secret| DecodingKey::from_secret(secret.expose().as_bytes())),
            jwks: settings
                .jwks_url
                .clone()
                .map(|url| Jwks::new(http, url, settings.jwks_min_refresh)),
            issuer: settings.issuer.clone(),
        }
    }

    /// The user behind the request's bearer token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<User, AuthError> {
        let issuer = self.issuer.as_ref().map_err(|missing| *missing)?;
        if self.secret.is_none() && self.jwks.is_none() {
            return Err(Missing("SUPABASE_JWKS_URL").into());
        }
        let token = bearer(headers).ok_or(AuthError::MissingToken)?;
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 => self
                .secret
                .clone()
                .ok_or(AuthError::Algorithm(Algorithm::HS256))?,
            Algorithm::ES256 | Algorithm::RS256 => {
                let jwks = self.jwks.as_ref().ok_or(AuthError::Algorithm(header.alg))?;
                jwks.key(header.kid.as_deref(), header.alg).await?
            }
            other => return Err(AuthError::Algorithm(other)),
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation(header.alg, issuer))
            .map_err(AuthError::Rejected)?
            .claims;
        let id = Uuid::parse_str(&claims.sub).map_err(|_| AuthError::NotAUser)?;
        if claims.role.as_deref() != Some(AUDIENCE) {
            return Err(AuthError::NotAUser);
        }
        Ok(User {
            id,
            email: claims.email,
            token: Secret::new(token),
        })
    }
}

/// Exactly one algorithm (the header's, already restricted), `exp`, `nbf`, `aud`, `iss`.
fn validation(algorithm: Algorithm, issuer: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY.as_secs();
    validation.validate_nbf = true;
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
    validation
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            value.parse().expect("header value"),
        );
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
