-- A hostile tenant (issue 11): who may write what, and the constraints on every column a user
-- can write, directly through PostgREST or through a function. docs/database.md lists the
-- direct writes; everything else goes through the audited admin_* functions.
begin;
create extension if not exists pgtap;
select plan(50);

-- ---------------------------------------------------------------------------------------------
-- Grants: the complete list of what users may write directly (a new grant fails this test;
-- pgTAP's own views, members of the extension, aside)
-- ---------------------------------------------------------------------------------------------
select results_eq(
  $$ select table_name::text collate "default", column_name::text collate "default", privilege_type::text collate "default"
     from information_schema.column_privileges
     where grantee = 'authenticated' and table_schema = 'public'
       and privilege_type in ('INSERT', 'UPDATE')
       and not exists (select 1 from pg_depend d
                       where d.classid = 'pg_class'::regclass and d.deptype = 'e'
                         and d.objid = (quote_ident(table_schema) || '.' || quote_ident(table_name))::regclass)
     order by 1, 3, 2 $$,
  $$ values
     ('calendar_connections', 'calendar_id', 'INSERT'),
     ('calendar_connections', 'org_id', 'INSERT'),
     ('calendar_connections', 'refresh_token', 'INSERT'),
     ('calendar_connections', 'calendar_id', 'UPDATE'),
     ('calendar_connections', 'refresh_token', 'UPDATE'),
     ('contacts', 'locale', 'UPDATE'),
     ('contacts', 'timezone', 'UPDATE'),
     ('orgs', 'name', 'UPDATE'),
     ('reminders', 'due_at', 'UPDATE'),
     ('reminders', 'recurrence', 'UPDATE'),
     ('reminders', 'status', 'UPDATE'),
     ('reminders', 'text', 'UPDATE'),
     ('reminders', 'timezone', 'UPDATE'),
     ('whatsapp_numbers', 'display_phone_number', 'UPDATE') $$,
  'users insert and update only these columns directly'
);
select results_eq(
  $$ select table_name::text collate "default", privilege_type::text collate "default"
     from information_schema.table_privileges
     where grantee = 'authenticated' and table_schema = 'public'
       and privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
       and not exists (select 1 from pg_depend d
                       where d.classid = 'pg_class'::regclass and d.deptype = 'e'
                         and d.objid = (quote_ident(table_schema) || '.' || quote_ident(table_name))::regclass)
     order by 1, 2 $$,
  $$ values ('calendar_connections', 'DELETE'), ('whatsapp_numbers', 'DELETE') $$,
  'users delete only calendar connections and numbers directly, and hold no table-wide insert or update'
);
select is_empty(
  $$ select table_name::text || '.' || column_name::text from information_schema.column_privileges
     where grantee = 'anon' and table_schema in ('public', 'private')
       and privilege_type in ('INSERT', 'UPDATE', 'DELETE')
       and not exists (select 1 from pg_depend d
                       where d.classid = 'pg_class'::regclass and d.deptype = 'e'
                         and d.objid = (quote_ident(table_schema) || '.' || quote_ident(table_name))::regclass) $$,
  'anon writes nothing'
);
select ok(
  not has_column_privilege('authenticated', 'public.contacts', 'opted_out', 'update')
  and not has_column_privilege('authenticated', 'public.contacts', 'opted_out_at', 'update'),
  'no user writes a contact''s opt-out'
);
select ok(
  not has_table_privilege('authenticated', 'public.audit_log_entries', 'insert')
  and not has_function_privilege('authenticated', 'private.audit(uuid, text, text, jsonb)', 'execute'),
  'no user writes audit rows, directly or through private.audit'
);
select is_empty(
  $$ select p.oid::regprocedure::text from pg_proc p
     where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
       and p.prosrc ~ '\mopted_out\s*='
       and (has_function_privilege('authenticated', p.oid, 'execute')
            or has_function_privilege('anon', p.oid, 'execute')) $$,
  'no function users may call writes opted_out (only the contact''s STOP/START, as the service role)'
);
select is_empty(
  $$ select p.proname::text from pg_proc p
     where p.pronamespace = 'public'::regnamespace
       and p.proname in ('admin_update_settings', 'admin_set_conversation_mode', 'admin_acknowledge_alert',
                         'admin_set_member_role', 'admin_remove_member', 'admin_add_member')
       and not p.prosecdef $$,
  'the audited change functions are security definer (they need no user grant on the tables)'
);
select is_empty(
  $$ select p.oid::regprocedure::text from pg_proc p
     where p.pronamespace = 'public'::regnamespace and p.prosecdef
       and p.proname like 'admin\_%'
       and p.prosrc !~ 'private\.require_role' $$,
  'every security definer admin function checks the caller (private.require_role)'
);

-- ---------------------------------------------------------------------------------------------
-- Fixtures (as superuser): an org with an owner and a viewer, a contact and a reminder
-- ---------------------------------------------------------------------------------------------
insert into public.orgs (id, name) values ('d1000000-0000-4000-8000-000000000001', 'Tenant test');
insert into auth.users (id, email) values
  ('d1000000-0000-4000-8000-0000000000a1', 'owner@tenant.test'),
  ('d1000000-0000-4000-8000-0000000000a2', 'viewer@tenant.test');
insert into public.org_members (org_id, user_id, role) values
  ('d1000000-0000-4000-8000-000000000001', 'd1000000-0000-4000-8000-0000000000a1', 'owner'),
  ('d1000000-0000-4000-8000-000000000001', 'd1000000-0000-4000-8000-0000000000a2', 'viewer');
insert into public.assistant_settings (org_id) values ('d1000000-0000-4000-8000-000000000001');
insert into public.contacts (id, org_id, wa_id, opted_out, opted_out_at) values
  ('d1000000-0000-4000-8000-000000000002', 'd1000000-0000-4000-8000-000000000001', '19990002001', true, now());
insert into public.reminders (id, org_id, contact_id, text, due_at) values
  ('d1000000-0000-4000-8000-000000000003', 'd1000000-0000-4000-8000-000000000001',
   'd1000000-0000-4000-8000-000000000002', 'tenant', '2030-01-01 09:00:00+00');

-- ---------------------------------------------------------------------------------------------
-- Constraints (for every writer: these run as superuser)
-- ---------------------------------------------------------------------------------------------
select throws_ok($$ update public.reminders set due_at = '-infinity' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'reminders.due_at: not -infinity');
select throws_ok($$ update public.reminders set due_at = 'infinity' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'reminders.due_at: not infinity');
select throws_ok($$ update public.reminders set due_at = '0044-03-15 12:00:00+00 BC' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'reminders.due_at: not a BC date');
select throws_ok($$ update public.reminders set due_at = '10000-01-01 00:00:00+00' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'reminders.due_at: not year 10000');
select throws_ok($$ update public.reminders set due_at = '1999-12-31 23:59:59+00' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'reminders.due_at: not before 2000');
select throws_ok($$ update public.reminders set due_at = '2100-01-01 00:00:00+00' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'reminders.due_at: before 2100');
select lives_ok($$ update public.reminders set due_at = '2000-01-01 00:00:00+00' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  'reminders.due_at: 2000-01-01 is in range');
select throws_ok($$ update public.reminders set timezone = 'Europe/Madrid; drop' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'reminders.timezone: a zone name');
select throws_ok($$ update public.reminders set text = repeat('r', 1001) where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'reminders.text: at most 1000 characters');
select throws_ok($$ update public.contacts set timezone = repeat('Z', 65) where id = 'd1000000-0000-4000-8000-000000000002' $$,
  '23514', null, 'contacts.timezone: at most 64 characters');
select throws_ok($$ update public.contacts set locale = 'en US' where id = 'd1000000-0000-4000-8000-000000000002' $$,
  '23514', null, 'contacts.locale: a language tag');
select throws_ok($$ update public.contacts set opted_out_at = 'infinity' where id = 'd1000000-0000-4000-8000-000000000002' $$,
  '23514', null, 'contacts.opted_out_at: finite');
select throws_ok($$ update public.orgs set name = repeat('n', 201) where id = 'd1000000-0000-4000-8000-000000000001' $$,
  '23514', null, 'orgs.name: at most 200 characters');
select throws_ok($$ insert into public.whatsapp_numbers (org_id, phone_number_id, display_phone_number)
                    values ('d1000000-0000-4000-8000-000000000001', 'tenant-pnid', repeat('1', 33)) $$,
  '23514', null, 'whatsapp_numbers.display_phone_number: at most 32 characters of a phone number');
select throws_ok($$ update public.assistant_settings set system_prompt = repeat('p', 8001) where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '23514', null, 'assistant_settings.system_prompt: at most 8000 characters');
select throws_ok($$ update public.assistant_settings set system_prompt = e' \n\t ' where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '23514', null, 'assistant_settings.system_prompt: not blank');
select lives_ok($$ update public.assistant_settings set system_prompt = repeat('é', 8000) where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  'assistant_settings.system_prompt: 8000 characters (not bytes) are allowed');
select throws_ok($$ update public.assistant_settings set enabled_tools = array['log_expense', 'DROP TABLE'] where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '23514', null, 'assistant_settings.enabled_tools: names of [a-z0-9_]');
select throws_ok($$ update public.assistant_settings set enabled_tools = array['log_expense', null] where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '23514', null, 'assistant_settings.enabled_tools: no null');
select throws_ok($$ update public.assistant_settings set reply_template = 'Bad Name' where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '23514', null, 'assistant_settings.reply_template: a template name');
select throws_ok($$ update public.assistant_settings set rate_limit_per_minute = 10001 where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '23514', null, 'assistant_settings.rate_limit_per_minute: at most 10000');
select throws_ok($$ update public.assistant_settings set contact_daily_token_cap = 1000000001 where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '23514', null, 'assistant_settings.contact_daily_token_cap: at most 1e9');
select throws_ok($$ insert into public.calendar_connections (org_id, refresh_token)
                    values ('d1000000-0000-4000-8000-000000000001', repeat('t', 4097)) $$,
  '23514', null, 'calendar_connections.refresh_token: at most 4096 characters');
select throws_ok($$ insert into public.plans (name, monthly_token_budget, models) values ('tenant-empty', 1, '{}') $$,
  '23514', null, 'plans.models: at least one model');

-- Models: the org's plan's only (free here), for every writer.
select throws_ok($$ update public.assistant_settings set model = 'gpt-6.1-terra' where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '22023', null, 'a model the plan does not offer is refused');
select throws_ok($$ update public.assistant_settings set fallback_model = 'made-up-model' where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '22023', null, 'a fallback model the plan does not offer is refused');
select lives_ok($$ update public.assistant_settings set model = 'gpt-4.1-mini' where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  'a model the plan offers is accepted');
select ok(
  (select bool_and(p.models @> array['gpt-6-luna', 'claude-haiku-5-5']) from public.plans p),
  'every plan offers the default models of new settings');

-- ---------------------------------------------------------------------------------------------
-- As the org's owner (PostgREST's role and claims)
-- ---------------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims to '{"sub":"d1000000-0000-4000-8000-0000000000a1","role":"authenticated"}';
select throws_ok($$ update public.contacts set opted_out = false where id = 'd1000000-0000-4000-8000-000000000002' $$,
  '42501', null, 'the owner cannot undo a contact''s opt-out');
