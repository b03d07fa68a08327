//! `GET /api/admin/config.json`: the admin console's public configuration.
assistant::serve!(assistant::routes::admin::config::ROUTE);
