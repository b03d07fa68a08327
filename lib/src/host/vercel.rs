//! Vercel host (`vercel_runtime` 2.x): background work goes through `wait_until`.

use std::sync::Arc;

use vercel_runtime::{Response, ResponseBody};

use super::{handle, Background, Route};
use crate::startup::AppState;

/// Serves `route` with Vercel's runtime until the platform stops the process.
pub async fn run(route: &'static Route, state: Arc<AppState>) -> Result<(), vercel_runtime::Error> {
    let service = vercel_runtime::service_fn(
        move |request: vercel_runtime::Request, vercel: vercel_runtime::AppState| {
            let state = state.clone();
            async move {
                let response = handle(
                    route,
                    state,
                    request,
                    Background(super::Mode::Vercel(vercel)),
                )
                .await;
                Ok::<Response<ResponseBody>, vercel_runtime::Error>(
                    response.map(ResponseBody::from),
                )
            }
        },
    );
    vercel_runtime::run(service).await
}
