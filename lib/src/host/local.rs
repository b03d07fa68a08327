//! The local host: every route on one port at its Vercel path (the dev server), or one route
//! alone (a route binary built without a platform feature). Background work is spawned.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::console::Console;
use super::{handle, Background, Route};
use crate::error::ApiError;
use crate::startup::AppState;

/// Matches request paths to routes the way Vercel does, including `[param]` segments.
pub struct Router {
    routes: Vec<(Vec<Segment>, &'static Route)>,
}

enum Segment {
    Literal(String),
    Param(String),
}

impl Router {
    pub fn new(routes: &[&'static Route]) -> Self {
        let mut routes: Vec<_> = routes.iter().map(|r| (segments(&r.path()), *r)).collect();
        // Literal segments win over parameters: /x/new before /x/[id].
        routes.sort_by_key(|(segs, _)| {
            segs.iter()
                .filter(|s| matches!(s, Segment::Param(_)))
                .count()
        });
        Self { routes }
    }

    /// The route for `path` and the values of its `[param]` segments.
    pub fn resolve(&self, path: &str) -> Option<(&'static Route, Vec<(String, String)>)> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.routes.iter().find_map(|(segs, route)| {
            if segs.len() != parts.len() {
                return None;
            }
            let mut params = Vec::new();
            for (seg, part) in segs.iter().zip(&parts) {
                match seg {
                    Segment::Literal(lit) if lit == part => {}
                    Segment::Param(name) if !part.is_empty() => {
                        params.push((name.clone(), percent_decode(part)))
                    }
                    _ => return None,
                }
            }
            Some((*route, params))
        })
    }
}

fn segments(path: &str) -> Vec<Segment> {
    path.split('/')
        .map(
            |s| match s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

fn percent_decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `uri` with `params` appended to its query string (how Vercel passes `[id]` segments).
pub fn with_query_params(uri: &Uri, params: &[(String, String)]) -> Uri {
    let mut query = url::form_urlencoded::Serializer::new(uri.query().unwrap_or("").to_string());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let path_and_query = format!("{}?{}", uri.path(), query.finish());
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// Answers one request: resolves the route, passes `[param]` values as query parameters;
/// a path no route takes goes to the console, when one is served.
pub async fn dispatch(
    router: &Router,
    console: Option<&Console>,
    state: Arc<AppState>,
    mut request: Request<Incoming>,
) -> Response<bytes::Bytes> {
    let Some((route, params)) = router.resolve(request.uri().path()) else {
        return console
            .and_then(|console| console.answer(request.uri().path()))
            .unwrap_or_else(|| ApiError::RouteNotFound.into_response());
    };
    if !params.is_empty() {
        *request.uri_mut() = with_query_params(request.uri(), &params);
    }
    handle(route, state, request, Background::spawned()).await
}

/// Serves `routes` on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    routes: &[&'static Route],
    state: Arc<AppState>,
) -> std::io::Result<()> {
    serve_with(listener, routes, None, state).await
}

/// Serves `routes`, and `console` (the dev server's) for every other path.
pub async fn serve_with(
    listener: TcpListener,
    routes: &[&'static Route],
    console: Option<Console>,
    state: Arc<AppState>,
) -> std::io::Result<()> {
    let router = Arc::new(Router::new(routes));
    let console = Arc::new(console);
    loop {
        let (stream, _) = listener.accept().await?;
        let (router, console, state) = (router.clone(), console.clone(), state.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (router, console, state) = (router.clone(), console.clone(), state.clone());
                async move {
                    let response =
                        dispatch(&router, console.as_ref().as_ref(), state, request).await;
                    Ok::<_, std::convert::Infallible>(response.map(http_body_util::Full::new))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection closed with an error");
            }
        });
    }
}

/// Binds `127.0.0.1:$PORT` (default 3000) and serves `routes` (and `console`) there.
pub async fn serve_on_port(
    routes: &[&'static Route],
    console: Option<Console>,
    state: Arc<AppState>,
) -> std::io::Result<()> {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    tracing::info!(port, routes = routes.len(), "listening");
    serve_with(listener, routes, console, state).await
}
