-- O(1) usage: private.usage_totals is kept by the ledger's own insert, and the hot path (the
-- claim) and the admin summaries read it instead of summing ai_requests. Each read is checked
-- against a total that differs from the ledger's sum, so a read that sums the ledger fails.
begin;
create extension if not exists pgtap;
select plan(20);

insert into public.orgs (id, name, monthly_token_budget, token_period_started_at) values
  ('f1000000-0000-4000-8000-000000000000', 'Usage test org', 100000, now() - interval '2 days');
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number) values
  ('f1000000-0000-4000-8000-000000000001', 'f1000000-0000-4000-8000-000000000000', 'test-pnid-usage', '+1 555 000 0098');
insert into public.assistant_settings (org_id, timezone) values
  ('f1000000-0000-4000-8000-000000000000', 'Asia/Tokyo');
insert into public.contacts (id, org_id, wa_id) values
  ('f1000000-0000-4000-8000-000000000002', 'f1000000-0000-4000-8000-000000000000', '81900000098');
insert into public.conversations (id, org_id, contact_id, whatsapp_number_id, last_inbound_at) values
  ('f1000000-0000-4000-8000-000000000003', 'f1000000-0000-4000-8000-000000000000',
   'f1000000-0000-4000-8000-000000000002', 'f1000000-0000-4000-8000-000000000001', now());
insert into public.messages (id, org_id, conversation_id, contact_id, direction, type, body, status) values
  ('f1000000-0000-4000-8000-000000000004', 'f1000000-0000-4000-8000-000000000000', 'f1000000-0000-4000-8000-000000000003',
   'f1000000-0000-4000-8000-000000000002', 'inbound', 'text', 'hi', 'received');
insert into auth.users (id, email) values ('f1000000-0000-4000-8000-0000000000aa', 'owner@usage.test');
insert into public.org_members (org_id, user_id, role) values
  ('f1000000-0000-4000-8000-000000000000', 'f1000000-0000-4000-8000-0000000000aa', 'owner');

-- Two ledger rows in this period (one statement), one before it.
insert into public.ai_requests (id, org_id, contact_id, provider, model, tokens_in, tokens_out, cost_usd, status, created_at) values
  ('f1000000-0000-4000-8000-000000000011', 'f1000000-0000-4000-8000-000000000000', 'f1000000-0000-4000-8000-000000000002',
   'openai', 'gpt-4o-mini', 100, 10, 0.5, 'success', now()),
  ('f1000000-0000-4000-8000-000000000012', 'f1000000-0000-4000-8000-000000000000', 'f1000000-0000-4000-8000-000000000002',
   'openai', 'gpt-4o-mini', 200, 20, 0.25, 'success', now());
insert into public.ai_requests (org_id, provider, model, tokens_in, tokens_out, status, created_at) values
  ('f1000000-0000-4000-8000-000000000000', 'openai', 'gpt-4o-mini', 1000, 0, 'success', now() - interval '40 days');

create function pg_temp.total(p_bucket text, p_contact boolean) returns bigint language sql as $$
  select sum(tokens_in + tokens_out) from private.usage_totals
  where org_id = 'f1000000-0000-4000-8000-000000000000' and bucket = p_bucket
    and (contact_id is not null) = p_contact
$$;

select is(pg_temp.total('period', false), 330::bigint, 'the period total counts the rows since the period start');
select is(pg_temp.total('local_day', true), 330::bigint, 'the contact''s local day counts its rows');
select is(pg_temp.total('day', false), 1330::bigint, 'the org''s UTC days count every row');
select is(pg_temp.total('month', true), 330::bigint, 'the contact''s UTC month counts its rows');
select throws_ok($$insert into private.usage_totals (org_id, contact_id, bucket, starts_at) values
  ('f1000000-0000-4000-8000-000000000000', 'f1000000-0000-4000-8000-000000000002', 'day', now())$$,
  '23514', null, 'a contact has no day rows (its months serve admin_usage)');
