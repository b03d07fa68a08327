//! `POST /api/admin/conversations/[id]/messages`: a staff reply.
assistant::serve!(assistant::routes::admin::conversations::MESSAGES);
