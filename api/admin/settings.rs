//! `GET|PUT /api/admin/settings?org_id=`: the org's assistant settings.
assistant::serve!(assistant::routes::admin::settings::ROUTE);
