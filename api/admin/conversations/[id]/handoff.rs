//! `POST /api/admin/conversations/[id]/handoff`: bot <-> human.
assistant::serve!(assistant::routes::admin::conversations::HANDOFF);
