-- The cron fixes (supabase/migrations/20261123000004_cron.sql): opt-out on every path to
-- a send, recurring series that survive a failed occurrence, releasing unstarted claims.
begin;
create extension if not exists pgtap;
select plan(34);

-- Claims are global: other rows of this database must not take part (rolled back at the end).
update public.reminders set status = 'cancelled' where status in ('pending', 'sending');
update public.dead_letter_queue set status = 'discarded' where status in ('pending', 'retrying');

insert into public.orgs (id, name) values ('e0c10000-0000-4000-8000-000000000000', 'Cron Fixes Org');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('e0c10000-0000-4000-8000-000000000001', 'e0c10000-0000-4000-8000-000000000000', '9900000000002', '+1 555 000 0098');
insert into public.contacts (id, org_id, wa_id, opted_out) values
  ('e0c10000-0000-4000-8000-000000000002', 'e0c10000-0000-4000-8000-000000000000', '19990000098', false),
  ('e0c10000-0000-4000-8000-000000000012', 'e0c10000-0000-4000-8000-000000000000', '19990000097', false);
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id, last_inbound_at) values
  ('e0c10000-0000-4000-8000-000000000003', 'e0c10000-0000-4000-8000-000000000000',
   'e0c10000-0000-4000-8000-000000000002', 'e0c10000-0000-4000-8000-000000000001', now()),
  ('e0c10000-0000-4000-8000-000000000013', 'e0c10000-0000-4000-8000-000000000000',
   'e0c10000-0000-4000-8000-000000000012', 'e0c10000-0000-4000-8000-000000000001', now());
-- b1: the opted-out contact's; b2: a daily one; b3: a daily one with a dead letter entry of
-- before the fix; b4, b5: released or not.
insert into public.reminders (id, org_id, contact_id, text, due_at, recurrence) values
  ('e0c10000-0000-4000-8000-0000000000b1', 'e0c10000-0000-4000-8000-000000000000',
   'e0c10000-0000-4000-8000-000000000012', 'opted out', now() - interval '5 minutes', 'none'),
  ('e0c10000-0000-4000-8000-0000000000b2', 'e0c10000-0000-4000-8000-000000000000',
   'e0c10000-0000-4000-8000-000000000002', 'daily', now() - interval '4 minutes', 'daily'),
  ('e0c10000-0000-4000-8000-0000000000b3', 'e0c10000-0000-4000-8000-000000000000',
   'e0c10000-0000-4000-8000-000000000002', 'daily too', now() - interval '3 minutes', 'daily'),
  ('e0c10000-0000-4000-8000-0000000000b4', 'e0c10000-0000-4000-8000-000000000000',
   'e0c10000-0000-4000-8000-000000000002', 'released', now() - interval '2 minutes', 'none'),
  ('e0c10000-0000-4000-8000-0000000000b5', 'e0c10000-0000-4000-8000-000000000000',
   'e0c10000-0000-4000-8000-000000000002', 'kept', now() - interval '1 minute', 'none');
insert into public.dead_letter_queue (org_id, kind, ref, payload, error, attempts, next_attempt_at) values
  ('e0c10000-0000-4000-8000-000000000000', 'reminder', 'e0c10000-0000-4000-8000-0000000000b3',
   '{}', 'earlier failure', 1, now() + interval '1 hour');

create temp table claims as
select c ->> 'id' as id, (c ->> 'token')::uuid as token, c ->> 'conversation_id' as conversation
from jsonb_array_elements(public.cron_claim_reminders(10, 60) -> 'reminders') c;
select is((select count(*)::int from claims), 5, 'all five claimed');
create function pg_temp.token(p_suffix text) returns uuid language sql as $$
  select token from claims where id = 'e0c10000-0000-4000-8000-0000000000' || p_suffix $$;

-- ---------------------------------------------------------------------------------------------
-- Privileges and signatures
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000001","role":"authenticated"}';
select throws_ok($$ select public.cron_release_reminders('[]') $$, '42501', null,
  'authenticated cannot release claims');
reset role;
select is((select count(*)::int from pg_proc where proname in ('cron_begin_reminder', 'cron_fail_reminder')),
  2, 'one cron_begin_reminder and one cron_fail_reminder: the old signatures are gone');

