-- Behaviour of the schema's functions, triggers and views.
begin;
create extension if not exists pgtap;
select plan(33);

-- A fresh org of its own, so the seed does not matter.
insert into public.plans (name, monthly_token_budget) values ('free', 100000) on conflict (name) do nothing;
insert into public.orgs (id, name) values ('f0000000-0000-4000-8000-000000000000', 'Functions Test Org');
insert into auth.users (id, email) values
  ('f0000000-0000-4000-8000-0000000000a1', 'owner@functions.test'),
  ('f0000000-0000-4000-8000-0000000000a2', 'admin@functions.test');
insert into public.org_members (org_id, user_id, role) values
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-0000000000a1', 'owner'),
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-0000000000a2', 'admin');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('f0000000-0000-4000-8000-000000000001', 'f0000000-0000-4000-8000-000000000000', 'fn-test-pnid', '+1 555 000 0009');
insert into public.contacts (id, org_id, wa_id, updated_at) values
  ('f0000000-0000-4000-8000-000000000011', 'f0000000-0000-4000-8000-000000000000', '19990000011', '2000-01-01'),
  ('f0000000-0000-4000-8000-000000000012', 'f0000000-0000-4000-8000-000000000000', '19990000012', '2000-01-01'),
  ('f0000000-0000-4000-8000-000000000013', 'f0000000-0000-4000-8000-000000000000', '19990000013', '2000-01-01'),
  ('f0000000-0000-4000-8000-000000000014', 'f0000000-0000-4000-8000-000000000000', '19990000014', '2000-01-01');

-- ---------------------------------------------------------------------------------------------
-- rate_limit_hit
-- ---------------------------------------------------------------------------------------------
set local role service_role;
select results_eq($$ select hits, allowed from public.rate_limit_hit('fn:k1', 60, 2, 'f0000000-0000-4000-8000-000000000000') $$,
  $$ values (1, true) $$, 'first hit is allowed');
select results_eq($$ select hits, allowed from public.rate_limit_hit('fn:k1', 60, 2, 'f0000000-0000-4000-8000-000000000000') $$,
  $$ values (2, true) $$, 'a hit at the limit is allowed');
select results_eq($$ select hits, allowed from public.rate_limit_hit('fn:k1', 60, 2, 'f0000000-0000-4000-8000-000000000000') $$,
  $$ values (3, false) $$, 'a hit past the limit is refused and still counted');
select results_eq($$ select hits, allowed from public.rate_limit_hit('fn:k2', 60, 2) $$,
  $$ values (1, true) $$, 'another key has its own counter');
reset role;

select is(
  (select window_start from public.rate_limits where key = 'fn:k1'),
  to_timestamp(floor(extract(epoch from now()) / 60) * 60),
  'window_start is now() floored to the window');
select is(
  (select org_id from public.rate_limits where key = 'fn:k1'),
  'f0000000-0000-4000-8000-000000000000'::uuid, 'the counter records its org');
select is(
  (select count(*)::int from public.rate_limits where key = 'fn:k1'), 1,
  'one row per (key, window)');

-- An earlier window does not count towards the current one.
insert into public.rate_limits (key, window_start, count)
values ('fn:k3', to_timestamp(floor(extract(epoch from now()) / 60) * 60) - interval '60 seconds', 100);
select results_eq($$ select hits, allowed from public.rate_limit_hit('fn:k3', 60, 5) $$,
  $$ values (1, true) $$, 'a new window starts from zero');

select throws_ok($$ select * from public.rate_limit_hit('fn:bad', 0, 5) $$,
  '22023', null, 'a window of 0 seconds is refused');
select throws_ok($$ select * from public.rate_limit_hit(null, 60, 5) $$,
  '22023', null, 'a null key is refused');

-- ---------------------------------------------------------------------------------------------
-- set_updated_at
-- ---------------------------------------------------------------------------------------------
update public.contacts set name = 'Touched' where id = 'f0000000-0000-4000-8000-000000000011';
select is(
  (select updated_at from public.contacts where id = 'f0000000-0000-4000-8000-000000000011'), now(),
  'an update stamps updated_at');
