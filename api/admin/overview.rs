//! `GET /api/admin/overview?org_id=`: an org's dashboard.
assistant::serve!(assistant::routes::admin::overview::ROUTE);
