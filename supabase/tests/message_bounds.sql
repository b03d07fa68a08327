-- messages.body is bounded (65536 characters, 20261123000001_schema.sql): a huge body is
-- refused by the table whoever writes it, the longest legitimate one is stored.
begin;
create extension if not exists pgtap;
select plan(2);

insert into public.orgs (id, name) values ('b0d50000-0000-4000-8000-000000000000', 'Bounds Org');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('b0d50000-0000-4000-8000-000000000001', 'b0d50000-0000-4000-8000-000000000000', '99000000b0d5', '+1 555 000 0078');
insert into public.contacts (id, org_id, wa_id) values
  ('b0d50000-0000-4000-8000-000000000002', 'b0d50000-0000-4000-8000-000000000000', '19990000078');
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id) values
  ('b0d50000-0000-4000-8000-000000000003', 'b0d50000-0000-4000-8000-000000000000',
   'b0d50000-0000-4000-8000-000000000002', 'b0d50000-0000-4000-8000-000000000001');

select lives_ok($$
  insert into public.messages (org_id, conversation_id, contact_id, direction, type, body, status)
  values ('b0d50000-0000-4000-8000-000000000000', 'b0d50000-0000-4000-8000-000000000003',
          'b0d50000-0000-4000-8000-000000000002', 'outbound', 'text', repeat('é', 65536), 'sending') $$,
  '65536 characters are stored');
select throws_ok($$
  insert into public.messages (org_id, conversation_id, contact_id, direction, type, body, status)
  values ('b0d50000-0000-4000-8000-000000000000', 'b0d50000-0000-4000-8000-000000000003',
          'b0d50000-0000-4000-8000-000000000002', 'outbound', 'text', repeat('x', 65537), 'sending') $$,
  '23514', null, 'a longer body is refused by the table');

select * from finish();
rollback;