select is(
  (select updated_at from public.contacts where id = 'f0000000-0000-4000-8000-000000000012'),
  '2000-01-01'::timestamptz, 'untouched rows keep their updated_at');
update public.contacts set updated_at = '1999-01-01' where id = 'f0000000-0000-4000-8000-000000000012';
select is(
  (select updated_at from public.contacts where id = 'f0000000-0000-4000-8000-000000000012'), now(),
  'updated_at cannot be set by hand on update');

select is_empty($$
  select c.relname
  from pg_class c
  join pg_attribute a on a.attrelid = c.oid and a.attname = 'updated_at' and not a.attisdropped
  where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
    and not exists (
      select 1 from pg_trigger t
      where t.tgrelid = c.oid and not t.tgisinternal
        and t.tgfoid = 'public.set_updated_at()'::regprocedure
        and t.tgtype & 2 = 2    -- BEFORE
        and t.tgtype & 16 = 16  -- UPDATE
    ) $$,
  'every table with updated_at has a BEFORE UPDATE set_updated_at trigger');

-- ---------------------------------------------------------------------------------------------
-- messaging_windows
-- ---------------------------------------------------------------------------------------------
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id, last_inbound_at) values
  ('f0000000-0000-4000-8000-000000000021', 'f0000000-0000-4000-8000-000000000000',
   'f0000000-0000-4000-8000-000000000011', 'f0000000-0000-4000-8000-000000000001', now() - interval '1 hour'),
  ('f0000000-0000-4000-8000-000000000022', 'f0000000-0000-4000-8000-000000000000',
   'f0000000-0000-4000-8000-000000000012', 'f0000000-0000-4000-8000-000000000001', now() - interval '25 hours'),
  ('f0000000-0000-4000-8000-000000000023', 'f0000000-0000-4000-8000-000000000000',
   'f0000000-0000-4000-8000-000000000013', 'f0000000-0000-4000-8000-000000000001', null),
  ('f0000000-0000-4000-8000-000000000024', 'f0000000-0000-4000-8000-000000000000',
   'f0000000-0000-4000-8000-000000000014', 'f0000000-0000-4000-8000-000000000001', now() - interval '24 hours');

select results_eq(
  $$ select is_open, expires_at from public.messaging_windows
     where conversation_id = 'f0000000-0000-4000-8000-000000000021' $$,
  $$ values (true, now() + interval '23 hours') $$,
  'a window with an inbound message 1 h ago is open and expires in 23 h');
select results_eq(
  $$ select is_open from public.messaging_windows where conversation_id = 'f0000000-0000-4000-8000-000000000022' $$,
  $$ values (false) $$, 'a window with the last inbound message 25 h ago is closed');
select results_eq(
  $$ select is_open, expires_at from public.messaging_windows
     where conversation_id = 'f0000000-0000-4000-8000-000000000023' $$,
  $$ values (false, null::timestamptz) $$, 'a conversation without inbound messages has no open window');
select results_eq(
  $$ select is_open from public.messaging_windows where conversation_id = 'f0000000-0000-4000-8000-000000000024' $$,
  $$ values (false) $$, 'a window closes exactly 24 h after the last inbound message');

-- ---------------------------------------------------------------------------------------------
-- Operator views
-- ---------------------------------------------------------------------------------------------
insert into public.messages (org_id, conversation_id, contact_id, direction, type, status, created_at) values
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000021',
   'f0000000-0000-4000-8000-000000000011', 'inbound', 'text', 'received', now()),
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000021',
   'f0000000-0000-4000-8000-000000000011', 'inbound', 'text', 'processing', now() - interval '2 hours'),
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000021',
   'f0000000-0000-4000-8000-000000000011', 'outbound', 'text', 'failed', now() - interval '3 hours'),
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000021',
   'f0000000-0000-4000-8000-000000000011', 'outbound', 'text', 'failed', now() - interval '2 days');
