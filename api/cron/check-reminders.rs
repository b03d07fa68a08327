//! `GET /api/cron/check-reminders`: sends due reminders (Vercel Cron, bearer `CRON_SECRET`).
assistant::serve!(assistant::routes::cron::CHECK_REMINDERS);
