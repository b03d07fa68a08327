//! `GET /api/cron/retry-failed`: re-drives dead letters and stuck messages.
assistant::serve!(assistant::routes::cron::RETRY_FAILED);
