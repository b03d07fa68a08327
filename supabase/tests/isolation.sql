-- Tenant isolation under RLS, as the real roles (authenticated, anon, service_role) see it.
--
-- Org A = Acme Dental, org B = Bravo Fitness (the seed orgs; upserted here so the file also runs
-- without the seed). Every table and view in public is checked for every identity: the list is
-- read from the catalog, so a table added later is covered (and fails until it gets fixtures).
-- Identities: `set local role <role>` plus `set local request.jwt.claims` (the same as
-- set_config('request.jwt.claims', ..., true), as PostgREST does), `reset role` in between.
begin;
create extension if not exists pgtap;

-- ---------------------------------------------------------------------------------------------
-- Helpers (rolled back with the rest)
-- ---------------------------------------------------------------------------------------------
create schema tap_helpers;
grant usage on schema tap_helpers to anon, authenticated, service_role;

-- Every table and view in public (extension-owned ones aside) and the column naming its org.
create function tap_helpers.relations()
returns table (relname name, org_col text)
language sql stable
as $$
  select c.relname::name,
         case
           when c.relname = 'orgs' then 'id'
           when exists (select 1 from pg_attribute a
                        where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
             then 'org_id'
         end
  from pg_class c
  where c.relnamespace = 'public'::regnamespace
    and c.relkind in ('r', 'p', 'v', 'm')
    and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
  order by c.relname
$$;

-- Relations without an org that every signed-in user may read.
create function tap_helpers.reference_relations() returns name[]
language sql immutable as $$ select array['plans']::name[] $$;

-- One test per relation: what the current identity sees.
--   p_org:       the caller's org (null: member of none)
--   p_signed_in: whether reference data must be visible
create function tap_helpers.check_visibility(p_org uuid, p_who text, p_signed_in boolean)
returns setof text
language plpgsql
as $$
declare
  r record;
  v_own bigint;
  v_foreign bigint;
  v_ok boolean;
begin
  for r in select * from tap_helpers.relations() loop
    if r.relname = any (tap_helpers.reference_relations()) then
      execute format('select count(*) from public.%I', r.relname) into v_own;
      v_foreign := 0;
      v_ok := (v_own > 0) = p_signed_in;
      return next ok(v_ok, format('%s: %s is %s', p_who, r.relname,
                                  case when p_signed_in then 'readable' else 'empty' end));
    elsif r.org_col is null then
      v_own := 0; v_foreign := 0; v_ok := false;
      return next ok(false, format('%s: %s has no org_id column: classify it in isolation.sql', p_who, r.relname));
    else
      execute format('select count(*) filter (where %1$I = $1), count(*) filter (where %1$I is distinct from $1)
                      from public.%2$I', r.org_col, r.relname)
        using p_org into v_own, v_foreign;
      v_ok := v_foreign = 0 and (p_org is null or v_own > 0);
      return next ok(v_ok, format('%s: %s shows %s', p_who, r.relname,
                                  case when p_org is null then 'no rows' else 'own org rows only' end));
    end if;
    if not v_ok then
      return next diag(format('    own org rows: %s, other rows: %s', v_own, v_foreign));
    end if;
  end loop;
end;
$$;

-- 4 identities x every relation, plus the fixed tests below.
select plan(4 * (select count(*)::int from tap_helpers.relations()) + 73);

-- ---------------------------------------------------------------------------------------------
-- Fixtures (as superuser): a row in every tenant table for org A and org B
-- ---------------------------------------------------------------------------------------------
insert into public.plans (name, monthly_token_budget) values ('free', 100000), ('starter', 1000000)
on conflict (name) do nothing;

insert into public.orgs (id, name, plan) values
  ('11111111-1111-1111-1111-111111111111', 'Acme Dental', 'free'),
  ('22222222-2222-2222-2222-222222222222', 'Bravo Fitness', 'starter')
on conflict (id) do nothing;

insert into auth.users (id, email) values
  ('aaaaaaaa-0000-0000-0000-000000000001', 'admin@acme.test'),
  ('aaaaaaaa-0000-0000-0000-000000000002', 'viewer@acme.test'),
  ('aaaaaaaa-0000-0000-0000-000000000003', 'second-admin@acme.test'),
  ('aaaaaaaa-0000-0000-0000-000000000004', 'invitee@acme.test'),
  ('bbbbbbbb-0000-0000-0000-000000000001', 'admin@bravo.test'),
  ('bbbbbbbb-0000-0000-0000-000000000002', 'viewer@bravo.test')
on conflict (id) do nothing;

-- Org A has exactly one owner for the last-owner test.
delete from public.org_members
where org_id = '11111111-1111-1111-1111-111111111111'
  and role = 'owner' and user_id <> 'aaaaaaaa-0000-0000-0000-000000000001';

insert into public.org_members (org_id, user_id, role) values
  ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000001', 'owner'),
  ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000002', 'viewer'),
  ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000003', 'admin'),
  ('22222222-2222-2222-2222-222222222222', 'bbbbbbbb-0000-0000-0000-000000000001', 'owner'),
  ('22222222-2222-2222-2222-222222222222', 'bbbbbbbb-0000-0000-0000-000000000002', 'viewer')
on conflict (org_id, user_id) do update set role = excluded.role;

insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('a0000000-0000-4000-8000-000000000001', '11111111-1111-1111-1111-111111111111', 'test-pnid-a', '+1 555 000 0001'),
  ('b0000000-0000-4000-8000-000000000001', '22222222-2222-2222-2222-222222222222', 'test-pnid-b', '+1 555 000 0002');

insert into public.assistant_settings (org_id) values
  ('11111111-1111-1111-1111-111111111111'),
  ('22222222-2222-2222-2222-222222222222')
on conflict (org_id) do nothing;

insert into public.contacts (id, org_id, wa_id, name) values
  ('a0000000-0000-4000-8000-000000000002', '11111111-1111-1111-1111-111111111111', '19990000001', 'Test A'),
  ('b0000000-0000-4000-8000-000000000002', '22222222-2222-2222-2222-222222222222', '19990000002', 'Test B');

insert into public.conversations (id, org_id, contact_id, whatsapp_number_id, last_inbound_at, last_message_at) values
  ('a0000000-0000-4000-8000-000000000003', '11111111-1111-1111-1111-111111111111',
   'a0000000-0000-4000-8000-000000000002', 'a0000000-0000-4000-8000-000000000001', now(), now()),
  ('b0000000-0000-4000-8000-000000000003', '22222222-2222-2222-2222-222222222222',
   'b0000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-000000000001', now(), now());

insert into public.messages (id, org_id, conversation_id, contact_id, direction, wa_message_id, type, body, status) values
  ('a0000000-0000-4000-8000-000000000004', '11111111-1111-1111-1111-111111111111',
   'a0000000-0000-4000-8000-000000000003', 'a0000000-0000-4000-8000-000000000002',
   'inbound', 'wamid.test-a', 'text', 'hello A', 'received'),
  ('b0000000-0000-4000-8000-000000000004', '22222222-2222-2222-2222-222222222222',
   'b0000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-000000000002',
   'inbound', 'wamid.test-b', 'text', 'hello B', 'received');

insert into public.webhooks (source, external_id, org_id, event_type) values
  ('whatsapp', 'test-evt-a', '11111111-1111-1111-1111-111111111111', 'messages'),
  ('stripe', 'test-evt-b', '22222222-2222-2222-2222-222222222222', 'customer.subscription.updated'),
  ('stripe', 'test-evt-none', null, 'ping');

insert into public.ai_requests (id, org_id, contact_id, provider, model, tokens_in, tokens_out, cost_usd, status) values
  ('a0000000-0000-4000-8000-000000000005', '11111111-1111-1111-1111-111111111111',
   'a0000000-0000-4000-8000-000000000002', 'openai', 'gpt-4o-mini', 100, 20, 0.0001, 'success'),
  ('b0000000-0000-4000-8000-000000000005', '22222222-2222-2222-2222-222222222222',
   'b0000000-0000-4000-8000-000000000002', 'openai', 'gpt-4o-mini', 200, 40, 0.0002, 'success');

insert into public.tool_executions (org_id, ai_request_id, contact_id, tool, status) values
  ('11111111-1111-1111-1111-111111111111', 'a0000000-0000-4000-8000-000000000005',
   'a0000000-0000-4000-8000-000000000002', 'log_expense', 'success'),
  ('22222222-2222-2222-2222-222222222222', 'b0000000-0000-4000-8000-000000000005',
   'b0000000-0000-4000-8000-000000000002', 'log_expense', 'success');

insert into public.reminders (id, org_id, contact_id, text, due_at) values
  ('a0000000-0000-4000-8000-000000000007', '11111111-1111-1111-1111-111111111111',
   'a0000000-0000-4000-8000-000000000002', 'dentist', now() + interval '1 day'),
  ('b0000000-0000-4000-8000-000000000007', '22222222-2222-2222-2222-222222222222',
   'b0000000-0000-4000-8000-000000000002', 'gym', now() + interval '1 day');

insert into public.expenses (org_id, contact_id, amount, currency, category) values
  ('11111111-1111-1111-1111-111111111111', 'a0000000-0000-4000-8000-000000000002', 12.50, 'USD', 'food'),
  ('22222222-2222-2222-2222-222222222222', 'b0000000-0000-4000-8000-000000000002', 30.00, 'EUR', 'sport');

insert into public.calendar_events (org_id, contact_id, title, starts_at, ends_at) values
  ('11111111-1111-1111-1111-111111111111', 'a0000000-0000-4000-8000-000000000002', 'Checkup',
   now() + interval '2 days', now() + interval '2 days 1 hour'),
  ('22222222-2222-2222-2222-222222222222', 'b0000000-0000-4000-8000-000000000002', 'Spinning',
   now() + interval '2 days', null);

insert into public.rate_limits (key, window_start, count, org_id) values
  ('test:contact:a', now(), 1, '11111111-1111-1111-1111-111111111111'),
  ('test:contact:b', now(), 1, '22222222-2222-2222-2222-222222222222'),
  ('test:global', now(), 1, null);

insert into public.dead_letter_queue (org_id, kind, ref, error) values
  ('11111111-1111-1111-1111-111111111111', 'inbound_message', 'wamid.test-a', 'boom'),
  ('22222222-2222-2222-2222-222222222222', 'reminder', 'b0000000-0000-4000-8000-000000000007', 'boom'),
  (null, 'billing_event', 'evt_unknown', 'no org');

insert into public.alerts (id, org_id, kind, message) values
  ('a0000000-0000-4000-8000-00000000000b', '11111111-1111-1111-1111-111111111111', 'test', 'alert A'),
  ('b0000000-0000-4000-8000-00000000000b', '22222222-2222-2222-2222-222222222222', 'test', 'alert B'),
  ('c0000000-0000-4000-8000-00000000000b', null, 'test', 'system alert');

insert into public.calendar_connections (org_id, calendar_id, refresh_token) values
  ('11111111-1111-1111-1111-111111111111', 'primary', 'refresh-token-a'),
  ('22222222-2222-2222-2222-222222222222', 'primary', 'refresh-token-b')
on conflict (org_id) do nothing;

insert into public.audit_log_entries (org_id, actor_id, action) values
  ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000001', 'test.a'),
  ('22222222-2222-2222-2222-222222222222', 'bbbbbbbb-0000-0000-0000-000000000001', 'test.b');

-- The helpers must see every expected relation (guards against a silently empty loop).
select ok(
  (select count(*) from tap_helpers.relations() where relname = any (array[
    'plans', 'orgs', 'org_members', 'whatsapp_numbers', 'assistant_settings', 'contacts',
    'conversations', 'messaging_windows', 'messages', 'webhooks', 'ai_requests', 'tool_executions',
    'reminders', 'expenses', 'calendar_events', 'rate_limits', 'dead_letter_queue', 'alerts',
    'audit_log_entries', 'system_health_summary', 'ai_cost_per_contact_monthly',
    'ai_cost_per_org_monthly'])) = 22,
  'the isolation checks cover all 22 known tables and views'
);

-- ---------------------------------------------------------------------------------------------
-- Owner of org A
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000001","role":"authenticated"}';

select * from tap_helpers.check_visibility('11111111-1111-1111-1111-111111111111', 'owner A', true);

-- Membership changes go through the audited functions only; no direct writes.
select throws_ok(
  $$ insert into public.org_members (org_id, user_id, role)
     values ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000004', 'viewer') $$,
  '42501', null, 'owner A cannot insert org_members directly (only admin_add_member)'
);
select lives_ok(
  $$ select public.admin_add_member('11111111-1111-1111-1111-111111111111', 'invitee@acme.test', 'viewer') $$,
  'owner A can add a member to org A'
);
select throws_ok(
  $$ select public.admin_add_member('22222222-2222-2222-2222-222222222222', 'invitee@acme.test', 'viewer') $$,
  'P0002', null, 'owner A cannot add a member to org B'
);
select throws_ok(
  $$ update public.org_members set role = 'admin'
     where org_id = '11111111-1111-1111-1111-111111111111' and user_id = 'aaaaaaaa-0000-0000-0000-000000000004' $$,
  '42501', null, 'owner A cannot update org_members directly (only admin_set_member_role)'
);
select is(
  public.admin_set_member_role('11111111-1111-1111-1111-111111111111',
    'aaaaaaaa-0000-0000-0000-000000000004', 'admin') ->> 'role',
  'admin', 'owner A can change a member''s role');
select throws_ok(
  $$ select public.admin_set_member_role('22222222-2222-2222-2222-222222222222',
       'bbbbbbbb-0000-0000-0000-000000000002', 'admin') $$,
  'P0002', null, 'owner A cannot change roles in org B'
);
select throws_ok(
  $$ delete from public.org_members where org_id = '11111111-1111-1111-1111-111111111111'
       and user_id = 'aaaaaaaa-0000-0000-0000-000000000004' $$,
  '42501', null, 'owner A cannot delete org_members directly (only admin_remove_member)'
);
select throws_ok(
  $$ select public.admin_remove_member('22222222-2222-2222-2222-222222222222',
       'bbbbbbbb-0000-0000-0000-000000000002') $$,
  'P0002', null, 'owner A cannot remove members of org B'
);
select throws_ok(
  $$ select public.admin_set_member_role('11111111-1111-1111-1111-111111111111',
       'aaaaaaaa-0000-0000-0000-000000000001', 'admin') $$,
  '23514', 'an org must keep at least one owner', 'the last owner cannot demote themselves'
);
select throws_ok(
  $$ select public.admin_remove_member('11111111-1111-1111-1111-111111111111',
       'aaaaaaaa-0000-0000-0000-000000000001') $$,
  '23514', 'an org must keep at least one owner', 'the last owner cannot leave'
);
select throws_ok(
  $$ update public.orgs set plan = 'pro' where id = '11111111-1111-1111-1111-111111111111' $$,
  '42501', null, 'owner A cannot change orgs.plan'
);
select is(private.is_org_member('11111111-1111-1111-1111-111111111111'), true,
  'authenticated may call private.is_org_member');
reset role;

-- ---------------------------------------------------------------------------------------------
-- Admin (not owner) of org A
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000003","role":"authenticated"}';

select throws_ok(
  $$ update public.assistant_settings set system_prompt = 'direct' where org_id = '11111111-1111-1111-1111-111111111111' $$,
  '42501', null, 'admin A cannot update assistant_settings directly (only admin_update_settings)'
);
select is(
  public.admin_update_settings('11111111-1111-1111-1111-111111111111', '{"system_prompt": "changed by admin A"}') ->> 'system_prompt',
  'changed by admin A', 'admin A can update org A assistant_settings');
with u as (
  update public.contacts set locale = 'pt-BR', timezone = 'America/Sao_Paulo'
  where id = 'a0000000-0000-4000-8000-000000000002' returning 1)
select is(count(*)::int, 1, 'admin A can correct an org A contact''s locale and time zone') from u;
select throws_ok(
  $$ update public.contacts set opted_out = true where id = 'a0000000-0000-4000-8000-000000000002' $$,
  '42501', null, 'admin A cannot write a contact''s opt-out (the contact''s own)'
);
select throws_ok(
  $$ update public.alerts set status = 'acknowledged' where id = 'a0000000-0000-4000-8000-00000000000b' $$,
  '42501', null, 'admin A cannot update alerts directly (only admin_acknowledge_alert)'
);
select is(
  public.admin_acknowledge_alert('a0000000-0000-4000-8000-00000000000b') ->> 'status',
  'acknowledged', 'admin A can acknowledge org A alerts');
with u as (
  update public.reminders set status = 'cancelled'
  where id = 'a0000000-0000-4000-8000-000000000007' returning 1)
select is(count(*)::int, 1, 'admin A can cancel org A reminders') from u;
select throws_ok(
  $$ update public.conversations set mode = 'human' where id = 'a0000000-0000-4000-8000-000000000003' $$,
  '42501', null, 'admin A cannot update conversations directly (only admin_set_conversation_mode)'
);
select is(
  public.admin_set_conversation_mode('a0000000-0000-4000-8000-000000000003', 'human') ->> 'mode',
  'human', 'admin A can hand org A conversations to a human');
with u as (
  update public.orgs set name = 'Acme Dental Clinic'
  where id = '11111111-1111-1111-1111-111111111111' returning 1)
select is(count(*)::int, 1, 'admin A can rename org A') from u;
select throws_ok(
  $$ insert into public.whatsapp_numbers (org_id, phone_number_id, display_phone_number)
     values ('11111111-1111-1111-1111-111111111111', 'test-pnid-a2', '+1 555 000 0003') $$,
  '42501', null, 'admin A cannot claim a phone_number_id, even for org A (onboarding connects numbers)'
);
select throws_ok(
  $$ update public.whatsapp_numbers set phone_number_id = 'test-pnid-a3'
     where org_id = '11111111-1111-1111-1111-111111111111' $$,
  '42501', null, 'admin A cannot repoint a number''s phone_number_id'
);

-- Org B's rows are out of reach.
select throws_ok(
  $$ select public.admin_update_settings('22222222-2222-2222-2222-222222222222', '{"system_prompt": "hijacked"}') $$,
  'P0002', null, 'admin A cannot update org B assistant_settings'
);
with u as (
  update public.contacts set locale = 'xx'
  where id = 'b0000000-0000-4000-8000-000000000002' returning 1)
select is(count(*)::int, 0, 'admin A cannot update org B contacts') from u;
select throws_ok(
  $$ select public.admin_acknowledge_alert('b0000000-0000-4000-8000-00000000000b') $$,
  'P0002', null, 'admin A cannot acknowledge org B alerts'
);
select throws_ok(
  $$ select public.admin_acknowledge_alert('c0000000-0000-4000-8000-00000000000b') $$,
  'P0002', null, 'admin A cannot acknowledge system alerts'
);
with u as (
  update public.reminders set status = 'cancelled'
  where id = 'b0000000-0000-4000-8000-000000000007' returning 1)
select is(count(*)::int, 0, 'admin A cannot update org B reminders') from u;
select throws_ok(
  $$ select public.admin_set_conversation_mode('b0000000-0000-4000-8000-000000000003', 'human') $$,
  'P0002', null, 'admin A cannot update org B conversations'
);
with u as (
  update public.orgs set name = 'hijacked'
  where id = '22222222-2222-2222-2222-222222222222' returning 1)
select is(count(*)::int, 0, 'admin A cannot rename org B') from u;
select throws_ok(
  $$ insert into public.whatsapp_numbers (org_id, phone_number_id, display_phone_number)
     values ('22222222-2222-2222-2222-222222222222', 'test-pnid-b2', '+1 555 000 0004') $$,
  '42501', null, 'admin A cannot connect a number to org B'
);
select throws_ok(
  $$ update public.contacts set org_id = '22222222-2222-2222-2222-222222222222'
     where id = 'a0000000-0000-4000-8000-000000000002' $$,
  '42501', null, 'admin A cannot move a contact to another org (org_id is not updatable)'
);

-- Billing columns and membership are not theirs to change.
select throws_ok(
  $$ update public.orgs set plan = 'pro' where id = '11111111-1111-1111-1111-111111111111' $$,
  '42501', null, 'admin A cannot change orgs.plan'
);
select throws_ok(
  $$ update public.orgs set monthly_token_budget = 999999999 where id = '11111111-1111-1111-1111-111111111111' $$,
  '42501', null, 'admin A cannot change orgs.monthly_token_budget'
);
select throws_ok(
  $$ update public.orgs set subscription_status = 'active', stripe_customer_id = 'cus_x'
     where id = '11111111-1111-1111-1111-111111111111' $$,
  '42501', null, 'admin A cannot change Stripe state'
);
select throws_ok(
  $$ insert into public.orgs (name) values ('New org') $$,
  '42501', null, 'users cannot create orgs'
);
select throws_ok(
  $$ delete from public.orgs where id = '11111111-1111-1111-1111-111111111111' $$,
  '42501', null, 'users cannot delete orgs'
);
select throws_ok(
  $$ insert into public.org_members (org_id, user_id, role)
     values ('11111111-1111-1111-1111-111111111111', 'bbbbbbbb-0000-0000-0000-000000000002', 'owner') $$,
  '42501', null, 'admin A (not owner) cannot add members'
);
select throws_ok(
  $$ select public.admin_add_member('11111111-1111-1111-1111-111111111111', 'viewer@bravo.test', 'owner') $$,
  '42501', null, 'admin A (not owner) cannot add members through the function either'
);
select throws_ok(
  $$ select public.admin_remove_member('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000002') $$,
  '42501', null, 'admin A (not owner) cannot remove members'
);

-- Audit log: written by the system only (the admin_* functions), never by users.
select throws_ok(
  $$ insert into public.audit_log_entries (org_id, actor_id, action, target)
     values ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000003', 'settings.update', 'assistant_settings') $$,
  '42501', null, 'admin A cannot write an audit entry, even as themselves'
);
select throws_ok(
  $$ select private.audit('11111111-1111-1111-1111-111111111111', 'forged', null, '{}') $$,
  '42501', null, 'admin A cannot call private.audit'
);
select throws_ok(
  $$ insert into public.audit_log_entries (org_id, actor_id, action)
     values ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000001', 'forged') $$,
  '42501', null, 'admin A cannot write an audit entry as someone else'
);
select throws_ok(
  $$ insert into public.audit_log_entries (org_id, actor_id, action)
     values ('22222222-2222-2222-2222-222222222222', 'aaaaaaaa-0000-0000-0000-000000000003', 'forged') $$,
  '42501', null, 'admin A cannot write an audit entry in org B'
);
select throws_ok(
  $$ update public.audit_log_entries set action = 'rewritten' $$,
  '42501', null, 'nobody updates audit entries'
);
select throws_ok(
  $$ delete from public.audit_log_entries $$,
  '42501', null, 'nobody deletes audit entries'
);

-- System tables are read-only for users; system functions are not theirs.
select throws_ok(
  $$ insert into public.messages (org_id, conversation_id, contact_id, direction, type, status)
     values ('11111111-1111-1111-1111-111111111111', 'a0000000-0000-4000-8000-000000000003',
             'a0000000-0000-4000-8000-000000000002', 'outbound', 'text', 'sent') $$,
  '42501', null, 'users cannot write messages'
);
select throws_ok(
  $$ select * from public.rate_limit_hit('x', 60, 10) $$,
  '42501', null, 'authenticated cannot execute rate_limit_hit'
);
select throws_ok(
  $$ select public.db_ping() $$,
  '42501', null, 'authenticated cannot execute db_ping'
);
reset role;

-- ---------------------------------------------------------------------------------------------
-- Viewer of org A
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000002","role":"authenticated"}';

select throws_ok(
  $$ select public.admin_update_settings('11111111-1111-1111-1111-111111111111', '{"system_prompt": "changed by viewer"}') $$,
  '42501', null, 'viewer A cannot update assistant_settings'
);
with u as (
  update public.contacts set locale = 'xx'
  where org_id = '11111111-1111-1111-1111-111111111111' returning 1)
select is(count(*)::int, 0, 'viewer A cannot update contacts') from u;
select throws_ok(
  $$ select public.admin_acknowledge_alert('a0000000-0000-4000-8000-00000000000b') $$,
  '42501', null, 'viewer A cannot acknowledge alerts'
);
with u as (
  update public.reminders set status = 'cancelled'
  where org_id = '11111111-1111-1111-1111-111111111111' returning 1)
select is(count(*)::int, 0, 'viewer A cannot update reminders') from u;
with u as (
  update public.orgs set name = 'changed by viewer'
  where id = '11111111-1111-1111-1111-111111111111' returning 1)
select is(count(*)::int, 0, 'viewer A cannot rename the org') from u;
select throws_ok(
  $$ insert into public.org_members (org_id, user_id, role)
     values ('11111111-1111-1111-1111-111111111111', 'bbbbbbbb-0000-0000-0000-000000000002', 'viewer') $$,
  '42501', null, 'viewer A cannot add members'
);
select throws_ok(
  $$ insert into public.audit_log_entries (org_id, actor_id, action)
     values ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000002', 'viewer.action') $$,
  '42501', null, 'viewer A cannot write audit entries'
);
reset role;

-- ---------------------------------------------------------------------------------------------
-- Viewer of org B, a signed-in user of no org, anon
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"bbbbbbbb-0000-0000-0000-000000000002","role":"authenticated"}';
select * from tap_helpers.check_visibility('22222222-2222-2222-2222-222222222222', 'viewer B', true);
reset role;

set local role authenticated;
set local request.jwt.claims to '{"sub":"cccccccc-0000-0000-0000-000000000001","role":"authenticated"}';
select * from tap_helpers.check_visibility(null, 'user of no org', true);
reset role;

set local role anon;
set local request.jwt.claims to '{"role":"anon"}';
select * from tap_helpers.check_visibility(null, 'anon', false);
select throws_ok(
  $$ update public.contacts set name = 'anon' $$,
  '42501', null, 'anon cannot update anything'
);
select throws_ok(
  $$ select * from public.rate_limit_hit('x', 60, 10) $$,
  '42501', null, 'anon cannot execute rate_limit_hit'
);
select throws_ok(
  $$ select public.db_ping() $$,
  '42501', null, 'anon cannot execute db_ping'
);
select throws_ok(
  $$ select private.is_org_member('11111111-1111-1111-1111-111111111111') $$,
  '42501', null, 'anon cannot reach the private schema'
);
reset role;

-- ---------------------------------------------------------------------------------------------
-- service_role: the system's own key
-- ---------------------------------------------------------------------------------------------
set local role service_role;
set local request.jwt.claims to '{"role":"service_role"}';
select is(public.db_ping(), now(), 'service_role can execute db_ping');
select is((select allowed from public.rate_limit_hit('test:service', 60, 10)), true,
  'service_role can execute rate_limit_hit');
select ok((select count(distinct org_id) from public.system_health_summary) >= 2,
  'service_role sees every org in system_health_summary');
reset role;

-- ---------------------------------------------------------------------------------------------
-- calendar_connections: the refresh token is write-only for users
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000001","role":"authenticated"}';
select throws_ok(
  $$ select refresh_token from public.calendar_connections $$,
  '42501', null, 'owner A cannot read a calendar refresh token back');
select lives_ok(
  $$ update public.calendar_connections set refresh_token = 'rotated-a'
     where org_id = '11111111-1111-1111-1111-111111111111' $$,
  'owner A can replace the org''s calendar token');
reset role;
set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000002","role":"authenticated"}';
with u as (update public.calendar_connections set refresh_token = 'viewer' returning 1)
select is(count(*)::int, 0, 'viewer A cannot change the calendar connection') from u;
reset role;
select is(
  (select refresh_token from public.calendar_connections where org_id = '11111111-1111-1111-1111-111111111111'),
  'rotated-a', 'org A''s token is the owner''s, not the viewer''s');

-- ---------------------------------------------------------------------------------------------
-- Nothing the refused attempts tried has landed (as superuser)
-- ---------------------------------------------------------------------------------------------
select is(
  (select system_prompt from public.assistant_settings where org_id = '11111111-1111-1111-1111-111111111111'),
  'changed by admin A', 'org A settings hold the admin''s change, not the viewer''s');
select isnt(
  (select system_prompt from public.assistant_settings where org_id = '22222222-2222-2222-2222-222222222222'),
  'hijacked', 'org B settings are untouched');
select is(
  (select plan from public.orgs where id = '11111111-1111-1111-1111-111111111111'),
  'free', 'org A plan is unchanged');
select is(
  (select count(*)::int from public.org_members where org_id = '11111111-1111-1111-1111-111111111111' and role = 'owner'),
  1, 'org A still has its owner');

select * from finish();
rollback;
