//! The one Stripe API call the webhook makes: the current state of a subscription.

use http::StatusCode;
use serde_json::Value;

use super::event::SubscriptionId;
use crate::configuration::{Secret, StripeSettings};
use crate::error::ApiError;

/// `GET {api_base_url}/v1/subscriptions/{id}` with the secret key: the subscription as Stripe
/// has it now, or `None` when Stripe does not know it (404). Any other answer (5xx, 429, 401
/// for a wrong key) and timeouts are [`ApiError::Unavailable`], so that Stripe delivers the
/// event again later.
pub async fn fetch_subscription(
    http: &reqwest::Client,
    settings: &StripeSettings,
    key: &Secret,
    id: &SubscriptionId,
) -> Result<Option<Value>, ApiError> {
    let url = format!("{}/v1/subscriptions/{}", settings.api_base_url, id.as_str());
    let response = http
        .get(url)
        .bearer_auth(key.expose())
        .timeout(settings.api_timeout)
        .send()
        .await
        .map_err(unavailable)?;
    match response.status() {
        StatusCode::NOT_FOUND => Ok(None),
        status if status.is_success() => {
            let subscription: Value = response.json().await.map_err(unavailable)?;
            if subscription["object"] == "subscription" {
                Ok(Some(subscription))
            } else {
                Err(ApiError::Unavailable(
                    "the Stripe API answered something else than a subscription".into(),
                ))
            }
        }
        status => Err(ApiError::Unavailable(format!(
            "the Stripe API answered {status}"
        ))),
    }
}

fn unavailable(error: reqwest::Error) -> ApiError {
    ApiError::Unavailable(format!("the Stripe API: {}", error.without_url()))
}
