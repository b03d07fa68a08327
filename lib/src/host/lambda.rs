//! AWS Lambda host (`lambda_http`): background work is awaited before the reply, because
//! Lambda freezes the process as soon as it has answered.

use std::sync::Arc;

use bytes::Bytes;
use lambda_http::{Body, RequestExt};

use super::{handle, Background, Route};
use crate::startup::AppState;

/// Serves `route` as a Lambda function (API Gateway REST/HTTP or ALB events).
pub async fn run(route: &'static Route, state: Arc<AppState>) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_http::service_fn(
        move |request: lambda_http::Request| {
            let state = state.clone();
            async move {
                let request = with_path_parameters_in_query(request);
                let (parts, body) = request.into_parts();
                let request = http::Request::from_parts(
                    parts,
                    http_body_util::Full::new(Bytes::copy_from_slice(body.as_ref())),
                );
                let background = Background::deferred();
                let response = handle(route, state, request, background.clone()).await;
                background.drain().await;
                Ok::<_, lambda_http::Error>(response.map(|bytes| Body::Binary(bytes.to_vec())))
            }
        },
    ))
    .await
}

/// API Gateway passes `{id}` as a path parameter; handlers read it from the query string, the
/// way Vercel passes `[id]`.
fn with_path_parameters_in_query(request: lambda_http::Request) -> lambda_http::Request {
    let params: Vec<(String, String)> = request
        .path_parameters()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    if params.is_empty() {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    parts.uri = super::local::with_query_params(&parts.uri, &params);
    lambda_http::Request::from_parts(parts, body)
}
