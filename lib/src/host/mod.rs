//! Hosts: the thin adapters that run a [`Route`] on Vercel, on AWS Lambda, or locally.
//!
//! Every host turns its request into `http::Request<Bytes>` (body size limited) and calls
//! [`handle`], which runs the route inside the request's span (`request_id`, `route`), maps
//! errors to JSON, survives panics and logs one line per request. Background work the route
//! hands off runs in the span it was handed off in, so its lines carry the request too.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Limited};
use tracing::Instrument;

use crate::error::ApiError;
use crate::startup::AppState;

pub mod console;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod local;
#[cfg(feature = "vercel")]
pub mod vercel;

/// What a handler returns; errors become JSON responses in [`handle`].
pub type HandlerResult = Result<Response<Bytes>, ApiError>;

/// A route's handler: one async function from request to response.
pub type Handler = fn(Request<Bytes>, Ctx) -> BoxFuture<'static, HandlerResult>;

/// One HTTP route: its file under `api/` (which is its Vercel path) and its handler.
pub struct Route {
    /// The route binary's source, e.g. `api/admin/conversations/[id].rs`.
    pub source: &'static str,
    pub handler: Handler,
}

impl Route {
    /// The URL path Vercel serves this file at: `api/x/[id].rs` -> `/api/x/[id]`.
    pub fn path(&self) -> String {
        format!("/{}", self.source.trim_end_matches(".rs"))
    }
}

/// Per-request context handed to a handler.
#[derive(Clone)]
pub struct Ctx {
    pub state: Arc<AppState>,
    pub background: Background,
    pub request_id: String,
}

/// A handle for work that continues after the response is sent.
#[derive(Clone)]
pub struct Background(Mode);

#[derive(Clone)]
enum Mode {
    /// Spawned on the runtime (local dev server).
    Spawn,
    /// Collected and awaited by the host before it replies (AWS Lambda freezes afterwards).
    Deferred(Arc<Mutex<Vec<BoxFuture<'static, ()>>>>),
    /// Vercel's `waitUntil`: keeps the invocation alive until the work settles.
    #[cfg(feature = "vercel")]
    Vercel(vercel_runtime::AppState),
}

impl Background {
    /// Work is spawned on the current runtime.
    pub fn spawned() -> Self {
        Self(Mode::Spawn)
    }

    /// Work is collected; the host awaits it with [`Background::drain`].
    pub fn deferred() -> Self {
        Self(Mode::Deferred(Arc::default()))
    }

    /// Runs `work` after the response, the way this host allows, in the current span.
    pub fn run(&self, work: impl Future<Output = ()> + Send + 'static) {
        let work = work.in_current_span();
        match &self.0 {
            Mode::Spawn => {
                tokio::spawn(work);
            }
            Mode::Deferred(queue) => lock(queue).push(Box::pin(work)),
            #[cfg(feature = "vercel")]
            Mode::Vercel(state) => state.wait_until(work),
        }
    }

    /// Awaits the collected work of a deferred handle (no-op for the other modes).
    pub async fn drain(&self) {
        if let Mode::Deferred(queue) = &self.0 {
            loop {
                let batch: Vec<_> = lock(queue).drain(..).collect();
                if batch.is_empty() {
                    break;
                }
                futures_util::future::join_all(batch).await;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs one request through `route` in a span holding its `request_id` and `route`: reads the
/// body within the size limit, calls the handler, turns errors and panics into JSON responses
/// and logs the request line (and, past `SLOW_REQUEST_MS`, the warning `Slow request
/// detected`).
pub async fn handle<B>(
    route: &Route,
    state: Arc<AppState>,
    request: Request<B>,
    background: Background,
) -> Response<Bytes>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let request_id = request_id(&request);
    let span = tracing::info_span!("request", request_id = %request_id, route = %route.path());
    let ctx = Ctx {
        state,
        background,
        request_id,
    };
    answer(route, request, ctx).instrument(span).await
}

async fn answer<B>(route: &Route, request: Request<B>, ctx: Ctx) -> Response<Bytes>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let limit = ctx.state.settings.max_body_bytes;
    let slow = ctx.state.settings.slow_request;
    let errors = ctx.state.errors.clone();
    let header = HeaderValue::from_str(&ctx.request_id);
    let mut response = match read_body(request, limit).await {
        Ok(request) => run_handler(route, request, ctx).await,
        Err(error) => error.into_response(),
    };
    if let Ok(value) = header {
        response.headers_mut().insert("x-request-id", value);
    }
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    tracing::info!(method = %method, status, latency_ms, "request");
    if elapsed > slow {
        tracing::warn!(
            method = %method,
            status,
            latency_ms,
            threshold_ms = slow.as_millis() as u64,
            "Slow request detected"
        );
    }
    if response.status().is_server_error() {
        // A panic or an error was likely reported: send it before Vercel or Lambda may freeze
        // the process after the reply.
        errors.flush(FLUSH_AFTER_ERROR).await;
    }
    response
}

/// How long a 5xx reply waits for its Sentry events to be sent (no wait without Sentry).
const FLUSH_AFTER_ERROR: Duration = Duration::from_secs(2);

async fn run_handler(route: &Route, request: Request<Bytes>, ctx: Ctx) -> Response<Bytes> {
    match AssertUnwindSafe((route.handler)(request, ctx))
        .catch_unwind()
        .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(_) => ApiError::Internal("handler panicked".into()).into_response(),
    }
}

/// Vercel's `x-vercel-id` when present, otherwise a fresh UUID.
fn request_id<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get("x-vercel-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Collects the body, refusing more than `limit` bytes with 413.
async fn read_body<B>(request: Request<B>, limit: usize) -> Result<Request<Bytes>, ApiError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::PayloadTooLarge)
        }
        Err(error) => return Err(ApiError::BadRequest(format!("unreadable body: {error}"))),
    };
    Ok(Request::from_parts(parts, bytes))
}

/// Starts the route binary on the host chosen by cargo features (Vercel by default, AWS Lambda
/// with `lambda`, a single-route local server without either).
pub fn serve(route: &'static Route, file: &str) -> ExitCode {
    if route.source != file {
        eprintln!(
            "route {} is served from {file}: fix the route table",
            route.source
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let state = match crate::startup::init() {
            Ok(state) => state,
            Err(error) => {
                eprintln!("startup failed: {error}");
                return ExitCode::FAILURE;
            }
        };
        let errors = state.errors.clone();
        let code = match run_host(route, state).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %error, "host stopped");
                ExitCode::FAILURE
            }
        };
        errors.flush(FLUSH_AFTER_ERROR).await;
        code
    })
}

#[cfg(feature = "lambda")]
async fn run_host(route: &'static Route, state: Arc<AppState>) -> Result<(), String> {
    lambda::run(route, state).await.map_err(|e| e.to_string())
}

#[cfg(all(feature = "vercel", not(feature = "lambda")))]
async fn run_host(route: &'static Route, state: Arc<AppState>) -> Result<(), String> {
    vercel::run(route, state).await.map_err(|e| e.to_string())
}

#[cfg(not(any(feature = "vercel", feature = "lambda")))]
async fn run_host(route: &'static Route, state: Arc<AppState>) -> Result<(), String> {
    let routes: &'static [&'static Route] = Box::leak(Box::new([route]));
    local::serve_on_port(routes, None, state)
        .await
        .map_err(|e| e.to_string())
}
