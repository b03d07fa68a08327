//! `GET /api/admin/openapi.json`: the OpenAPI 3.1 document (public).
assistant::serve!(assistant::routes::admin::openapi::ROUTE);
