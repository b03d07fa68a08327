//! `GET /api/admin/me`: the signed-in user, their orgs and roles.
assistant::serve!(assistant::routes::admin::me::ROUTE);