select is((select starts_at from private.usage_totals
           where org_id = 'f1000000-0000-4000-8000-000000000000' and bucket = 'local_day'),
  private.local_day_start('Asia/Tokyo'), 'the local day starts at midnight in the zone (settings)');

-- A ledger written twice adds nothing (record_ledger inserts on conflict do nothing).
insert into public.ai_requests (id, org_id, provider, model, tokens_in, tokens_out, status) values
  ('f1000000-0000-4000-8000-000000000011', 'f1000000-0000-4000-8000-000000000000', 'openai', 'gpt-4o-mini', 100, 10, 'success')
on conflict (id) do nothing;
select is(pg_temp.total('period', false), 330::bigint, 'a ledger row inserted twice counts once');

-- From here the totals differ from the ledger: a read that sums ai_requests sees 330.
update private.usage_totals set tokens_in = tokens_in + 5000, requests = requests + 100
where org_id = 'f1000000-0000-4000-8000-000000000000' and bucket in ('period', 'local_day', 'day', 'month');

create temp table claimed as
select public.whatsapp_claim_message('f1000000-0000-4000-8000-000000000004') as c;
select is((select (c -> 'budget' ->> 'used_tokens')::bigint from claimed), 5330::bigint,
  'the claim reads the org''s period total, not the ledger');
select is((select (c -> 'budget' ->> 'contact_used_today')::bigint from claimed), 5330::bigint,
  'the claim reads the contact''s day total, not the ledger');

set local role authenticated;
set local request.jwt.claims to '{"sub":"f1000000-0000-4000-8000-0000000000aa","role":"authenticated"}';
create temp table overview as
select public.admin_overview('f1000000-0000-4000-8000-000000000000') as o;
select is((select (o -> 'budget' ->> 'used_tokens')::bigint from overview), 5330::bigint,
  'admin_overview reads the period total');
select is((select o -> 'budget' ->> 'period_started_at' from overview),
  to_jsonb(private.token_period_start(now() - interval '2 days')) #>> '{}',
  'admin_overview''s period is the claim''s (private.token_period_start)');
select is((select (o -> 'ai' ->> 'requests')::int from overview), 102,
  'admin_overview''s month reads the daily totals');
create temp table usage as
select public.admin_usage('f1000000-0000-4000-8000-000000000000', current_date - 60, current_date) as u;
select is((select (u -> 'totals' ->> 'tokens_in')::bigint from usage), 11300::bigint,
  'admin_usage''s totals read the daily totals');
select is((select (u -> 'contacts' -> 0 ->> 'tokens')::bigint from usage), 5330::bigint,
  'admin_usage''s contacts read the contact month totals');
select is((select array[u ->> 'contacts_from', u ->> 'contacts_to'] from usage),
  array[date_trunc('month', current_date - 60)::date::text,
        (date_trunc('month', current_date) + interval '1 month - 1 day')::date::text],
  'admin_usage''s contacts cover the calendar months the range touches');
select is((select (u ->> 'contacts_exact')::boolean from usage), true,
  'fewer than 25 contacts: the list is exact');

