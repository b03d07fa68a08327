//! The one Stripe API call the webhook makes: the current state of a subscription, at the
//! pinned [`API_VERSION`].

use http::StatusCode;
use serde_json::Value;

use super::event::SubscriptionId;
use super::BillingError;
use crate::configuration::{Secret, StripeSettings};

/// The `Stripe-Version` of the refetch, so that the subscription is rendered as the code reads
/// it whatever the account's default version: the newest stable one when this was written,
/// checked 2026-12-08 in Stripe's changelog <https://docs.stripe.com/changelog> (Dahlia). The
/// webhook endpoint should be created at the same version (docs/billing.md).
pub const API_VERSION: &str = "2026-08-26.dahlia";

/// `GET {api_base_url}/v1/subscriptions/{id}` with the secret key and `Stripe-Version:`
/// [`API_VERSION`]: the subscription as Stripe
/// has it now, or `None` when Stripe does not know it (404). Any other answer (5xx, 429, 401
/// for a wrong key) and timeouts are [`BillingError::Unavailable`], so that Stripe delivers the
/// event again later.
pub async fn fetch_subscription(
    http: &reqwest::Client,
    settings: &StripeSettings,
    key: &Secret,
    id: &SubscriptionId,
) -> Result<Option<Value>, BillingError> {
    let url = format!("{}/v1/subscriptions/{}", settings.api_base_url, id.as_str());
    let response = http
        .get(url)
        .bearer_auth(key.expose())
        .header("Stripe-Version", API_VERSION)
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
                Err(BillingError::Unavailable(
                    "answered something else than a subscription".into(),
                ))
            }
        }
        status => Err(BillingError::Unavailable(format!("answered {status}"))),
    }
}

fn unavailable(error: reqwest::Error) -> BillingError {
    BillingError::Unavailable(error.without_url().to_string())
}
