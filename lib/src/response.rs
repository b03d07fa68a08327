//! The JSON answer every route and every error is shaped into.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use serde::Serialize;

/// A JSON response with `status`.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Bytes> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