-- Over 25 contacts in two months (this and the last): C1..C25 cost 1 in both, B1 0.5 in both
-- (each month's top 25 is C1..C25, whose totals 2 reach the bound 1 + 1: exact). Y costs 5
-- this month and 0.2 the last, below the last month's top 25: listed first, with 5.2. Then
-- D1..D25 cost 3 this month only, and X 2.5 this month and 0.9 the last: X (3.4) is in no
-- month's top 25 and beats the listed D's (3), so the list is not exact.
reset role;
-- An org the viewer f1…aa may read, with contacts named <group><n> (n contacts per group) and
-- numbered from p_prefix.
create function pg_temp.tenant(p_org uuid, p_prefix text, p_groups text[], p_sizes int[]) returns void
language sql as $$
  insert into public.orgs (id, name) values (p_org, 'Usage ranking org');
  insert into public.org_members (org_id, user_id, role)
    values (p_org, 'f1000000-0000-4000-8000-0000000000aa', 'viewer');
  insert into public.contacts (org_id, wa_id, name)
    select p_org, p_prefix || g.k || lpad(i::text, 5, '0'), g.name || i
    from unnest(p_groups, p_sizes) with ordinality g(name, n, k), generate_series(1, g.n) i
$$;
\set top 'f2000000-0000-4000-8000-000000000000'
select pg_temp.tenant(:'top', '829', array['C', 'B', 'D', 'X', 'Y'], array[25, 1, 25, 1, 1]);
-- p_months: 0 = this month, 1 = the last.
create function pg_temp.spend(p_org uuid, p_group text, p_cost numeric, p_months int[]) returns void
language sql as $$
  insert into public.ai_requests (org_id, contact_id, provider, model, tokens_in, tokens_out, cost_usd, status, created_at)
  select c.org_id, c.id, 'openai', 'gpt-4o-mini', 1, 1, p_cost, 'success',
         case when k = 0 then now() else date_trunc('month', now(), 'UTC') - interval '1 hour' end
  from public.contacts c, unnest(p_months) k
  where c.org_id = p_org and left(c.name, 1) = p_group
$$;
create function pg_temp.top(p_org uuid) returns json language sql as $$
  select public.admin_usage(p_org, (date_trunc('month', now(), 'UTC') - interval '1 day')::date, current_date)
$$;
select pg_temp.spend(:'top', 'C', 1, array[0, 1]);
select pg_temp.spend(:'top', 'B', 0.5, array[0, 1]);
set local role authenticated;
select is((pg_temp.top(:'top') ->> 'contacts_exact')::boolean, true,
  'each month''s top 25 are the top 25 of both: exact');
reset role;
select pg_temp.spend(:'top', 'Y', 5, array[0]);
select pg_temp.spend(:'top', 'Y', 0.2, array[1]);
set local role authenticated;
select is((select array[t -> 'contacts' -> 0 ->> 'contact_name', t -> 'contacts' -> 0 ->> 'cost_usd',
                        t ->> 'contacts_exact'] from pg_temp.top(:'top') t),
  array['Y1', '5.200000', 'true'],
  'a listed contact missing from a month''s top 25 shows its exact total over both months');
reset role;
select pg_temp.spend(:'top', 'D', 3, array[0]);
select pg_temp.spend(:'top', 'X', 2.5, array[0]);
select pg_temp.spend(:'top', 'X', 0.9, array[1]);
set local role authenticated;
select is((pg_temp.top(:'top') ->> 'contacts_exact')::boolean, false,
  'a contact in no month''s top 25 may beat the list: not exact');

-- A contact left out but above a month's 25th cost: P1..P25 cost 10 this month and 2 the last;
-- Q costs 9 this month (26th) and 5 the last (first). Listed: the P's, 12 each (one of them is
-- in this month's list only, its total read from its months). Q's upper bound 5 + 10 beats
-- them, and so does its true 14: not exact, although the P's reach the bound 10 + 2.
reset role;
\set bound 'f4000000-0000-4000-8000-000000000000'
select pg_temp.tenant(:'bound', '839', array['P', 'Q'], array[25, 1]);
select pg_temp.spend(:'bound', 'P', 10, array[0]);
select pg_temp.spend(:'bound', 'P', 2, array[1]);
select pg_temp.spend(:'bound', 'Q', 9, array[0]);
select pg_temp.spend(:'bound', 'Q', 5, array[1]);
set local role authenticated;
select is((select array[t -> 'contacts' -> 24 ->> 'cost_usd', t ->> 'contacts_exact']
           from pg_temp.top(:'bound') t),
  array['12.000000', 'false'],
  'a candidate left out whose upper bound beats the last listed: not exact');

reset role;
select * from finish();
rollback;
