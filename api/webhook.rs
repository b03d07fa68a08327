//! `GET|POST /api/webhook`: the WhatsApp Cloud API webhook.
assistant::serve!(assistant::routes::webhook::ROUTE);
