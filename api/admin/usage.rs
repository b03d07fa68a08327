//! `GET /api/admin/usage?org_id=`: AI cost and tokens per day and per contact.
assistant::serve!(assistant::routes::admin::usage::ROUTE);
