//! Integration tests against the real local stack (PostgreSQL + PostgREST), started by
//! `scripts/test`. External HTTP APIs are faked with wiremock; what the tests share is in
//! `helpers/`.

mod helpers;

mod account_events;
mod admin;
mod assistant;
mod billing;
mod charges;
mod cron;
mod erasure;
mod group_commit;
mod groups;
mod health;
mod hostile;
mod keys;
mod kinds;
mod logs;
mod migrations;
mod models;
mod monitor;
mod outcomes;
mod poison;
mod postgrest;
mod retention;
mod rich;
mod routes;
mod runbook;
mod sentry;
mod statuses;
mod telemetry;
mod tenant;
mod turns;
mod webhook;
