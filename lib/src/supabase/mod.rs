//! A typed PostgREST client (Supabase's REST API) on the process's one reqwest client.
//!
//! System routes call it as [`Caller::Service`] (the service-role key); admin routes forward
//! the signed-in user's own token as [`Caller::User`] so that row-level security decides.

mod error;
mod query;
pub mod storable;

pub use error::{DbError, PostgrestError};
pub use query::{parse_content_range, Answer, Count, Prefer, Query, Resolution, Return};

use std::time::Duration;

use crate::configuration::{DatabaseSettings, Secret};

/// Who a request runs as.
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    /// The service role: bypasses RLS. Only for system routes (webhooks, cron, health).
    Service,
    /// A signed-in user's access token: RLS applies.
    User(&'a str),
}

/// The PostgREST endpoint and keys, sharing the process's HTTP client.
#[derive(Clone)]
pub struct Postgrest {
    http: reqwest::Client,
    base_url: String,
    service_key: Secret,
    anon_key: Option<Secret>,
    timeout: Duration,
}

impl Postgrest {
    pub fn new(http: reqwest::Client, settings: &DatabaseSettings) -> Self {
        Self {
            http,
            base_url: settings.rest_url.clone(),
            service_key: settings.service_role_key.clone(),
            anon_key: settings.anon_key.clone(),
            timeout: settings.timeout,
        }
    }

    /// A query on a table or view (GET until a write method is chosen).
    pub fn from(&self, table: &str, caller: Caller<'_>) -> Query {
        self.request(reqwest::Method::GET, table, caller)
    }

    /// A call of a Postgres function (`POST /rpc/name`, no arguments until `Query::args`).
    pub fn rpc(&self, function: &str, caller: Caller<'_>) -> Query {
        self.request(reqwest::Method::POST, &format!("rpc/{function}"), caller)
            .args(&serde_json::Map::new())
    }

    fn request(&self, method: reqwest::Method, path: &str, caller: Caller<'_>) -> Query {
        let (apikey, bearer) = match caller {
            Caller::Service => (Some(&self.service_key), self.service_key.expose()),
            Caller::User(token) => (self.anon_key.as_ref(), token),
        };
        let target = query::Target {
            http: self.http.clone(),
            url: format!("{}/{}", self.base_url, path),
            apikey: apikey.map(|key| key.expose().to_string()),
            bearer: bearer.to_string(),
            timeout: self.timeout,
        };
        Query::new(target, method)
    }
}
