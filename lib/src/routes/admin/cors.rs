//! CORS for the admin frontend: only the origins of `ADMIN_ALLOWED_ORIGINS`, exact match.
//!
//! An allowed origin gets `Access-Control-Allow-Origin` (never `*`) on every answer, errors
//! included, so the frontend can read a 401; a preflight (`OPTIONS`) is answered 204 with the
//! route's methods and the headers the frontend sends. Another origin gets no CORS header, so
//! the browser refuses to hand it the answer.

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ALLOW, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::configuration::AdminSettings;

/// The request headers a browser may send to the admin API.
const ALLOWED_HEADERS: &str = "authorization, content-type";

/// How long a browser may reuse a preflight answer (seconds).
const MAX_AGE: &str = "600";

/// The request's `Origin` when it is one of the allowed origins.
pub fn allowed_origin(headers: &HeaderMap, settings: &AdminSettings) -> Option<HeaderValue> {
    let origin = headers.get(ORIGIN)?;
    let text = origin.to_str().ok()?;
    settings
        .allowed_origins
        .iter()
        .any(|allowed| allowed == text)
        .then(|| origin.clone())
}

/// Adds the CORS headers for `origin` (when allowed) and `Vary: Origin` (always: the answer
/// depends on it).
pub fn decorate(response: &mut Response<Bytes>, origin: Option<&HeaderValue>) {
    let headers = response.headers_mut();
    headers.append(VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, www-authenticate"),
        );
    }
}

/// The answer to `OPTIONS`: 204 with `Allow`; for an allowed origin, the preflight's headers
/// (the route's methods, the request headers it accepts, how long to cache the answer).
pub fn preflight(methods: &[&str], origin: Option<&HeaderValue>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let allow = allow_header(methods);
    response.headers_mut().insert(ALLOW, allow.clone());
    if origin.is_some() {
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, allow);
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    }
    decorate(&mut response, origin);
    response
}

/// `GET, PUT, OPTIONS`
pub fn allow_header(methods: &[&str]) -> HeaderValue {
    let list = [methods, &["OPTIONS"]].concat().join(", ");
    HeaderValue::from_str(&list).unwrap_or_else(|_| HeaderValue::from_static("OPTIONS"))
}
