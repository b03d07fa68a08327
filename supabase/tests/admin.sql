-- Admin functions (20261123000005_admin.sql): who may execute them, and that they check the
-- caller themselves (404 = P0002 for another org's rows, 403 = 42501 for a role that may not act).
begin;
create extension if not exists pgtap;
select plan(19);

-- ---------------------------------------------------------------------------------------------
-- Guards over every function (they also catch functions added later)
-- ---------------------------------------------------------------------------------------------
select is_empty(
  $$ select p.oid::regprocedure::text from pg_proc p
     where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
       and p.prosecdef
       and not coalesce(p.proconfig @> array['search_path=""'], false) $$,
  'every security definer function sets search_path = '''''
);

select is_empty(
  $$ select p.proname::text from pg_proc p
     where p.pronamespace = 'public'::regnamespace and p.proname like 'admin\_%'
       and has_function_privilege('anon', p.oid, 'execute') $$,
  'anon executes no admin function'
);

select is_empty(
  $$ select p.proname::text from pg_proc p
     where p.pronamespace = 'public'::regnamespace and p.proname like 'admin\_%'
       and p.proname <> 'admin_finish_staff_message'
       and not has_function_privilege('authenticated', p.oid, 'execute') $$,
  'signed-in users execute every admin function meant for them'
);

select ok(
  not has_function_privilege('authenticated', 'public.admin_finish_staff_message(uuid, jsonb)', 'execute')
  and has_function_privilege('service_role', 'public.admin_finish_staff_message(uuid, jsonb)', 'execute'),
  'only the service role records the outcome of a staff message'
);

-- ---------------------------------------------------------------------------------------------
-- Fixtures (as superuser): org A with an owner, an admin and a viewer; org B with its owner
-- ---------------------------------------------------------------------------------------------
insert into public.orgs (id, name) values
  ('a1000000-0000-4000-8000-000000000001', 'Admin test A'),
  ('b1000000-0000-4000-8000-000000000001', 'Admin test B');
insert into auth.users (id, email) values
  ('a1000000-0000-4000-8000-0000000000a1', 'owner-a@admin.test'),
  ('a1000000-0000-4000-8000-0000000000a2', 'admin-a@admin.test'),
  ('a1000000-0000-4000-8000-0000000000a3', 'viewer-a@admin.test'),
  ('b1000000-0000-4000-8000-0000000000b1', 'owner-b@admin.test');
insert into public.org_members (org_id, user_id, role) values
  ('a1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-0000000000a1', 'owner'),
  ('a1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-0000000000a2', 'admin'),
  ('a1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-0000000000a3', 'viewer'),
  ('b1000000-0000-4000-8000-000000000001', 'b1000000-0000-4000-8000-0000000000b1', 'owner');
insert into public.assistant_settings (org_id) values
  ('a1000000-0000-4000-8000-000000000001'), ('b1000000-0000-4000-8000-000000000001');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('a1000000-0000-4000-8000-000000000002', 'a1000000-0000-4000-8000-000000000001', 'admin-test-pnid-a', '+1 555 000 0101');
insert into public.contacts (id, org_id, wa_id) values
  ('a1000000-0000-4000-8000-000000000003', 'a1000000-0000-4000-8000-000000000001', '19990001001');
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id, last_inbound_at) values
  ('a1000000-0000-4000-8000-000000000004', 'a1000000-0000-4000-8000-000000000001',
   'a1000000-0000-4000-8000-000000000003', 'a1000000-0000-4000-8000-000000000002', now());
insert into public.messages (id, org_id, conversation_id, contact_id, direction, type, body, status, attempts) values
  ('a1000000-0000-4000-8000-000000000005', 'a1000000-0000-4000-8000-000000000001',
   'a1000000-0000-4000-8000-000000000004', 'a1000000-0000-4000-8000-000000000003',
   'inbound', 'text', 'hello', 'failed', 1);
insert into public.dead_letter_queue (id, org_id, kind, ref, error) values
  ('a1000000-0000-4000-8000-000000000006', 'a1000000-0000-4000-8000-000000000001',
   'inbound_message', 'a1000000-0000-4000-8000-000000000005', 'boom');

-- ---------------------------------------------------------------------------------------------
-- Viewer of org A: reads, never acts
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"a1000000-0000-4000-8000-0000000000a3","role":"authenticated"}';
select is(
  public.admin_overview('a1000000-0000-4000-8000-000000000001') -> 'org' ->> 'name', 'Admin test A',
  'viewer A reads the overview of org A');
select throws_ok(
  $$ select public.admin_overview('b1000000-0000-4000-8000-000000000001') $$,
  'P0002', null, 'viewer A: org B does not exist for them');
select throws_ok(
  $$ select public.admin_update_settings('a1000000-0000-4000-8000-000000000001', '{"language": "es"}') $$,
  '42501', null, 'viewer A cannot change settings');
select throws_ok(
  $$ select public.admin_replay_dead_letter('a1000000-0000-4000-8000-000000000006', 120) $$,
  '42501', null, 'viewer A cannot replay a dead letter');
select throws_ok(
  $$ select public.admin_begin_staff_message('a1000000-0000-4000-8000-000000000004', 'hi') $$,
  '42501', null, 'viewer A cannot write to a contact');
reset role;

-- ---------------------------------------------------------------------------------------------
-- Admin of org A: acts in org A, with an audit row; members are for owners
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"a1000000-0000-4000-8000-0000000000a2","role":"authenticated"}';
select is(
  public.admin_set_conversation_mode('a1000000-0000-4000-8000-000000000004', 'human') ->> 'mode', 'human',
  'admin A hands a conversation to a human');
select is(
  (select count(*)::int from public.audit_log_entries
   where action = 'conversation.handoff' and actor_id = 'a1000000-0000-4000-8000-0000000000a2'),
  1, 'the handoff is audited as admin A');
select throws_ok(
  $$ select public.admin_add_member('a1000000-0000-4000-8000-000000000001', 'owner-b@admin.test', 'viewer') $$,
  '42501', null, 'admin A (not owner) cannot add members');
select throws_ok(
  $$ select public.admin_update_settings('a1000000-0000-4000-8000-000000000001', '{"plan": "pro"}') $$,
  '22023', null, 'unknown settings are refused');
select is(
  public.admin_replay_dead_letter('a1000000-0000-4000-8000-000000000006', 120) ->> 'status',
  'retrying', 'admin A claims the dead letter of an inbound message for a retry');
select throws_ok(
  $$ select public.admin_replay_dead_letter('a1000000-0000-4000-8000-000000000006', 120) $$,
  '55000', 'the dead letter is being retried now', 'a claimed dead letter is not claimed twice');
reset role;

-- ---------------------------------------------------------------------------------------------
-- Owner of org B: org A's rows do not exist for them
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"b1000000-0000-4000-8000-0000000000b1","role":"authenticated"}';
select throws_ok(
  $$ select public.admin_set_conversation_mode('a1000000-0000-4000-8000-000000000004', 'bot') $$,
  'P0002', null, 'owner B: org A''s conversation is not found');
select throws_ok(
  $$ select public.admin_discard_dead_letter('a1000000-0000-4000-8000-000000000006') $$,
  'P0002', null, 'owner B: org A''s dead letter is not found');
select throws_ok(
  $$ select public.admin_list_members('a1000000-0000-4000-8000-000000000001') $$,
  'P0002', null, 'owner B: org A''s members are not listed');
reset role;

-- ---------------------------------------------------------------------------------------------
-- Nothing the refused attempts tried has landed (as superuser)
-- ---------------------------------------------------------------------------------------------
select is(
  (select mode from public.conversations where id = 'a1000000-0000-4000-8000-000000000004'),
  'human', 'the refused attempts changed nothing');

select * from finish();
rollback;
