//! `GET /api/admin/alerts`: the alerts of the caller's orgs.
assistant::serve!(assistant::routes::admin::alerts::LIST);
