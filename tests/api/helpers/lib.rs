//! The library under test, as the tests name it: when a module of `assistant` moves, this is
//! the one file to change.

pub use assistant::configuration::Settings;
pub use assistant::host::console::{Console, LOCAL_SESSION_PATH};
pub use assistant::host::local::{serve, serve_with};
pub use assistant::host::{handle, Background, Route};
pub use assistant::routes::admin::openapi::DOCUMENT as OPENAPI_DOCUMENT;
pub use assistant::routes::health::ROUTE as HEALTH_ROUTE;
pub use assistant::routes::ROUTES;
pub use assistant::startup::AppState;
pub use assistant::supabase::{
    parse_content_range, Caller, Count, DbError, Postgrest, Prefer, Resolution, Return,
};
pub use assistant::telemetry::subscriber as log_subscriber;
pub use assistant::whatsapp::signature::{escape_non_ascii, sign as sign_whatsapp};

/// Processes a stored message's conversation, as the webhook's background work does.
pub async fn process_message(state: &AppState, id: uuid::Uuid, started: std::time::Instant) {
    state.pipeline.process(id, started).await;
}
