//! `GET /api/admin/audit-log`: who did what.
assistant::serve!(assistant::routes::admin::audit_log::ROUTE);
