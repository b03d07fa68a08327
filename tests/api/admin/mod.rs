//! The admin API against the real stack: tokens signed by `helpers::jwt` (HS256 with the
//! stack's secret, ES256 with the test-only key, served by a fake JWKS), and two orgs of each
//! test's own (`helpers::admin::World`).

mod bounds;
mod console;
mod cors;
mod flows;
mod jwt;
mod limits;
mod matrix;
mod openapi;
mod postgrest;
