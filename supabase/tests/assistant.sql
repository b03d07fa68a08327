-- The assistant's database side (20261123000003_whatsapp.sql, 20261123000006_assistant.sql):
-- what a claim returns, token periods and daily use, the ledger written with the outcome, and
-- the tool functions.
begin;
create extension if not exists pgtap;
select plan(27);

-- Fixtures: one org, its number, settings, a contact in Madrid and a conversation.
insert into public.orgs (id, name, monthly_token_budget, token_period_started_at) values
  ('e0000000-0000-4000-8000-000000000000', 'Assistant test org', 5000, now() - interval '2 days'),
  ('e0000000-0000-4000-8000-000000000100', 'Old period org', 5000, now() - interval '3 months');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000000', 'test-pnid-assistant', '+1 555 000 0099');
insert into public.assistant_settings (org_id, language, timezone, contact_daily_token_cap) values
  ('e0000000-0000-4000-8000-000000000000', 'es', 'Europe/Madrid', 777);
insert into public.contacts (id, org_id, wa_id, locale, timezone) values
  ('e0000000-0000-4000-8000-000000000002', 'e0000000-0000-4000-8000-000000000000', '34600000099', 'es_ES', 'Europe/Madrid');
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id, last_inbound_at) values
  ('e0000000-0000-4000-8000-000000000003', 'e0000000-0000-4000-8000-000000000000',
   'e0000000-0000-4000-8000-000000000002', 'e0000000-0000-4000-8000-000000000001', now());
insert into public.messages (id, org_id, conversation_id, contact_id, direction, type, body, status, created_at) values
  ('e0000000-0000-4000-8000-000000000011', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000003',
   'e0000000-0000-4000-8000-000000000002', 'inbound', 'text', 'first', 'processed', now() - interval '4 minutes'),
  ('e0000000-0000-4000-8000-000000000012', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000003',
   'e0000000-0000-4000-8000-000000000002', 'outbound', 'text', 'second', 'sent', now() - interval '3 minutes'),
  ('e0000000-0000-4000-8000-000000000013', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000003',
   'e0000000-0000-4000-8000-000000000002', 'inbound', 'image', null, 'processed', now() - interval '2 minutes'),
  ('e0000000-0000-4000-8000-000000000014', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000003',
   'e0000000-0000-4000-8000-000000000002', 'outbound', 'text', 'third', 'sent', now() - interval '1 minute'),
  ('e0000000-0000-4000-8000-000000000015', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000003',
   'e0000000-0000-4000-8000-000000000002', 'inbound', 'text', 'now', 'received', now());
