//! A typed PostgREST client (Supabase's REST API).
//!
//! System routes call it as [`Caller::Service`] (the service-role key); admin routes forward
//! the signed-in user's own token as [`Caller::User`] so that row-level security decides.
//!
//! Each kind of key is sent the way Supabase's API gateway expects it ([`headers`]):
//!
//! | caller | key | `apikey` | `Authorization` |
//! |---|---|---|---|
//! | service | `sb_secret_…` | the secret key | none (the gateway acts as service_role) |
//! | service | legacy `service_role` JWT | the JWT | `Bearer <the JWT>` |
//! | user | `sb_publishable_…` or legacy `anon` JWT | the key | `Bearer <user's token>` |
//! | user | none configured | none | `Bearer <user's token>` (a bare PostgREST) |
//!
//! A bare PostgREST (the local stack, `POSTGREST_URL`) understands only JWTs: there the
//! legacy keys `scripts/stack env` prints are used; the new keys need Supabase's gateway.
//!
//! It never follows a redirect: the keys travel in headers (`apikey` is not one reqwest drops
//! on a redirect to another host), so a PostgREST URL answering 3xx is an error, and the
//! place it points at sees no request.

mod error;
mod query;
pub mod storable;

pub use error::{DbError, PostgrestError};
pub use query::{parse_content_range, Answer, Count, Prefer, Query, Resolution, Return};

use std::time::Duration;

use reqwest::redirect::Policy;

use crate::configuration::{DatabaseSettings, KeyKind, Secret};

/// Who a request runs as.
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    /// The service role: bypasses RLS. Only for system routes (webhooks, cron, health).
    Service,
    /// A signed-in user's access token: RLS applies.
    User(&'a str),
}

/// The PostgREST endpoint and keys, with an HTTP client of its own that follows no redirect.
#[derive(Clone)]
pub struct Postgrest {
    /// `None` only if the client could not be built (every call then fails).
    http: Option<reqwest::Client>,
    base_url: String,
    service_key: Secret,
    anon_key: Option<Secret>,
    timeout: Duration,
}

/// The client PostgREST calls go through: the process's settings, and no redirects.
fn client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("whatsapp-assistant/", env!("CARGO_PKG_VERSION")))
        .build()
        .inspect_err(|e| tracing::error!(error = %e, "PostgREST HTTP client not built"))
        .ok()
}

impl Postgrest {
    /// The process's shared client follows redirects, which must never happen with the
    /// service key in the headers: PostgREST gets a client of its own built with
    /// `redirect::Policy::none()` (one more connection pool per process).
    pub fn new(settings: &DatabaseSettings) -> Self {
        Self {
            http: client(),
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
        let (apikey, bearer) = headers(&self.service_key, self.anon_key.as_ref(), caller);
        let target = query::Target {
            http: self.http.clone(),
            url: format!("{}/{}", self.base_url, path),
            apikey,
            bearer,
            timeout: self.timeout,
        };
        Query::new(target, method)
    }
}

/// `(apikey, bearer)` of a request as `caller`: what Supabase's gateway expects of each kind of
/// key (the table in the module documentation). A secret key is never a bearer: it is not a
/// JWT, and the gateway refuses it there.
fn headers(
    service_key: &Secret,
    anon_key: Option<&Secret>,
    caller: Caller<'_>,
) -> (Option<String>, Option<String>) {
    match caller {
        Caller::Service => {
            let key = service_key.expose().to_string();
            match KeyKind::of(service_key) {
                KeyKind::Secret | KeyKind::Publishable => (Some(key), None),
                KeyKind::LegacyJwt => (Some(key.clone()), Some(key)),
            }
        }
        Caller::User(token) => (
            anon_key.map(|key| key.expose().to_string()),
            Some(token.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(
        service: &str,
        anon: Option<&str>,
        caller: Caller<'_>,
    ) -> (Option<String>, Option<String>) {
        headers(
            &Secret::new(service),
            anon.map(Secret::new).as_ref(),
            caller,
        )
    }

    #[test]
    fn each_kind_of_key_is_sent_as_the_gateway_expects() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            sent("sb_secret_abc", None, Caller::Service),
            (some("sb_secret_abc"), None)
        );
        assert_eq!(
            sent("eyJ.legacy.jwt", None, Caller::Service),
            (some("eyJ.legacy.jwt"), some("eyJ.legacy.jwt"))
        );
        assert_eq!(
            sent(
                "sb_secret_abc",
                Some("sb_publishable_xyz"),
                Caller::User("eyJ.user")
            ),
            (some("sb_publishable_xyz"), some("eyJ.user"))
        );
        assert_eq!(
            sent("sb_secret_abc", None, Caller::User("eyJ.user")),
            (None, some("eyJ.user"))
        );
    }
}
