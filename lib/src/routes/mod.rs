//! Every HTTP route, one module per area. [`ROUTES`] is the one list the dev server mounts;
//! a test checks it against `api/**/*.rs` and the `[[bin]]`s of Cargo.toml.

pub mod admin;
pub mod billing;
pub mod cron;
pub mod health;
pub mod webhook;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use serde::Serialize;

use crate::host::Route;

/// Every route of the service.
pub static ROUTES: &[&Route] = &[
    &health::ROUTE,
    &webhook::ROUTE,
    &billing::ROUTE,
    &cron::CHECK_REMINDERS,
    &cron::RETRY_FAILED,
    &admin::me::ROUTE,
    &admin::overview::ROUTE,
    &admin::conversations::LIST,
    &admin::conversations::ONE,
    &admin::conversations::HANDOFF,
    &admin::conversations::MESSAGES,
    &admin::settings::ROUTE,
    &admin::usage::ROUTE,
    &admin::dead_letters::LIST,
    &admin::dead_letters::REPLAY,
    &admin::dead_letters::DISCARD,
    &admin::rate_limits::RESET,
    &admin::alerts::LIST,
    &admin::alerts::ACKNOWLEDGE,
    &admin::audit_log::ROUTE,
    &admin::members::LIST,
    &admin::members::ONE,
    &admin::openapi::ROUTE,
];

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
