//! `GET|HEAD /api/health`: database and dependency status for uptime monitors.
assistant::serve!(assistant::routes::health::ROUTE);