select throws_ok($$ insert into public.audit_log_entries (org_id, actor_id, action)
                    values ('d1000000-0000-4000-8000-000000000001', 'd1000000-0000-4000-8000-0000000000a1', 'forged') $$,
  '42501', null, 'the owner cannot insert an audit row');
select throws_ok($$ update public.assistant_settings set system_prompt = 'direct' where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  '42501', null, 'the owner cannot write settings directly');
select throws_ok($$ update public.reminders set status = 'sent' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'the owner cannot mark a reminder sent');
select throws_ok($$ update public.reminders set due_at = '-infinity' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  '23514', null, 'the owner cannot give a reminder an infinite date');
select lives_ok($$ update public.reminders set status = 'cancelled', due_at = '2031-01-01 00:00:00+00' where id = 'd1000000-0000-4000-8000-000000000003' $$,
  'the owner can reschedule and cancel a reminder');
select throws_ok($$ select public.admin_update_settings('d1000000-0000-4000-8000-000000000001', jsonb_build_object('system_prompt', repeat('p', 8001))) $$,
  '22023', null, 'admin_update_settings: an oversized prompt is bad input');
select throws_ok($$ select public.admin_update_settings('d1000000-0000-4000-8000-000000000001', '{"model": "gpt-6.1-terra"}') $$,
  '22023', null, 'admin_update_settings: an unoffered model is bad input');
