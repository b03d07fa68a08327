-- Users' direct writes to reminders (private.reminder_user_rules): a sent reminder is never
-- re-armed, nothing is back-dated; a cancelled reminder is re-armed for a future time; the
-- service role's writes (cron, tools) are not restricted.
begin;
create extension if not exists pgtap;
select plan(7);

insert into public.orgs (id, name) values ('c7000000-0000-4000-8000-000000000001', 'Reminder writes');
insert into auth.users (id, email) values ('c7000000-0000-4000-8000-0000000000a1', 'owner@reminders.test');
insert into public.org_members (org_id, user_id, role) values
  ('c7000000-0000-4000-8000-000000000001', 'c7000000-0000-4000-8000-0000000000a1', 'owner');
insert into public.contacts (id, org_id, wa_id) values
  ('c7000000-0000-4000-8000-000000000002', 'c7000000-0000-4000-8000-000000000001', '19990007001');
insert into public.reminders (id, org_id, contact_id, text, due_at, status) values
  ('c7000000-0000-4000-8000-000000000011', 'c7000000-0000-4000-8000-000000000001',
   'c7000000-0000-4000-8000-000000000002', 'sent one', now() - interval '1 day', 'sent'),
  ('c7000000-0000-4000-8000-000000000012', 'c7000000-0000-4000-8000-000000000001',
   'c7000000-0000-4000-8000-000000000002', 'cancelled one', now() - interval '1 day', 'cancelled'),
  ('c7000000-0000-4000-8000-000000000013', 'c7000000-0000-4000-8000-000000000001',
   'c7000000-0000-4000-8000-000000000002', 'pending one', now() + interval '1 day', 'pending');

set local role authenticated;
set local request.jwt.claims to '{"sub":"c7000000-0000-4000-8000-0000000000a1","role":"authenticated"}';

select throws_ok(
  $$ update public.reminders set status = 'pending', due_at = now() + interval '1 hour'
     where id = 'c7000000-0000-4000-8000-000000000011' $$,
  '23514', null, 'a sent reminder is not re-armed, even for a future time');
select throws_ok(
  $$ update public.reminders set due_at = '2000-01-01T00:00:00Z'
     where id = 'c7000000-0000-4000-8000-000000000013' $$,
  '23514', null, 'a pending reminder is not back-dated');
select throws_ok(
  $$ update public.reminders set status = 'pending'
     where id = 'c7000000-0000-4000-8000-000000000012' $$,
  '23514', null, 'a cancelled reminder is not re-armed at its past due time');
select lives_ok(
  $$ update public.reminders set status = 'pending', due_at = now() + interval '1 hour'
     where id = 'c7000000-0000-4000-8000-000000000012' $$,
  'a cancelled reminder is re-armed for a future time');
select lives_ok(
  $$ update public.reminders set due_at = now() + interval '2 days', text = 'moved'
     where id = 'c7000000-0000-4000-8000-000000000013' $$,
  'a pending reminder is rescheduled into the future');
reset role;

select is(
  (select string_agg(status || ':' || text, ',' order by id) from public.reminders
   where org_id = 'c7000000-0000-4000-8000-000000000001'),
  'sent:sent one,pending:cancelled one,pending:moved',
  'only the allowed writes took effect');

set local role service_role;
select lives_ok(
  $$ update public.reminders set status = 'pending', due_at = now() - interval '1 minute'
     where id = 'c7000000-0000-4000-8000-000000000011' $$,
  'the service role''s own writes are not restricted');
reset role;

select * from finish();
rollback;
