//! `PATCH|DELETE /api/admin/members/[id]?org_id=`: change a role, remove (owners).
assistant::serve!(assistant::routes::admin::members::ONE);
