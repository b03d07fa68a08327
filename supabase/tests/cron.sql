-- The cron functions (supabase/migrations/20261123000004_cron.sql): who may call them, leases
-- and tokens, the unknown-outcome sweep, dead letter settling, backoff and retention.
begin;
create extension if not exists pgtap;
select plan(29);

-- Claims are global: other rows of this database must not take part (rolled back at the end).
update public.reminders set status = 'cancelled' where status in ('pending', 'sending');
update public.dead_letter_queue set status = 'discarded' where status in ('pending', 'retrying');

insert into public.orgs (id, name) values ('e0c00000-0000-4000-8000-000000000000', 'Cron Test Org');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('e0c00000-0000-4000-8000-000000000001', 'e0c00000-0000-4000-8000-000000000000', '9900000000001', '+1 555 000 0099');
insert into public.contacts (id, org_id, wa_id) values
  ('e0c00000-0000-4000-8000-000000000002', 'e0c00000-0000-4000-8000-000000000000', '19990000099');
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id, last_inbound_at) values
  ('e0c00000-0000-4000-8000-000000000003', 'e0c00000-0000-4000-8000-000000000000',
   'e0c00000-0000-4000-8000-000000000002', 'e0c00000-0000-4000-8000-000000000001', now());
insert into public.reminders (id, org_id, contact_id, text, due_at) values
  ('e0c00000-0000-4000-8000-0000000000a1', 'e0c00000-0000-4000-8000-000000000000',
   'e0c00000-0000-4000-8000-000000000002', 'first', now() - interval '2 minutes'),
  ('e0c00000-0000-4000-8000-0000000000a2', 'e0c00000-0000-4000-8000-000000000000',
   'e0c00000-0000-4000-8000-000000000002', 'second', now() - interval '1 minute'),
  ('e0c00000-0000-4000-8000-0000000000a3', 'e0c00000-0000-4000-8000-000000000000',
   'e0c00000-0000-4000-8000-000000000002', 'later', now() + interval '1 hour');

-- ---------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000001","role":"authenticated"}';
select throws_ok($$ select public.cron_claim_reminders(10, 60) $$, '42501', null,
  'authenticated cannot claim reminders');
select throws_ok($$ select public.cron_claim_dead_letters(10, 60, 5) $$, '42501', null,
  'authenticated cannot claim dead letters');
select throws_ok($$ select public.cron_purge('webhooks', 30, 10) $$, '42501', null,
  'authenticated cannot purge webhooks');
reset role;
set local role anon;
select throws_ok($$ select public.cron_stuck_messages(10, 60) $$, '42501', null,
  'anon cannot list stuck messages');
select throws_ok($$ select public.cron_settle_dead_letter(gen_random_uuid(), 5, 60) $$, '42501', null,
  'anon cannot settle dead letters');
reset role;
select is_empty($$
  select p.proname from pg_proc p
  where p.pronamespace = 'public'::regnamespace and p.proname like 'cron\_%'
    and (has_function_privilege('anon', p.oid, 'execute')
         or has_function_privilege('authenticated', p.oid, 'execute')
         or not has_function_privilege('service_role', p.oid, 'execute')) $$,
  'every cron function is for service_role only');

-- ---------------------------------------------------------------------------------------------
-- Claims: batches, leases, tokens (as the superuser: the privileges are checked above)
-- ---------------------------------------------------------------------------------------------
create temp table claims as select public.cron_claim_reminders(1, 60) as c;
select is(jsonb_array_length((select c -> 'reminders' from claims)), 1, 'a batch of one');
select is((select c -> 'reminders' -> 0 ->> 'id' from claims), 'e0c00000-0000-4000-8000-0000000000a1',
  'the most overdue first');
select is((select c -> 'reminders' -> 0 ->> 'phone_number_id' from claims), '9900000000001',
  'with the number of the contact''s conversation');
select is((select (c -> 'reminders' -> 0 ->> 'window_open')::boolean from claims), true,
  'and whether its window is open');
select is((select public.cron_claim_reminders(10, 60) -> 'reminders' -> 0 ->> 'id'),
  'e0c00000-0000-4000-8000-0000000000a2', 'the next claim skips the leased one');
select is(jsonb_array_length(public.cron_claim_reminders(10, 60) -> 'reminders'), 0,
  'nothing else is due');

