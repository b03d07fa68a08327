//! `GET /api/admin/conversations`: the inbox, newest activity first.
assistant::serve!(assistant::routes::admin::conversations::LIST);