insert into public.dead_letter_queue (org_id, kind, error, status) values
  ('f0000000-0000-4000-8000-000000000000', 'inbound_message', 'x', 'pending'),
  ('f0000000-0000-4000-8000-000000000000', 'inbound_message', 'x', 'retrying'),
  ('f0000000-0000-4000-8000-000000000000', 'inbound_message', 'x', 'resolved');
insert into public.alerts (id, org_id, kind, message, status) values
  ('f0000000-0000-4000-8000-000000000031', 'f0000000-0000-4000-8000-000000000000', 'test', 'open one', 'open'),
  ('f0000000-0000-4000-8000-000000000032', 'f0000000-0000-4000-8000-000000000000', 'test', 'closed one', 'resolved');

select results_eq(
  $$ select messages_last_hour, inbound_pending, failed_last_day, dead_letters_pending, open_alerts, last_inbound_at
     from public.system_health_summary where org_id = 'f0000000-0000-4000-8000-000000000000' $$,
  $$ values (1::bigint, 2::bigint, 1::bigint, 2::bigint, 1::bigint, now() - interval '1 hour') $$,
  'system_health_summary counts the org''s traffic, backlog, failures, dead letters and alerts');

insert into public.ai_requests (org_id, contact_id, provider, model, tokens_in, tokens_out, tokens_cached, cost_usd, status, created_at) values
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000011', 'openai', 'gpt-4o-mini', 100, 10, 5, 0.001000, 'success', '2026-01-10T12:00:00Z'),
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000011', 'openai', 'gpt-4o-mini', 200, 20, 0, 0.002000, 'success', '2026-01-31T23:30:00Z'),
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000012', 'anthropic', 'claude-3-5-haiku-latest', 50, 5, 0, 0.000500, 'error', '2026-01-15T00:00:00Z'),
  ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000011', 'openai', 'gpt-4o-mini', 1, 1, 0, 0.000001, 'success', '2026-02-01T00:30:00Z');

select results_eq(
  $$ select contact_id, month, requests, tokens_in, tokens_out, tokens_cached, cost_usd
     from public.ai_cost_per_contact_monthly
     where org_id = 'f0000000-0000-4000-8000-000000000000' order by month, contact_id $$,
  $$ values
     ('f0000000-0000-4000-8000-000000000011'::uuid, '2026-01-01'::date, 2::bigint, 300::bigint, 30::bigint, 5::bigint, 0.003000::numeric),
     ('f0000000-0000-4000-8000-000000000012'::uuid, '2026-01-01'::date, 1::bigint, 50::bigint, 5::bigint, 0::bigint, 0.000500::numeric),
     ('f0000000-0000-4000-8000-000000000011'::uuid, '2026-02-01'::date, 1::bigint, 1::bigint, 1::bigint, 0::bigint, 0.000001::numeric) $$,
  'ai_cost_per_contact_monthly sums per contact per UTC month');
select results_eq(
  $$ select month, requests, tokens_in, tokens_out, cost_usd
     from public.ai_cost_per_org_monthly
     where org_id = 'f0000000-0000-4000-8000-000000000000' order by month $$,
  $$ values ('2026-01-01'::date, 3::bigint, 350::bigint, 35::bigint, 0.003500::numeric),
            ('2026-02-01'::date, 1::bigint, 1::bigint, 1::bigint, 0.000001::numeric) $$,
  'ai_cost_per_org_monthly sums per org per UTC month');

-- ---------------------------------------------------------------------------------------------
-- Alerts: users acknowledge as themselves, through the audited function only
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"f0000000-0000-4000-8000-0000000000a2","role":"authenticated"}';
select throws_ok(
  $$ update public.alerts set status = 'acknowledged', acknowledged_by = 'f0000000-0000-4000-8000-0000000000a1'
     where id = 'f0000000-0000-4000-8000-000000000031' $$,
  '42501', null, 'users cannot write alerts directly');