insert into public.ai_requests (org_id, contact_id, provider, model, tokens_in, tokens_out, status, created_at) values
  ('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 'openai', 'gpt-4o-mini', 100, 10, 'success', now() - interval '3 days'),
  ('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 'openai', 'gpt-4o-mini', 200, 20, 'success', now() - interval '1 day'),
  ('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 'openai', 'gpt-4o-mini', 300, 30, 'success', now());

-- ---------------------------------------------------------------------------------------------
-- The claim
-- ---------------------------------------------------------------------------------------------
create temp table claimed as
select public.whatsapp_claim_message('e0000000-0000-4000-8000-000000000015', 120, 2) as c;

select is((select jsonb_array_length(c -> 'history') from claimed), 2,
  'history is bounded by p_history');
select is((select c -> 'history' -> 0 ->> 'body' from claimed), 'second',
  'history is oldest first, skips messages without a text, excludes the claimed one');
select is((select c -> 'history' -> 1 ->> 'direction' from claimed), 'outbound', 'history says who wrote');
select is((select (c -> 'budget' ->> 'used_tokens')::int from claimed), 550,
  'org use counts from token_period_started_at (2 days ago), not before');
select is((select (c -> 'budget' ->> 'contact_daily_cap')::int from claimed), 777,
  'the contact''s daily cap comes from the settings');
select ok((select (c -> 'budget' ->> 'contact_used_today')::int from claimed) in (330, 550),
  'the contact''s use today counts from local midnight');
select is((select c -> 'settings' ->> 'fallback_model' from claimed), 'claude-haiku-5-5',
  'settings carry the fallback model');
select is((select jsonb_array_length(c -> 'settings' -> 'enabled_tools') from claimed), 7,
  'settings carry the enabled tools');
select is((select c -> 'contact' ->> 'locale' from claimed), 'es_ES', 'the contact''s locale');

select is(private.token_period_start(now() - interval '3 months'), date_trunc('month', now()),
  'a period older than a month counts from the start of the calendar month');
select is(private.local_day_start('Not/AZone'), date_trunc('day', now() at time zone 'UTC') at time zone 'UTC',
  'an unknown zone falls back to UTC midnight');

-- ---------------------------------------------------------------------------------------------
-- The ledger, written with the outcome (twice: nothing doubles)
-- ---------------------------------------------------------------------------------------------
select public.whatsapp_finish_message('e0000000-0000-4000-8000-000000000015', (select (c ->> 'token')::uuid from claimed), '{
  "ledger": {
    "ai_requests": [{"id": "e0000000-0000-4000-8000-0000000000a1", "provider": "openai", "model": "gpt-4o-mini",
                     "tokens_in": 250, "tokens_out": 30, "tokens_cached": 100, "cost_usd": 0.000048,
                     "latency_ms": 420, "status": "success", "error": null, "at": "2026-01-01T00:00:00Z"}],
    "tool_executions": [{"id": "e0000000-0000-4000-8000-0000000000b1", "ai_request_id": "e0000000-0000-4000-8000-0000000000a1",
                         "tool": "create_reminder", "input": {"text": "x"}, "output": {"ok": true},
                         "status": "success", "error": null, "latency_ms": 12, "at": "2026-01-01T00:00:01Z"}]},
  "transcript": "recuérdame algo"}');
select public.whatsapp_finish_message('e0000000-0000-4000-8000-000000000015', (select (c ->> 'token')::uuid from claimed), '{
  "ledger": {"ai_requests": [{"id": "e0000000-0000-4000-8000-0000000000a1", "provider": "openai", "model": "gpt-4o-mini", "status": "success"}]}}');

select results_eq(
  $$ select provider, tokens_in, tokens_out, tokens_cached, cost_usd, latency_ms, message_id, contact_id, created_at
     from public.ai_requests where id = 'e0000000-0000-4000-8000-0000000000a1' $$,
  $$ values ('openai', 250, 30, 100, 0.000048::numeric, 420, 'e0000000-0000-4000-8000-000000000015'::uuid,
             'e0000000-0000-4000-8000-000000000002'::uuid, '2026-01-01T00:00:00Z'::timestamptz) $$,
  'an attempt is recorded once, for the message and contact, at its own time');
select is((select count(*)::int from public.tool_executions where ai_request_id = 'e0000000-0000-4000-8000-0000000000a1'), 1,
  'its tool run is linked to it');
select is((select body from public.messages where id = 'e0000000-0000-4000-8000-000000000015'), 'now',
  'a transcript never replaces a text');

insert into public.messages (id, org_id, conversation_id, contact_id, direction, type, body, status) values
  ('e0000000-0000-4000-8000-000000000016', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000003',
   'e0000000-0000-4000-8000-000000000002', 'inbound', 'text', 'later', 'received');
select public.whatsapp_fail_message('e0000000-0000-4000-8000-000000000016',
  (public.whatsapp_claim_message('e0000000-0000-4000-8000-000000000016') ->> 'token')::uuid,
  'no AI provider answered', null, null,
  '{"ai_requests": [{"id": "e0000000-0000-4000-8000-0000000000a2", "provider": "anthropic", "model": "claude-3-5-haiku-latest", "status": "error", "error": "HTTP 529"}]}');
select is((select status from public.ai_requests where id = 'e0000000-0000-4000-8000-0000000000a2'), 'error',
  'a failed turn''s attempts are recorded with the dead letter');
select is((select count(*)::int from public.dead_letter_queue where ref = 'e0000000-0000-4000-8000-000000000016'), 1,
  'and the message is dead-lettered');

-- ---------------------------------------------------------------------------------------------
-- Tools
-- ---------------------------------------------------------------------------------------------
insert into public.reminders (id, org_id, contact_id, text, due_at) values
  ('e0000000-0000-4000-8000-000000000021', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 'third', now() + interval '3 days'),
  ('e0000000-0000-4000-8000-000000000022', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 'first', now() + interval '1 day'),
  ('e0000000-0000-4000-8000-000000000023', 'e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 'second', now() + interval '2 days');

select is(public.assistant_cancel_reminder('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 2) ->> 'text',
  'second', 'reminders are numbered in due order');
select is(public.assistant_cancel_reminder('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 3),
  null, 'a cancelled reminder leaves the numbering');
select is(public.assistant_cancel_reminder('e0000000-0000-4000-8000-000000000100', 'e0000000-0000-4000-8000-000000000002', 1),
  null, 'another org''s scope cancels nothing');
select is(public.assistant_cancel_reminder('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 1,
  'e0000000-0000-4000-8000-000000000015:cancel_reminder:1') ->> 'text', 'first', 'a keyed cancellation');
select is(public.assistant_cancel_reminder('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 1,
  'e0000000-0000-4000-8000-000000000015:cancel_reminder:1') ->> 'text', 'first',
  'retried, it returns the reminder it cancelled, not the next one');
select is((select status from public.reminders where id = 'e0000000-0000-4000-8000-000000000021'), 'pending',
  'the next one stays pending');
select is(public.assistant_cancel_reminder('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000099', null,
  'e0000000-0000-4000-8000-000000000017:cancel_reminder:1', 'e0000000-0000-4000-8000-000000000021'),
  null, 'a tapped choice cancels only the contact''s own reminder');
select is(public.assistant_cancel_reminder('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', null,
  'e0000000-0000-4000-8000-000000000018:cancel_reminder:1', 'e0000000-0000-4000-8000-000000000021') ->> 'text',
  'third', 'a tapped choice cancels the reminder it names, whatever its number');

insert into public.expenses (org_id, contact_id, amount, currency, category, spent_at) values
  ('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 10.00, 'EUR', 'food', now()),
  ('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 2.50, 'EUR', 'food', now()),
  ('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 7.00, 'USD', 'Transport', now()),
  ('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 99.00, 'EUR', 'food', now() - interval '40 days');
select is(
  public.assistant_expense_summary('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002',
                                   now() - interval '1 day', now() + interval '1 day'),
  '[{"count": 2, "total": 12.50, "category": "food", "currency": "EUR"},
    {"count": 1, "total": 7.00, "category": "Transport", "currency": "USD"}]'::jsonb,
  'expenses are summed by currency and category within the range');
select is(
  public.assistant_expense_summary('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002',
                                   now() - interval '1 day', now() + interval '1 day', 'transport') -> 0 ->> 'currency',
  'USD', 'a category filter ignores case');

set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000001","role":"authenticated"}';
select throws_ok(
  $$ select public.assistant_cancel_reminder('e0000000-0000-4000-8000-000000000000', 'e0000000-0000-4000-8000-000000000002', 1) $$,
  '42501', null, 'users cannot call the assistant''s tool functions');
reset role;

select * from finish();
rollback;
