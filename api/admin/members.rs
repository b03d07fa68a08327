//! `GET|POST /api/admin/members?org_id=`: list members, add one (owners).
assistant::serve!(assistant::routes::admin::members::LIST);