select is(
  (public.admin_acknowledge_alert('f0000000-0000-4000-8000-000000000031') ->> 'acknowledged_by')::uuid,
  'f0000000-0000-4000-8000-0000000000a2'::uuid, 'admin_acknowledge_alert acknowledges as the caller');
reset role;
select results_eq(
  $$ select status, acknowledged_by, acknowledged_at from public.alerts where id = 'f0000000-0000-4000-8000-000000000031' $$,
  $$ values ('acknowledged', 'f0000000-0000-4000-8000-0000000000a2'::uuid, now()) $$,
  'acknowledging stamps the acting user and time');
set local role service_role;
set local request.jwt.claims to '{"role":"service_role"}';
update public.alerts set status = 'resolved' where id = 'f0000000-0000-4000-8000-000000000031';
reset role;
select results_eq(
  $$ select status, acknowledged_by, resolved_at from public.alerts where id = 'f0000000-0000-4000-8000-000000000031' $$,
  $$ values ('resolved', 'f0000000-0000-4000-8000-0000000000a2'::uuid, now()) $$,
  'resolving (the system''s) stamps resolved_at and keeps the acknowledgement');

-- ---------------------------------------------------------------------------------------------
-- Org owners (through the audited functions; the last-owner rule holds in them too)
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"f0000000-0000-4000-8000-0000000000a1","role":"authenticated"}';
select lives_ok(
  $$ select public.admin_set_member_role('f0000000-0000-4000-8000-000000000000',
       'f0000000-0000-4000-8000-0000000000a2', 'owner') $$,
  'an owner can promote an admin to owner');
select lives_ok(
  $$ select public.admin_set_member_role('f0000000-0000-4000-8000-000000000000',
       'f0000000-0000-4000-8000-0000000000a1', 'viewer') $$,
  'an owner can step down while another owner remains');
reset role;
set local role authenticated;
set local request.jwt.claims to '{"sub":"f0000000-0000-4000-8000-0000000000a2","role":"authenticated"}';
select throws_ok(
  $$ select public.admin_remove_member('f0000000-0000-4000-8000-000000000000',
       'f0000000-0000-4000-8000-0000000000a2') $$,
  '23514', 'an org must keep at least one owner', 'the last owner cannot leave');
reset role;

set local role service_role;
set local request.jwt.claims to '{"role":"service_role"}';
select lives_ok(
  $$ delete from public.org_members
     where org_id = 'f0000000-0000-4000-8000-000000000000' and user_id = 'f0000000-0000-4000-8000-0000000000a2' $$,
  'service_role is not bound by the last-owner rule');
reset role;

-- ---------------------------------------------------------------------------------------------
-- Misc
-- ---------------------------------------------------------------------------------------------
set local role service_role;
select is(public.db_ping(), now(), 'db_ping returns the database time');
reset role;

select throws_ok(
  $$ insert into public.expenses (org_id, contact_id, amount, currency)
     values ('f0000000-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000011', 1, 'usd') $$,
  '23514', null, 'currency must be upper case');
select throws_ok(
  $$ insert into public.contacts (org_id, wa_id) values ('f0000000-0000-4000-8000-000000000000', '+1555') $$,
  '23514', null, 'wa_id must be digits only');

-- Deleting an org removes everything it owns.
delete from public.orgs where id = 'f0000000-0000-4000-8000-000000000000';
select is(
  (select count(*)::int from public.messages where org_id = 'f0000000-0000-4000-8000-000000000000')
  + (select count(*)::int from public.contacts where org_id = 'f0000000-0000-4000-8000-000000000000')
  + (select count(*)::int from public.rate_limits where org_id = 'f0000000-0000-4000-8000-000000000000')
  + (select count(*)::int from public.ai_requests where org_id = 'f0000000-0000-4000-8000-000000000000'),
  0, 'deleting an org cascades to its data');

select * from finish();
rollback;
