//! `/api/admin/**`: the admin frontend's API, one route binary per resource.
//!
//! Every route goes through [`serve`]: CORS (preflight included), the method check, then the
//! caller's Supabase access token ([`crate::auth`]). Handlers then read and write through
//! PostgREST with that same token ([`Admin::caller`]), so row-level security decides; the few
//! actions that need more are `security definer` functions that check the caller's role
//! themselves (`supabase/migrations/20261123000005_admin.sql`). Mutations write their
//! `audit_log_entries` row in the same transaction. Nothing here uses the service-role key for
//! what a user could do under RLS.

pub mod alerts;
pub mod audit_log;
pub mod config;
pub mod contacts;
pub mod conversations;
mod cors;
pub mod dead_letters;
pub mod me;
pub mod members;
pub mod openapi;
pub mod overview;
mod page;
pub mod rate_limits;
pub mod settings;
pub mod usage;

use std::collections::HashMap;

use bytes::Bytes;
use chrono::NaiveDate;
use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::auth::{AuthError, User};
use crate::domain::Id;
use crate::error::ApiError;
use crate::host::{Ctx, HandlerResult};
use crate::supabase::{storable, Caller, DbError, Postgrest, Query};

pub use page::Page;

/// An authenticated request to an admin route.
pub struct Admin {
    pub request: Request<Bytes>,
    pub ctx: Ctx,
    pub user: User,
}

/// An admin route's handler, called once the caller is authenticated.
pub type AdminHandler = fn(Admin) -> BoxFuture<'static, HandlerResult>;

/// Runs an admin route: preflight, method check (`methods`), authentication, `handler`; every
/// answer, errors included, carries the CORS headers for an allowed origin.
pub async fn serve(
    request: Request<Bytes>,
    ctx: Ctx,
    methods: &'static [&'static str],
    handler: AdminHandler,
) -> HandlerResult {
    guarded(request, ctx, methods, |request, ctx| async move {
        let user = authenticate(&request, &ctx).await?;
        handler(Admin { request, ctx, user }).await
    })
    .await
}

/// Runs a public route of the admin API (no token), with the same CORS and method handling.
pub async fn serve_public(
    request: Request<Bytes>,
    ctx: Ctx,
    methods: &'static [&'static str],
    handler: fn(Request<Bytes>) -> HandlerResult,
) -> HandlerResult {
    guarded(request, ctx, methods, |request, _| async move {
        handler(request)
    })
    .await
}

/// CORS and the method check around `run`; its errors become responses here so that they
/// carry the CORS headers too.
async fn guarded<F, Fut>(
    request: Request<Bytes>,
    ctx: Ctx,
    methods: &'static [&'static str],
    run: F,
) -> HandlerResult
where
    F: FnOnce(Request<Bytes>, Ctx) -> Fut,
    Fut: std::future::Future<Output = HandlerResult>,
{
    let origin = cors::allowed_origin(request.headers(), &ctx.state.settings.admin);
    if request.method() == Method::OPTIONS {
        return Ok(cors::preflight(methods, origin.as_ref()));
    }
    let mut response = match refuse_method(&request, methods) {
        Some(response) => response,
        None => run(request, ctx)
            .await
            .unwrap_or_else(ApiError::into_response),
    };
    cors::decorate(&mut response, origin.as_ref());
    Ok(response)
}

/// 405 with `Allow` for a method other than `methods`.
fn refuse_method(
    request: &Request<Bytes>,
    methods: &'static [&'static str],
) -> Option<Response<Bytes>> {
    if methods.contains(&request.method().as_str()) {
        return None;
    }
    let mut response = ApiError::MethodNotAllowed.into_response();
    response
        .headers_mut()
        .insert(http::header::ALLOW, cors::allow_header(methods));
    Some(response)
}

async fn authenticate(request: &Request<Bytes>, ctx: &Ctx) -> Result<User, ApiError> {
    ctx.state
        .auth
        .authenticate(request.headers())
        .await
        .map_err(|error| {
            if !matches!(error, AuthError::MissingToken) {
                crate::security_event!(
                    crate::telemetry::SecurityEvent::AdminTokenRejected,
                    reason = %error
                );
            }
            match error {
                AuthError::MissingToken => ApiError::MissingToken,
                AuthError::KeysUnavailable(reason) => ApiError::Unavailable(reason),
                AuthError::NotConfigured(missing) => ApiError::NotConfigured(missing),
                _ => ApiError::InvalidToken,
            }
        })
}

