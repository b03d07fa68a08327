//! `POST /api/admin/rate-limits/reset`: clear an org's or a contact's rate limits.
assistant::serve!(assistant::routes::admin::rate_limits::RESET);