select throws_ok($$ select public.admin_update_settings('d1000000-0000-4000-8000-000000000001', '{"timezone": "Europe/Madrid; drop"}') $$,
  '22023', null, 'admin_update_settings: an odd time zone is bad input');
select throws_ok($$ select public.admin_update_settings('d1000000-0000-4000-8000-000000000001', '{"rate_limit_per_minute": 0}') $$,
  '22023', null, 'admin_update_settings: a rate limit out of range is bad input');
select is(
  public.admin_update_settings('d1000000-0000-4000-8000-000000000001', '{"system_prompt": "Be brief."}') ->> 'system_prompt',
  'Be brief.', 'admin_update_settings changes a valid prompt');
reset role;

set local role authenticated;
set local request.jwt.claims to '{"sub":"d1000000-0000-4000-8000-0000000000a2","role":"authenticated"}';
select throws_ok($$ select public.admin_update_settings('d1000000-0000-4000-8000-000000000001', '{"system_prompt": "viewer"}') $$,
  '42501', null, 'a viewer cannot change settings');
reset role;

-- What landed: the opt-out stands, one audit row (the valid change), no forged one.
select is((select opted_out from public.contacts where id = 'd1000000-0000-4000-8000-000000000002'), true,
  'the opt-out stands');
select results_eq(
  $$ select action, actor_id from public.audit_log_entries where org_id = 'd1000000-0000-4000-8000-000000000001' $$,
  $$ values ('settings.update', 'd1000000-0000-4000-8000-0000000000a1'::uuid) $$,
  'only the audited change wrote an audit row, as its caller');

select * from finish();
rollback;
