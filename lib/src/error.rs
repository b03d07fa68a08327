//! The one error type of the HTTP boundary, mapped once to `{"error":{"code","message"}}`.
//!
//! Callers see a stable code and a safe message; internals go to the log only.

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::billing::BillingError;
use crate::configuration::Missing;
use crate::jobs::JobError;
use crate::supabase::DbError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A webhook whose signature does not verify; one message whatever the reason.
    #[error("invalid signature")]
    InvalidSignature,
    #[error("authentication required")]
    Unauthorized,
    /// An admin request without a bearer token (RFC 6750): 401 with `WWW-Authenticate`.
    #[error("an access token is required (Authorization: Bearer)")]
    MissingToken,
    /// An admin request whose bearer token does not verify: 401 with `WWW-Authenticate`.
    #[error("the access token is invalid or expired")]
    InvalidToken,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("no route for this path")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The resource's current state does not allow the request.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    NotConfigured(#[from] Missing),
    #[error("database error: {0}")]
    Database(#[from] DbError),
    /// Another dependency failed in a way a retry may fix (5xx, timeout): 503.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    /// Another service refused the request for good (e.g. WhatsApp refused a message): 502.
    #[error("{0}")]
    BadGateway(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::InvalidSignature => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::MissingToken | Self::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::NotConfigured(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::InvalidSignature => "invalid_signature",
            Self::Unauthorized => "unauthorized",
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Conflict(_) => "conflict",
            Self::BadGateway(_) => "bad_gateway",
            Self::NotConfigured(_) => "not_configured",
            Self::Database(e) if e.is_unavailable() => "unavailable",
            Self::Unavailable(_) => "unavailable",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }

    /// What the caller may read: never a dependency's internals.
    fn public_message(&self) -> String {
        match self {
            Self::Database(e) if e.is_unavailable() => {
                "a dependency is unavailable; try again later".into()
            }
            Self::Unavailable(_) => "a dependency is unavailable; try again later".into(),
            Self::Database(_) | Self::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }

    /// The JSON response; server-side failures are logged with their internals first.
    pub fn into_response(self) -> Response<Bytes> {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "request failed");
        }
        let challenge = self.challenge();
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.public_message() }
        });
        let mut response = crate::response::json(status, &body);
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(challenge),
            );
        }
        response
    }

    /// The `WWW-Authenticate` challenge of a bearer-token failure (RFC 6750, section 3).
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken => Some(r#"Bearer realm="admin""#),
            Self::InvalidToken => Some(r#"Bearer realm="admin", error="invalid_token""#),
            _ => None,
        }
    }
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        match error {
            JobError::NotConfigured(missing) => Self::NotConfigured(missing),
            JobError::Database(error) => Self::Database(error),
        }
    }
}

impl From<BillingError> for ApiError {
    fn from(error: BillingError) -> Self {
        match error {
            BillingError::NotConfigured(missing) => Self::NotConfigured(missing),
            BillingError::InvalidSignature => Self::InvalidSignature,
            BillingError::Malformed => Self::BadRequest(error.to_string()),
            BillingError::Unavailable(_) => Self::Unavailable(error.to_string()),
            BillingError::Database(error) => Self::Database(error),
        }
    }
}
