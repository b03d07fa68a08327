-- A contact is a person known by a phone number (wa_id), a business-scoped user id (user_id),
-- or both: the constraints, and how the ingest finds, changes and merges contacts.
begin;
create extension if not exists pgtap;
select plan(12);

insert into public.orgs (id, name) values ('1d000000-0000-4000-8000-000000000000', 'Identity Test Org');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('1d000000-0000-4000-8000-000000000001', '1d000000-0000-4000-8000-000000000000', '990000000000771', '+1 555 000 0771');

select throws_ok(
  $$ insert into public.contacts (org_id) values ('1d000000-0000-4000-8000-000000000000') $$,
  '23514', null, 'a contact needs a phone number or a user id');
select throws_ok(
  $$ insert into public.contacts (org_id, user_id) values ('1d000000-0000-4000-8000-000000000000', 'us.lowercase') $$,
  '23514', null, 'a user id is a country code, a period and letters or digits');
select throws_ok(
  $$ insert into public.contacts (org_id, user_id, username)
     values ('1d000000-0000-4000-8000-000000000000', 'US.1', repeat('u', 65)) $$,
  '23514', null, 'a username is bounded');
insert into public.contacts (id, org_id, user_id) values
  ('1d000000-0000-4000-8000-000000000011', '1d000000-0000-4000-8000-000000000000', 'US.111');
select throws_ok(
  $$ insert into public.contacts (org_id, user_id) values ('1d000000-0000-4000-8000-000000000000', 'US.111') $$,
  '23505', null, 'a user id names one contact of an org');

set local role service_role;
select is(
  private.whatsapp_contact('1d000000-0000-4000-8000-000000000000', null, 'US.111'),
  '1d000000-0000-4000-8000-000000000011'::uuid, 'found by its user id');
select is(
  private.whatsapp_contact('1d000000-0000-4000-8000-000000000000', '15550000771', 'US.111', null, '@ana'),
  '1d000000-0000-4000-8000-000000000011'::uuid, 'a delivery naming both ids: the same contact');
reset role;
select results_eq(
  $$ select wa_id, user_id, username from public.contacts where id = '1d000000-0000-4000-8000-000000000011' $$,
  $$ values ('15550000771'::text, 'US.111'::text, '@ana'::text) $$, 'it records the other id and the username');

-- Two contacts, one person: merged into the one found by the phone number.
insert into public.contacts (id, org_id, wa_id, opted_out, opted_out_at) values
  ('1d000000-0000-4000-8000-000000000021', '1d000000-0000-4000-8000-000000000000', '15550000772', false, null);
insert into public.contacts (id, org_id, user_id, opted_out, opted_out_at) values
  ('1d000000-0000-4000-8000-000000000022', '1d000000-0000-4000-8000-000000000000', 'US.222', true, now());
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id) values
  ('1d000000-0000-4000-8000-000000000031', '1d000000-0000-4000-8000-000000000000', '1d000000-0000-4000-8000-000000000021', '1d000000-0000-4000-8000-000000000001'),
  ('1d000000-0000-4000-8000-000000000032', '1d000000-0000-4000-8000-000000000000', '1d000000-0000-4000-8000-000000000022', '1d000000-0000-4000-8000-000000000001');
insert into public.messages (org_id, conversation_id, contact_id, direction, type, body, status) values
  ('1d000000-0000-4000-8000-000000000000', '1d000000-0000-4000-8000-000000000032', '1d000000-0000-4000-8000-000000000022', 'inbound', 'text', 'STOP', 'processed');
set local role service_role;
select is(
  private.whatsapp_contact('1d000000-0000-4000-8000-000000000000', '15550000772', 'US.222'),
  '1d000000-0000-4000-8000-000000000021'::uuid, 'two contacts of one person: the one with the number stays');
reset role;
select results_eq(
  $$ select count(*)::int, bool_and(opted_out) from public.contacts
     where org_id = '1d000000-0000-4000-8000-000000000000' and (wa_id = '15550000772' or user_id = 'US.222') $$,
  $$ values (1, true) $$, 'one contact left, and the opt-out of either stands');
select results_eq(
  $$ select conversation_id, contact_id from public.messages where body = 'STOP'
     and org_id = '1d000000-0000-4000-8000-000000000000' $$,
  $$ values ('1d000000-0000-4000-8000-000000000031'::uuid, '1d000000-0000-4000-8000-000000000021'::uuid) $$,
  'the history joined the kept conversation');

-- An identity change keeps the contact.
set local role service_role;
select lives_ok(
  $$ select private.whatsapp_change_identity('1d000000-0000-4000-8000-000000000021', '15550000773', 'US.333') $$,
  'a changed number and user id');
reset role;
select results_eq(
  $$ select wa_id, user_id from public.contacts where id = '1d000000-0000-4000-8000-000000000021' $$,
  $$ values ('15550000773'::text, 'US.333'::text) $$, 'the same contact, with the new ids');

select * from finish();
rollback;