select is(public.cron_begin_reminder('e0c00000-0000-4000-8000-0000000000a1', gen_random_uuid(),
  'e0c00000-0000-4000-8000-000000000003', 'text', 'first', 60), null,
  'a wrong token cannot begin a send');
create temp table begun as
select public.cron_begin_reminder('e0c00000-0000-4000-8000-0000000000a1',
  (select (c -> 'reminders' -> 0 ->> 'token')::uuid from claims),
  'e0c00000-0000-4000-8000-000000000003', 'text', 'first', 60) as message_id;
select isnt((select message_id from begun), null, 'the holder begins the send');
select is((select status from public.reminders where id = 'e0c00000-0000-4000-8000-0000000000a1'),
  'sending', 'the reminder is sending');
select is((select status || '/' || reminder_id from public.messages where id = (select message_id from begun)),
  'sending/e0c00000-0000-4000-8000-0000000000a1', 'its outbound message is recorded first');
select is(public.cron_begin_reminder('e0c00000-0000-4000-8000-0000000000a1',
  (select (c -> 'reminders' -> 0 ->> 'token')::uuid from claims),
  'e0c00000-0000-4000-8000-000000000003', 'text', 'first', 60), null,
  'a send begins once');

-- The run crashed: its leases ran out.
update public.reminders set lease_until = now() - interval '1 second'
where org_id = 'e0c00000-0000-4000-8000-000000000000' and lease_until is not null;

create temp table after_crash as select public.cron_claim_reminders(10, 60) as c;
select is((select (c ->> 'unknown')::int from after_crash), 1, 'the send in flight has an unknown outcome');
select is((select c -> 'reminders' -> 0 ->> 'id' from after_crash), 'e0c00000-0000-4000-8000-0000000000a2',
  'the claimed one is claimable again');
select is((select status from public.reminders where id = 'e0c00000-0000-4000-8000-0000000000a1'),
  'failed', 'an unknown outcome is failed, never sent again');
select is((select status from public.messages where id = (select message_id from begun)),
  'sending', 'its outbound message left to the outcome resolver');
select is((select count(*)::int from public.alerts
           where org_id = 'e0c00000-0000-4000-8000-000000000000' and kind = 'reminder_outcome_unknown'),
  1, 'and an alert');

-- ---------------------------------------------------------------------------------------------
-- Failure, dead letter, settling
-- ---------------------------------------------------------------------------------------------
select is(public.cron_fail_reminder('e0c00000-0000-4000-8000-0000000000a2',
  (select (c -> 'reminders' -> 0 ->> 'token')::uuid from after_crash), null, 'no template', 'final', 3, 60),
  'failed', 'a final failure fails the reminder');
select is((select attempts || '/' || status from public.dead_letter_queue
           where kind = 'reminder' and ref = 'e0c00000-0000-4000-8000-0000000000a2'),
  '2/pending', 'with a dead letter entry, counting both claims (every claim is an attempt)');
update public.dead_letter_queue set attempts = 5, next_attempt_at = now() - interval '1 second'
where ref = 'e0c00000-0000-4000-8000-0000000000a2';
select is((public.cron_claim_dead_letters(10, 60, 5) ->> 'discarded')::int, 1,
  'an entry past the last attempt is discarded');
select is((select count(*)::int from public.alerts
           where org_id = 'e0c00000-0000-4000-8000-000000000000' and kind = 'dead_letter_discarded'),
  1, 'with a critical alert');

-- ---------------------------------------------------------------------------------------------
-- Backoff and retention
-- ---------------------------------------------------------------------------------------------
select results_eq($$ values (private.cron_backoff(1, 60)), (private.cron_backoff(3, 60)), (private.cron_backoff(40, 60)) $$,
  $$ values (interval '1 minute'), (interval '4 minutes'), (interval '6 hours') $$,
  'backoff doubles from the base, at most 6 hours');

insert into public.webhooks (source, external_id, received_at) values
  ('whatsapp', 'cron-test-old', now() - interval '31 days'),
  ('whatsapp', 'cron-test-new', now() - interval '29 days');
select cmp_ok(public.cron_purge('webhooks', 30, 100000), '>=', 1, 'old webhooks rows are deleted');
select is((select array_agg(external_id) from public.webhooks where external_id like 'cron-test-%'),
  array['cron-test-new'], 'recent ones stay');

select * from finish();
rollback;
