//! Every HTTP route, one module per area: each parses its request, calls the core below
//! `routes/` and shapes the answer; no route imports another. [`ROUTES`] is the one list the
//! dev server mounts; a test checks it against `api/**/*.rs` and the `[[bin]]`s of Cargo.toml.

pub mod admin;
pub mod billing;
pub mod cron;
pub mod health;
pub mod webhook;

use crate::host::Route;

/// Every route of the service.
pub static ROUTES: &[&Route] = &[
    &health::ROUTE,
    &webhook::ROUTE,
    &billing::ROUTE,
    &cron::CHECK_REMINDERS,
    &cron::RETRY_FAILED,
    &cron::RETENTION,
    &cron::MONITOR,
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
    &admin::contacts::ERASE,
    &admin::alerts::LIST,
    &admin::alerts::ACKNOWLEDGE,
    &admin::audit_log::ROUTE,
    &admin::members::LIST,
    &admin::members::ONE,
    &admin::openapi::ROUTE,
    &admin::config::ROUTE,
];
