//! PostgREST failures, typed.

use serde::Deserialize;

/// PostgREST's error body (`code`, `message`, `details`, `hint`) with the HTTP status.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PostgrestError {
    #[serde(skip)]
    pub status: u16,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
}

/// Why a PostgREST call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// PostgREST answered with an error. `details` may hold row data: not in `Display`.
    #[error("PostgREST answered {}: {} {}", .0.status, .0.code, .0.message)]
    Api(PostgrestError),
    /// No answer: connection refused, reset or timed out.
    #[error("PostgREST unreachable: {0}")]
    Transport(#[source] reqwest::Error),
    /// An answer that does not have the expected shape.
    #[error("unexpected PostgREST response: {0}")]
    Decode(String),
}

impl DbError {
    /// Whether the database (or PostgREST) is down or the transaction lost a race (deadlock,
    /// serialization) rather than the request being wrong: the caller should answer 503 so
    /// that the sender retries.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Api(e) => {
                matches!(e.status, 502..=504)
                    || e.code.starts_with("PGRST00")
                    || matches!(e.code.as_str(), "40001" | "40P01")
            }
            Self::Decode(_) => false,
        }
    }

    /// The PostgreSQL or PostgREST error code, when PostgREST answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    pub(super) fn from_response(status: u16, body: &[u8]) -> Self {
        let mut error = serde_json::from_slice::<PostgrestError>(body).unwrap_or(PostgrestError {
            status,
            code: String::new(),
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
            details: None,
            hint: None,
        });
        error.status = status;
        Self::Api(error)
    }
}

impl From<reqwest::Error> for DbError {
    /// Drops the URL: its query string can hold filter values.
    fn from(error: reqwest::Error) -> Self {
        Self::Transport(error.without_url())
    }
}
