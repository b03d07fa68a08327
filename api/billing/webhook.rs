//! `POST /api/billing/webhook`: Stripe billing events (signature, dedupe, order, apply).
assistant::serve!(assistant::routes::billing::ROUTE);
