//! `GET /api/admin/openapi.json`: the OpenAPI 3.1 document of every route (admin and public),
//! public. A static file in the repository (`openapi.json` beside this module), embedded in
//! the binary; `tests/api/admin/openapi.rs` keeps it true to the routes. Its `SettingsUpdate`
//! states the database's limits of the settings (the CHECK constraints on
//! `assistant_settings`, kept equal by `tests/api/admin/limits.rs`): the console reads them here.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};

use super::serve_public;
use crate::host::{HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/admin/openapi.json.rs",
    handler: |request, ctx| Box::pin(serve_public(request, ctx, &["GET"], document)),
};

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

fn document(_request: Request<Bytes>) -> HandlerResult {
    let mut response = Response::new(Bytes::from_static(DOCUMENT.as_bytes()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
