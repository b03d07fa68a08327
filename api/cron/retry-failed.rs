//! `GET /api/cron/retry-failed`: re-drives dead letters and stuck messages; webhooks retention.
assistant::serve!(assistant::routes::cron::RETRY_FAILED);
