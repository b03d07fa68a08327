//! `GET /api/admin/dead-letters`: failed work waiting for a retry.
assistant::serve!(assistant::routes::admin::dead_letters::LIST);
