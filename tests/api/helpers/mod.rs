//! Everything the tests share, so that a test reads arrange / act / assert:
//!
//! - [`app`]: `TestApp` (the dev server's router on a free port) and its endpoint methods;
//! - [`db`]: rows arranged and read back through the service role, users through psql;
//! - [`jwt`]: the one token signer (HS256, ES256, RS256, unsigned);
//! - [`fixtures`]: the one loader of `tests/fixtures/`;
//! - [`fakes`]: the external APIs, faked with wiremock (Graph, OpenAI, Anthropic, Google,
//!   Stripe, Supabase Auth's JWKS);
//! - [`whatsapp`], [`stripe`]: deliveries to our webhooks, signed as Meta and Stripe sign them;
//! - [`admin`]: two seeded orgs and their staff, for the admin API;
//! - [`logs`]: the captured log lines of this test binary;
//! - [`reminders`]: contacts, reminders and cron apps for the cron tests;
//! - [`lib`]: every path of the library under test that a test names.

pub mod admin;
pub mod app;
pub mod db;
pub mod fakes;
pub mod fixtures;
pub mod jwt;
pub mod lib;
pub mod logs;
pub mod reminders;
pub mod stripe;
pub mod whatsapp;

pub use app::*;
pub use db::*;
pub use fakes::*;
pub use fixtures::*;
pub use whatsapp::*;

/// A fresh id: 32 hex digits, never seen before (rows, texts and ids of a test's own).
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh UUID as text (primary keys a test chooses).
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh WhatsApp user id (tests never share a contact, so rate limits stay apart).
pub fn new_wa_id() -> String {
    format!("1{}", &uuid::Uuid::new_v4().as_u128().to_string()[..11])
}

/// A fresh WhatsApp Business phone number id.
pub fn new_phone_number_id() -> String {
    format!("9{}", &uuid::Uuid::new_v4().as_u128().to_string()[..14])
}

/// A PostgREST equality filter: `eq.{value}`.
pub fn eq(value: impl std::fmt::Display) -> String {
    format!("eq.{value}")
}

/// Polls `check` until it holds (at most 10 s).
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen in time");
}

/// Whether `value` is a string containing `needle`.
pub fn has_text(value: &serde_json::Value, needle: &str) -> bool {
    value.as_str().is_some_and(|text| text.contains(needle))
}
