//! `POST /api/admin/alerts/[id]/acknowledge`: acknowledge an alert.
assistant::serve!(assistant::routes::admin::alerts::ACKNOWLEDGE);
