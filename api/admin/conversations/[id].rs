//! `GET /api/admin/conversations/[id]`: a conversation with its messages.
assistant::serve!(assistant::routes::admin::conversations::ONE);
