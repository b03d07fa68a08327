//! Sending a text the way WhatsApp's 24-hour customer-service window allows: freeform inside
//! it; outside it (or when Meta answers 131047) the org's approved template, with the text as
//! its body parameter. Throttled sends are tried three times with backoff, but only when Meta
//! certainly did not take the message: a send is never repeated after an unknown outcome.

use std::time::Duration;

use super::{GraphAction, GraphError, Outgoing, Sent, WhatsApp};
use crate::domain::{PhoneNumberId, WaId};

/// An approved template whose one body parameter carries the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// The template's language code, e.g. `en_US`.
    pub language: String,
}

/// Why a text was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Outside the window, and the org has no approved template for it.
    #[error("outside the 24 h window and no approved template is configured")]
    NoTemplate,
}

/// A template body parameter is limited to 1024 characters.
const MAX_PARAMETER_CHARS: usize = 1024;

impl WhatsApp {
    /// Sends `text` from `from` to `to`: freeform when `window_open`, else (or when Meta answers
    /// 131047) `template`. Returns what was sent and the message type (`text` | `template`).
    pub async fn deliver(
        &self,
        from: &PhoneNumberId,
        to: &WaId,
        text: String,
        window_open: bool,
        template: Option<Template>,
        retry_base: Duration,
    ) -> Result<(Sent, &'static str), DeliveryError> {
        if window_open {
            match self
                .send_retrying(from, to, &Outgoing::Text(text.clone()), retry_base)
                .await
            {
                Ok(sent) => return Ok((sent, "text")),
                Err(error) if error.action() == GraphAction::TemplateFallback => {
                    tracing::info!(
                        "outside the 24 h window (131047): falling back to the template"
                    );
                }
                Err(error) => return Err(error.into()),
            }
        }
        let template = template.ok_or(DeliveryError::NoTemplate)?;
        let message = Outgoing::Template {
            name: template.name,
            language: template.language,
            parameters: vec![text.chars().take(MAX_PARAMETER_CHARS).collect()],
        };
        let sent = self.send_retrying(from, to, &message, retry_base).await?;
        Ok((sent, "template"))
    }

    /// Sends with up to three tries when Meta throttles (130429, 131056, 4), fails (5xx) or
    /// cannot be reached, as long as the failed try certainly did not send.
    pub async fn send_retrying(
        &self,
        from: &PhoneNumberId,
        to: &WaId,
        message: &Outgoing,
        base: Duration,
    ) -> Result<Sent, GraphError> {
        let mut attempt = 0;
        loop {
            match self.send(from, to, message).await {
                Err(error)
                    if error.action() == GraphAction::Retry
                        && !error.maybe_sent()
                        && attempt < 2 =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff(base, attempt)).await;
                }
                result => return result,
            }
        }
    }
}

/// `base * 2^(attempt-1)`, with up to 50 % jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let exact = base * 2u32.pow(attempt - 1);
    exact + exact.mul_f64(f64::from(nanos % 500) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let base = Duration::from_millis(100);
        let second = backoff(base, 2);
        assert!(second >= Duration::from_millis(200) && second < Duration::from_millis(300));
    }
}
