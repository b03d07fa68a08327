-- RLS that scales (Supabase's RLS performance guidance): a policy computes the caller's orgs
-- once per statement (an initPlan) and never calls a function per row; the column it filters
-- on leads an index. The policy list is read from the catalog, so a policy added later is
-- covered.
begin;
create extension if not exists pgtap;

create schema tap_rls;

-- A policy expression with its once-per-statement parts removed: `( SELECT f(...) AS f)` (a
-- sub-select, planned as an initPlan). What is left must call no function.
create function tap_rls.per_row_part(p_expr text) returns text
language sql immutable as $$
  select regexp_replace(coalesce(p_expr, ''),
    '\( SELECT [a-z_.]+\((ARRAY\[[^]]*\])?\) AS [a-z_]+\)', '', 'g')
$$;

-- Each policy of public and private with what is left of its expressions.
create function tap_rls.policies()
returns table (name text, rel regclass, per_row text)
language sql stable as $$
  select p.polname::text, p.polrelid::regclass,
         tap_rls.per_row_part(pg_get_expr(p.polqual, p.polrelid))
           || ' ' || tap_rls.per_row_part(pg_get_expr(p.polwithcheck, p.polrelid))
  from pg_policy p
  join pg_class c on c.oid = p.polrelid
  where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace)
  order by 1
$$;

-- The column a policy filters on (`col = ANY (...)`), null for a policy without one.
create function tap_rls.policy_column(p_rel regclass, p_name text) returns text
language sql stable as $$
  select substring(pg_get_expr(p.polqual, p.polrelid) from '^\((\w+) = ANY')
  from pg_policy p where p.polrelid = p_rel and p.polname = p_name
$$;

-- True when some index of p_rel has p_col as its first column.
create function tap_rls.leads_an_index(p_rel regclass, p_col text) returns boolean
language sql stable as $$
  select exists (
    select 1 from pg_index i
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
    where i.indrelid = p_rel and a.attname = p_col)
$$;

-- The JSON plan of `select count(*) from p_rel` as the current identity.
create function tap_rls.plan_of(p_rel regclass) returns text
language plpgsql as $$
declare
  v_plan json;
begin
  execute format('explain (format json) select count(*) from %s', p_rel) into v_plan;
  return v_plan::text;
end;
$$;
grant usage on schema tap_rls to authenticated;
grant execute on all functions in schema tap_rls to authenticated;

-- Tables that grow with traffic: their plan is checked under the authenticated role.
create function tap_rls.large_tables() returns regclass[]
language sql immutable as $$
  select array['public.messages', 'public.ai_requests', 'public.contacts', 'public.conversations',
               'public.reminders', 'public.audit_log_entries', 'public.webhooks',
               'public.tool_executions', 'public.dead_letter_queue', 'public.rate_limits',
               'public.expenses', 'public.calendar_events', 'private.usage_totals']::regclass[]
$$;

select plan(2 * (select count(*)::int from tap_rls.policies()) + 2 * cardinality(tap_rls.large_tables()) + 2);

-- The regex removes exactly the initPlan form and keeps a per-row call.
select is(tap_rls.per_row_part('(org_id = ANY (ARRAY( SELECT private.my_org_ids() AS my_org_ids)))'),
  '(org_id = ANY (ARRAY))', 'the initPlan form leaves no call');
select ok(tap_rls.per_row_part('private.is_org_member(org_id)') ~ '\w\(',
  'a per-row call is left for the check to see');

-- No policy calls a function per row.
select ok(p.per_row !~ '\w\(',
  format('policy %s on %s calls no function per row (left: %s)', p.name, p.rel, p.per_row))
from tap_rls.policies() p;

-- Every policy's column leads an index.
select ok(tap_rls.policy_column(p.rel, p.name) is null
          or tap_rls.leads_an_index(p.rel, tap_rls.policy_column(p.rel, p.name)),
  format('policy %s on %s: its column %s leads an index', p.name, p.rel,
         coalesce(tap_rls.policy_column(p.rel, p.name), '(none)')))
from tap_rls.policies() p;

-- Under the authenticated role (the owner of the seed org A), the orgs are an InitPlan and no
-- function or SubPlan runs per row.
set local role authenticated;
set local request.jwt.claims to '{"sub":"aaaaaaaa-0000-0000-0000-000000000001","role":"authenticated"}';

select ok(tap_rls.plan_of(t) like '%"Subplan Name": "InitPlan%',
  format('%s: the caller''s orgs are an InitPlan', t))
from unnest(tap_rls.large_tables()) t;

select ok(tap_rls.plan_of(t) not like '%SubPlan%' and tap_rls.plan_of(t) !~ '"(Filter|Index Cond)": "[^"]*(my_org_ids|is_org_member|has_org_role)',
  format('%s: no function or SubPlan per row', t))
from unnest(tap_rls.large_tables()) t;

reset role;
select * from finish();
rollback;
