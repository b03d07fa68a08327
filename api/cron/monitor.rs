//! `GET /api/cron/monitor`: opens and resolves threshold alerts.
assistant::serve!(assistant::routes::cron::MONITOR);