-- ---------------------------------------------------------------------------------------------
-- Opt-out: begin refuses, re-drive cancels
-- ---------------------------------------------------------------------------------------------
update public.contacts set opted_out = true where id = 'e0c10000-0000-4000-8000-000000000012';
select is(public.cron_begin_reminder('e0c10000-0000-4000-8000-0000000000b1', pg_temp.token('b1'),
  'e0c10000-0000-4000-8000-000000000013', 'text', 'opted out', 60), null,
  'a send to a contact who opted out since the claim is not begun');
select is((select status || ': ' || last_error from public.reminders where id = 'e0c10000-0000-4000-8000-0000000000b1'),
  'cancelled: not sent: the contact opted out', 'the reminder is cancelled');
select is((select count(*)::int from public.messages where reminder_id = 'e0c10000-0000-4000-8000-0000000000b1'),
  0, 'and no outbound message recorded');

-- A failed one-off with its dead letter entry; then the contact opts out.
update public.reminders set status = 'failed', lease_token = null
where id = 'e0c10000-0000-4000-8000-0000000000b1';
insert into public.dead_letter_queue (id, org_id, kind, ref, payload, error, attempts, next_attempt_at, status, lease_until) values
  ('e0c10000-0000-4000-8000-0000000000d1', 'e0c10000-0000-4000-8000-000000000000', 'reminder',
   'e0c10000-0000-4000-8000-0000000000b1', '{}', 'no template', 1, now(), 'retrying', now() + interval '1 minute');
select is(public.cron_redrive_reminder('e0c10000-0000-4000-8000-0000000000b1', 60), null,
  'a re-drive of a reminder of a contact who opted out gives nothing to send');
select is((select status from public.reminders where id = 'e0c10000-0000-4000-8000-0000000000b1'),
  'cancelled', 'it is cancelled');
select is(public.cron_settle_dead_letter('e0c10000-0000-4000-8000-0000000000d1', 5, 60), 'discarded',
  'and its dead letter entry is discarded');
select is((select attempts from public.dead_letter_queue where id = 'e0c10000-0000-4000-8000-0000000000d1'),
  1, 'without counting an attempt');

-- ---------------------------------------------------------------------------------------------
-- A recurring reminder whose run died mid-send: the series continues
-- ---------------------------------------------------------------------------------------------
create temp table begun as
select public.cron_begin_reminder('e0c10000-0000-4000-8000-0000000000b2', pg_temp.token('b2'),
  'e0c10000-0000-4000-8000-000000000003', 'text', 'daily', 60, now() + interval '1 day') as message_id;
select is((select next_due_at from public.reminders where id = 'e0c10000-0000-4000-8000-0000000000b2'),
  now() + interval '1 day', 'begin stores the next occurrence');
update public.reminders set lease_until = now() - interval '1 second'
where id = 'e0c10000-0000-4000-8000-0000000000b2';
select is((public.cron_claim_reminders(10, 60) ->> 'unknown')::int, 1, 'the send in flight has an unknown outcome');
select is((select status || ' ' || due_at::text || ' ' || attempts || ' ' || coalesce(next_due_at::text, '-')
           from public.reminders where id = 'e0c10000-0000-4000-8000-0000000000b2'),
  'pending ' || (now() + interval '1 day')::text || ' 0 -', 'the series is pending at its next occurrence');
create temp table unknown_occurrence as
select * from public.reminders where occurrence_of = 'e0c10000-0000-4000-8000-0000000000b2';
select is((select count(*)::int from unknown_occurrence), 1, 'the occurrence is split off');
select is((select status || ' ' || recurrence || ' ' || (due_at = now() - interval '4 minutes') from unknown_occurrence),
  'failed none true', 'failed, one-off, at the occurrence''s time');
select ok((select last_error like 'send outcome unknown%' from unknown_occurrence), 'as an unknown outcome');
select is((select lease_token from unknown_occurrence), pg_temp.token('b2'), 'holding the lost send''s token');
select is((select status from public.messages where id = (select message_id from begun)), 'sending',
  'its outbound message is left to the outcome resolver');
