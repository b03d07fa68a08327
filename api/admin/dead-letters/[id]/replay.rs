//! `POST /api/admin/dead-letters/[id]/replay`: retry a dead letter now.
assistant::serve!(assistant::routes::admin::dead_letters::REPLAY);