impl Admin {
    /// PostgREST as this user: row-level security applies.
    pub fn caller(&self) -> Caller<'_> {
        Caller::User(self.user.token.expose())
    }

    pub fn db(&self) -> Result<&Postgrest, ApiError> {
        self.ctx.state.db()
    }

    /// The query string, `[id]` segments included.
    pub fn params(&self) -> Params {
        Params::from_query(self.request.uri().query())
    }

    /// The JSON body as `T`; anything else is 400 with the reason. Its strings are made
    /// storable first (a NUL becomes U+FFFD, [`storable::json`]): PostgreSQL refuses NUL, and
    /// the database, which checks the caller's role first, is the one to answer.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let bad = |e: serde_json::Error| ApiError::BadRequest(format!("invalid JSON body: {e}"));
        let mut value: Value = serde_json::from_slice(self.request.body()).map_err(bad)?;
        storable::json(&mut value, usize::MAX);
        serde_json::from_value(value).map_err(bad)
    }

    /// Calls a Postgres function as this user.
    pub async fn rpc<T: DeserializeOwned>(
        &self,
        function: &str,
        args: &impl Serialize,
    ) -> Result<T, ApiError> {
        let query = self.db()?.rpc(function, self.caller()).args(args);
        Ok(query.fetch().await.map_err(db_error)?.data)
    }

    /// A table or view as this user.
    pub fn from(&self, table: &str) -> Result<Query, ApiError> {
        Ok(self.db()?.from(table, self.caller()))
    }
}

/// The rows of a query, as PostgREST returns them.
pub async fn rows(query: Query) -> Result<Vec<Value>, ApiError> {
    Ok(query.fetch().await.map_err(db_error)?.data)
}

/// `200` with a JSON body.
pub fn ok(body: &impl Serialize) -> HandlerResult {
    Ok(crate::response::json(StatusCode::OK, body))
}

/// What the admin API answers for a PostgREST error of a user's request. The codes are the
/// ones the admin functions raise (see the migration) and those RLS and constraints raise;
/// PostgREST's JWT errors are 401: `PGRST301` (invalid token), `PGRST302` (none sent) and
/// `PGRST303` (a claim fails validation — `exp`, `aud` —, PostgREST 13 and later; 12 answers
/// `PGRST301` for it).
pub fn db_error(error: DbError) -> ApiError {
    let message = match &error {
        DbError::Api(e) => e.message.clone(),
        _ => String::new(),
    };
    match error.code() {
        Some("P0002") => ApiError::NotFound,
        Some("42501") => ApiError::Forbidden,
        Some("22023" | "22P02" | "22P05" | "22007" | "22008" | "22001" | "23502") => {
            ApiError::BadRequest(message)
        }
        Some("55000" | "23505" | "23514") => ApiError::Conflict(message),
        Some("PGRST301" | "PGRST302" | "PGRST303") => ApiError::InvalidToken,
        _ => ApiError::Database(error),
    }
}

/// Query string parameters, validated on the way out.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn from_query(query: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required id (`[id]` segments, `org_id`): missing or not a UUID is 400.
    pub fn id(&self, name: &str) -> Result<Id, ApiError> {
        self.optional_id(name)?
            .ok_or_else(|| ApiError::BadRequest(format!("{name} is required (a UUID)")))
    }

    pub fn optional_id(&self, name: &str) -> Result<Option<Id>, ApiError> {
        self.get(name)
            .map(|value| {
                Id::parse(value)
                    .ok_or_else(|| ApiError::BadRequest(format!("{name} must be a UUID")))
            })
            .transpose()
    }

    /// A filter with a fixed set of values.
    pub fn one_of(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, ApiError> {
        self.get(name)
            .map(|value| {
                allowed
                    .iter()
                    .copied()
                    .find(|a| *a == value)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "{name} must be one of {}",
                            allowed.join(", ")
                        ))
                    })
            })
            .transpose()
    }

    /// A date `YYYY-MM-DD`.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        self.get(name)
            .map(|value| {
                NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
                    ApiError::BadRequest(format!("{name} must be a date (YYYY-MM-DD)"))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supabase::PostgrestError;

    fn postgrest(status: u16, code: &str) -> DbError {
        DbError::Api(PostgrestError {
            status,
            code: code.into(),
            message: "JWT expired".into(),
            details: None,
            hint: None,
        })
    }

    #[test]
    fn postgrest_jwt_errors_are_401_whatever_the_version() {
        // PostgREST 12 answers PGRST301 for an expired token, PostgREST 13+ PGRST303.
        for code in ["PGRST301", "PGRST302", "PGRST303"] {
            let error = db_error(postgrest(401, code));
            assert!(matches!(error, ApiError::InvalidToken), "{code}: {error:?}");
        }
        assert!(
            matches!(db_error(postgrest(400, "22P05")), ApiError::BadRequest(_)),
            "text PostgreSQL cannot store"
        );
        assert!(matches!(
            db_error(postgrest(500, "PGRST000")),
            ApiError::Database(_)
        ));
    }
}
