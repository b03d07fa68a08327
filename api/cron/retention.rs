//! `GET /api/cron/retention`: deletes rows past their retention, in bounded batches.
assistant::serve!(assistant::routes::cron::RETENTION);
