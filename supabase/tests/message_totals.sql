-- Flat month counts: private.message_totals is kept by the messages' own insert, and
-- admin_overview reads it instead of counting the month's messages. The read is checked against
-- totals that differ from the messages' count, so an overview that counts messages fails.
begin;
create extension if not exists pgtap;
select plan(12);

insert into public.orgs (id, name) values
  ('f3000000-0000-4000-8000-000000000000', 'Message totals org'),
  ('f3000000-0000-4000-8000-0000000000f0', 'Other org');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('f3000000-0000-4000-8000-000000000001', 'f3000000-0000-4000-8000-000000000000', 'test-pnid-totals', '+1 555 000 0097');
insert into public.contacts (id, org_id, wa_id) values
  ('f3000000-0000-4000-8000-00000000000a', 'f3000000-0000-4000-8000-000000000000', '15550000971'),
  ('f3000000-0000-4000-8000-00000000000b', 'f3000000-0000-4000-8000-000000000000', '15550000972');
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id) values
  ('f3000000-0000-4000-8000-0000000000ca', 'f3000000-0000-4000-8000-000000000000',
   'f3000000-0000-4000-8000-00000000000a', 'f3000000-0000-4000-8000-000000000001'),
  ('f3000000-0000-4000-8000-0000000000cb', 'f3000000-0000-4000-8000-000000000000',
   'f3000000-0000-4000-8000-00000000000b', 'f3000000-0000-4000-8000-000000000001');
insert into auth.users (id, email) values
  ('f3000000-0000-4000-8000-0000000000aa', 'owner@totals.test'),
  ('f3000000-0000-4000-8000-0000000000bb', 'owner@other.test');
insert into public.org_members (org_id, user_id, role) values
  ('f3000000-0000-4000-8000-000000000000', 'f3000000-0000-4000-8000-0000000000aa', 'owner'),
  ('f3000000-0000-4000-8000-0000000000f0', 'f3000000-0000-4000-8000-0000000000bb', 'owner');

create function pg_temp.message(p_contact char, p_direction text, p_at timestamptz) returns void language sql as $$
  insert into public.messages (org_id, conversation_id, contact_id, direction, type, body, status, created_at)
  values ('f3000000-0000-4000-8000-000000000000', ('f3000000-0000-4000-8000-0000000000c' || p_contact)::uuid,
          ('f3000000-0000-4000-8000-00000000000' || p_contact)::uuid, p_direction, 'text', 'x',
          case when p_direction = 'inbound' then 'received' else 'sent' end, p_at)
$$;
-- A writes twice this month (two statements) and once last month; B once, answered twice.
select pg_temp.message('a', 'inbound', now());
select pg_temp.message('a', 'inbound', now());
select pg_temp.message('a', 'inbound', date_trunc('month', now(), 'UTC') - interval '1 hour');
select pg_temp.message('b', 'inbound', now());
insert into public.messages (org_id, conversation_id, contact_id, direction, type, body, status)
  select 'f3000000-0000-4000-8000-000000000000', 'f3000000-0000-4000-8000-0000000000cb',
         'f3000000-0000-4000-8000-00000000000b', 'outbound', 'text', 'reply ' || i, 'sent'
  from generate_series(1, 2) i;

create function pg_temp.month(p_before boolean) returns int[] language sql as $$
  select array[sum(inbound), sum(outbound), sum(active_contacts)]::int[] from private.message_totals
  where org_id = 'f3000000-0000-4000-8000-000000000000'
    and (starts_at < date_trunc('month', now(), 'UTC')) = p_before
$$;
select is(pg_temp.month(false), array[3, 2, 2], 'this month: inbound, outbound, contacts active (each once)');
select is(pg_temp.month(true), array[1, 0, 1], 'last month: A counted active there too');
select is((select count(*)::int from private.contact_months where contact_id = 'f3000000-0000-4000-8000-00000000000a'),
  2, 'a contact''s months are remembered once each');

-- Feedback: a reaction on a reply moves the counts of the reply's month.
create function pg_temp.feedback() returns int[] language sql as $$
  select array[sum(positive), sum(negative)]::int[] from private.message_totals
  where org_id = 'f3000000-0000-4000-8000-000000000000'
    and starts_at = date_trunc('month', now(), 'UTC')
$$;
select private.count_feedback('f3000000-0000-4000-8000-000000000000', now(), null, '👍');
select is(pg_temp.feedback(), array[1, 0], 'a 👍 is positive');
select private.count_feedback('f3000000-0000-4000-8000-000000000000', now(), '👍', '👎🏽');
select is(pg_temp.feedback(), array[0, 1], 'changed to 👎 (any skin tone): the count moves');
select private.count_feedback('f3000000-0000-4000-8000-000000000000', now(), '👎🏽', '❤️');
select private.count_feedback('f3000000-0000-4000-8000-000000000000', now(), null, '😂');
select is(pg_temp.feedback(), array[0, 0], 'other emoji and removals count nothing');
select private.count_feedback('f3000000-0000-4000-8000-000000000000',
  date_trunc('month', now(), 'UTC') - interval '1 hour', null, '👎');
select is(pg_temp.feedback(), array[0, 0], 'feedback on last month''s reply counts there');
update private.message_totals set positive = positive + 7, negative = negative + 5
where org_id = 'f3000000-0000-4000-8000-000000000000' and starts_at >= date_trunc('month', now(), 'UTC');

-- From here the totals differ from the messages: an overview that counts messages sees 3 / 2 / 2.
update private.message_totals set inbound = inbound + 1000, outbound = outbound + 100, active_contacts = active_contacts + 10
where org_id = 'f3000000-0000-4000-8000-000000000000' and starts_at >= date_trunc('month', now(), 'UTC');

set local role authenticated;
set local request.jwt.claims to '{"sub":"f3000000-0000-4000-8000-0000000000aa","role":"authenticated"}';
create temp table overview as select public.admin_overview('f3000000-0000-4000-8000-000000000000') as o;
select is((select array[(o -> 'messages' ->> 'inbound')::int, (o -> 'messages' ->> 'outbound')::int] from overview),
  array[1003, 102], 'admin_overview''s month traffic reads the message totals');
select is((select (o ->> 'active_contacts')::int from overview), 12, 'admin_overview''s active contacts read the message totals');
select is((select o -> 'feedback' from overview), '{"positive": 7, "negative": 5}'::jsonb,
  'admin_overview''s feedback reads the message totals');
select is((select count(*)::int from private.message_totals), 2, 'a member reads its org''s totals');

set local request.jwt.claims to '{"sub":"f3000000-0000-4000-8000-0000000000bb","role":"authenticated"}';
select is((select count(*)::int from private.message_totals where org_id = 'f3000000-0000-4000-8000-000000000000'),
  0, 'another org''s owner reads none of them');

reset role;
select * from finish();
rollback;
