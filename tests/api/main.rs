//! Integration tests against the real local stack (PostgreSQL + PostgREST), started by
//! `scripts/test`. External HTTP APIs are faked with wiremock.

mod ai;
mod helpers;
mod whatsapp;

mod admin;
mod assistant;
mod billing;
mod cron;
mod health;
mod migrations;
mod poison;
mod postgrest;
mod routes;
mod telemetry;
mod webhook;
