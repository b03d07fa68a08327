//! `POST /api/admin/contacts/[id]/erase`: erase a contact's data on request.
assistant::serve!(assistant::routes::admin::contacts::ERASE);