select is((select count(*)::int from public.dead_letter_queue
           where ref = (select id::text from unknown_occurrence) and status in ('pending', 'retrying')),
  0, 'no dead letter entry: nothing re-drives it');

-- The lost send answers after all: its success is recorded on the occurrence.
select is(public.cron_finish_reminder('e0c10000-0000-4000-8000-0000000000b2', pg_temp.token('b2'),
  (select message_id from begun), '{"status":"sent","wamid":"wamid.late","wamids":["wamid.late"],"type":"text"}'),
  true, 'a late success is still recorded');
select is((select status || ' ' || sent_wa_message_id from public.reminders where id = (select id from unknown_occurrence)),
  'sent wamid.late', 'on the occurrence');
select is((select status || ' ' || (due_at = now() + interval '1 day') from public.reminders
           where id = 'e0c10000-0000-4000-8000-0000000000b2'),
  'pending true', 'the series is untouched');
select is((select status from public.messages where id = (select message_id from begun)), 'sent',
  'and the message is sent');

-- ---------------------------------------------------------------------------------------------
-- A recurring reminder failing for good: the occurrence takes the dead letter entry
-- ---------------------------------------------------------------------------------------------
select is(public.cron_fail_reminder('e0c10000-0000-4000-8000-0000000000b3', pg_temp.token('b3'), null,
  'no template', 'final', 3, 60, null, now() + interval '1 day'), 'failed', 'a final failure');
create temp table final_occurrence as
select * from public.reminders where occurrence_of = 'e0c10000-0000-4000-8000-0000000000b3';
select is((select status || ' ' || (due_at = now() + interval '1 day') from public.reminders
           where id = 'e0c10000-0000-4000-8000-0000000000b3'),
  'pending true', 'the series continues');
select is((select d.attempts || ' ' || d.status || ' ' || (d.payload ->> 'occurrence_of')
           from public.dead_letter_queue d where d.ref = (select id::text from final_occurrence)),
  '2 pending e0c10000-0000-4000-8000-0000000000b3',
  'its open dead letter entry moved to the failed occurrence, one attempt more');

-- A failed occurrence of a series cancelled since is not re-driven.
update public.reminders set status = 'cancelled' where id = 'e0c10000-0000-4000-8000-0000000000b3';
select is(public.cron_redrive_reminder((select id from final_occurrence), 60), null,
  'a cancelled series'' failed occurrence gives nothing to send');
select is((select last_error from public.reminders where id = (select id from final_occurrence)),
  'not sent: its recurring reminder was cancelled', 'it is cancelled too');

-- ---------------------------------------------------------------------------------------------
-- Releasing unstarted claims
-- ---------------------------------------------------------------------------------------------
select is(public.cron_release_reminders(jsonb_build_array(
  jsonb_build_object('id', 'e0c10000-0000-4000-8000-0000000000b4', 'token', gen_random_uuid()))), 0,
  'a wrong token releases nothing');
select is(public.cron_release_reminders(jsonb_build_array(
  jsonb_build_object('id', 'e0c10000-0000-4000-8000-0000000000b4', 'token', pg_temp.token('b4')))), 1,
  'the holder releases its claim');
select is((select coalesce(lease_until::text, '-') || ' ' || coalesce(lease_token::text, '-')
           from public.reminders where id = 'e0c10000-0000-4000-8000-0000000000b4'),
  '- -', 'lease and token are gone');
select ok(public.cron_claim_reminders(10, 60) -> 'reminders' @> jsonb_build_array(
  jsonb_build_object('id', 'e0c10000-0000-4000-8000-0000000000b4')), 'the next claim takes it at once');
select isnt(public.cron_begin_reminder('e0c10000-0000-4000-8000-0000000000b5', pg_temp.token('b5'),
  'e0c10000-0000-4000-8000-000000000003', 'text', 'kept', 60), null, 'a begun send');
select is(public.cron_release_reminders(jsonb_build_array(
  jsonb_build_object('id', 'e0c10000-0000-4000-8000-0000000000b5', 'token', pg_temp.token('b5')))), 0,
  'is never released');

select * from finish();
rollback;
