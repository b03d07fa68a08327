-- One statement records a send's outcome (private.record_send_outcome, 20261123000003_whatsapp.sql),
-- and the rules written once (the 24 h window, the template language, a claimable message).
begin;
create extension if not exists pgtap;
select plan(21);

insert into public.orgs (id, name) values ('5e0d0000-0000-4000-8000-000000000000', 'Send Outcome Org');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('5e0d0000-0000-4000-8000-000000000001', '5e0d0000-0000-4000-8000-000000000000', '9900000005e0d', '+1 555 000 0077');
insert into public.contacts (id, org_id, wa_id) values
  ('5e0d0000-0000-4000-8000-000000000002', '5e0d0000-0000-4000-8000-000000000000', '19990000077');
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id, last_inbound_at) values
  ('5e0d0000-0000-4000-8000-000000000003', '5e0d0000-0000-4000-8000-000000000000',
   '5e0d0000-0000-4000-8000-000000000002', '5e0d0000-0000-4000-8000-000000000001', now() - interval '25 hours');
-- a1..a4: outbound messages being sent; a5: one a status report already moved to delivered.
insert into public.messages (id, org_id, conversation_id, contact_id, direction, type, body, status, wa_message_id) values
  ('5e0d0000-0000-4000-8000-0000000000a1', '5e0d0000-0000-4000-8000-000000000000', '5e0d0000-0000-4000-8000-000000000003',
   '5e0d0000-0000-4000-8000-000000000002', 'outbound', 'text', 'one', 'sending', null),
  ('5e0d0000-0000-4000-8000-0000000000a2', '5e0d0000-0000-4000-8000-000000000000', '5e0d0000-0000-4000-8000-000000000003',
   '5e0d0000-0000-4000-8000-000000000002', 'outbound', 'text', 'two', 'sending', 'wamid.earlier'),
  ('5e0d0000-0000-4000-8000-0000000000a3', '5e0d0000-0000-4000-8000-000000000000', '5e0d0000-0000-4000-8000-000000000003',
   '5e0d0000-0000-4000-8000-000000000002', 'outbound', 'text', 'three', 'sending', null),
  ('5e0d0000-0000-4000-8000-0000000000a5', '5e0d0000-0000-4000-8000-000000000000', '5e0d0000-0000-4000-8000-000000000003',
   '5e0d0000-0000-4000-8000-000000000002', 'outbound', 'text', 'five', 'delivered', null);

-- Exactly one statement in the migrations sets a message's status from a sender's result.
select is((select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
           where n.nspname in ('public', 'private') and p.prosrc ~ 'payload \|\| jsonb_build_object\(''wamids'''),
  1, 'one function writes a send''s wamids on its message');

-- A failure: the error stored as given (a string or {message}), an earlier wamid kept.
select is((private.record_send_outcome('5e0d0000-0000-4000-8000-0000000000a2',
  '{"status": "failed", "error": "refused"}')).status, 'failed', 'a failure is recorded');
select is((select error from public.messages where id = '5e0d0000-0000-4000-8000-0000000000a2'),
  '"refused"'::jsonb, 'a string error is stored as given');
select is((select wa_message_id from public.messages where id = '5e0d0000-0000-4000-8000-0000000000a2'),
  'wamid.earlier', 'a result without a wamid keeps the earlier one');
select ok((private.record_send_outcome('5e0d0000-0000-4000-8000-0000000000a2',
  '{"status": "sent", "wamid": "wamid.again", "wamids": ["wamid.again"]}')).id is null,
  'only while sending: a finished message is not recorded again');
select is((private.record_send_outcome('5e0d0000-0000-4000-8000-0000000000a3',
  '{"status": "failed", "wamids": [], "error": {"message": "no template"}}')).error,
  '{"message": "no template"}'::jsonb, 'an {message} error is stored as given');

-- A success: wamid, wamids, type and parts recorded, any earlier error cleared.
update public.messages set error = '{"message": "old"}' where id = '5e0d0000-0000-4000-8000-0000000000a1';
select is((private.record_send_outcome('5e0d0000-0000-4000-8000-0000000000a1',
  '{"status": "sent", "wamid": "wamid.a1", "wamids": ["wamid.a1", "wamid.a1b"], "type": "template"}')).status,
  'sent', 'a success is recorded');
select is((select row(wa_message_id, type, payload -> 'wamids', error)::text from public.messages
           where id = '5e0d0000-0000-4000-8000-0000000000a1'),
  row('wamid.a1', 'template', '["wamid.a1", "wamid.a1b"]'::jsonb, null::jsonb)::text,
  'wamid, type and wamids recorded, the old error cleared');
select is((select count(*)::int from private.whatsapp_message_parts where message_id = '5e0d0000-0000-4000-8000-0000000000a1'),
  2, 'one part per wamid');
select throws_ok($$ select private.record_send_outcome('5e0d0000-0000-4000-8000-0000000000a3', '{"status": "delivered"}') $$,
  '22023', 'status must be sent, simulated or failed', 'a status a sender cannot report raises');

-- Overtaken by a status report: the holder records its delivered result, nobody else does, and
-- a failure never overrides the report.
select ok((private.record_send_outcome('5e0d0000-0000-4000-8000-0000000000a5',
  '{"status": "sent", "wamid": "wamid.a5", "wamids": ["wamid.a5"]}')).id is null,
  'without the send''s hold, a message past sending is left alone');
select ok((private.record_send_outcome('5e0d0000-0000-4000-8000-0000000000a5',
  '{"status": "failed", "error": {"message": "x"}}', true)).id is null,
  'a failure is never recorded over a status report');
select is((private.record_send_outcome('5e0d0000-0000-4000-8000-0000000000a5',
  '{"status": "sent", "wamid": "wamid.a5", "wamids": ["wamid.a5"]}', true)).wa_message_id,
  'wamid.a5', 'the holder records the send''s wamid after a status report');

-- The window, written once.
select is((select is_open from public.messaging_windows where conversation_id = '5e0d0000-0000-4000-8000-000000000003'),
  false, 'a window 25 hours old is closed');
select is((select expires_at from public.messaging_windows where conversation_id = '5e0d0000-0000-4000-8000-000000000003'),
  (select last_inbound_at + interval '24 hours' from public.conversations where id = '5e0d0000-0000-4000-8000-000000000003'),
  'it expired 24 hours after the last inbound message');
select is(private.window_open(now() - interval '23 hours'), true, 'a window 23 hours old is open');
select is(private.window_open(null), false, 'no inbound message: closed');
select is(private.template_language(null), 'en_US', 'the template language defaults to en_US');
select is(private.template_language('es'), 'es', 'an org''s template language is kept');

-- Inlinable: plain SQL functions without a set clause (a plan shows their expressions).
select is((select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
           where n.nspname = 'private'
             and p.proname in ('window_open', 'window_expires_at', 'template_language', 'message_claimable')
             and p.prolang = (select oid from pg_language where lanname = 'sql')
             and p.proconfig is null and not p.prosecdef and p.provolatile in ('i', 's')),
  4, 'the shared rules are inlinable SQL functions');
select ok((select private.message_claimable(m) from public.messages m
           where m.id = '5e0d0000-0000-4000-8000-0000000000a1') = false, 'an outbound message is never claimable');

select * from finish();
rollback;
