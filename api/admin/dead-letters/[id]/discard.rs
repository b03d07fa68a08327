//! `POST /api/admin/dead-letters/[id]/discard`: give up on a dead letter.
assistant::serve!(assistant::routes::admin::dead_letters::DISCARD);
