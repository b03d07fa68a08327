//! The WhatsApp assistant backend: every route's handler, the core below them, the clients
//! they talk to, and the hosts (Vercel, AWS Lambda, the local dev server) that run them.
//!
//! A route is written once as an async function from `http::Request<Bytes>` to
//! `http::Response<Bytes>` (see [`host::Route`]); `api/**/*.rs` only hands it to a host.
//! Routes ([`routes`]) parse the request, call the core and shape the answer; the core is the
//! inbound-message pipeline ([`inbound`]), the crons' work ([`jobs`]), billing, health, the
//! assistant, the clients and the domain types.

pub mod assistant;
pub mod auth;
pub mod backoff;
pub mod billing;
pub mod configuration;
pub mod domain;
pub mod error;
pub mod health;
pub mod host;
pub mod inbound;
pub mod jobs;
pub mod response;
pub mod routes;
pub mod send;
pub mod startup;
pub mod supabase;
pub mod telemetry;
pub mod whatsapp;

/// The `main` of a route binary: `assistant::serve!(assistant::routes::health::ROUTE);`.
///
/// It passes the binary's own source path so that the host refuses to start a route from a
/// file other than the one it is declared for (the route table and `api/` cannot drift).
#[macro_export]
macro_rules! serve {
    ($route:expr) => {
        fn main() -> std::process::ExitCode {
            $crate::host::serve(&$route, file!())
        }
    };
}
