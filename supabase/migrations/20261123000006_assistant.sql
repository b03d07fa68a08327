-- The assistant (issue 3): the tool functions that need one round trip each (cancel a reminder
-- by its number, sum expenses by currency and category), and calendar_connections: an org's
-- Google Calendar (refresh token readable by no user). What processing needs for the LLM
-- (the claim's history and usage, the turn's ledger) is part of the WhatsApp processing
-- functions (20261123000003_whatsapp.sql).
--
-- Every function here is for the service role only. Runs unchanged on hosted Supabase.

-- =============================================================================================
-- Tools' side effects once: every row a tool call writes carries the call's idempotency key
-- =============================================================================================
-- The key (the turn's first message, the tool, the call's number in the turn) is the same in
-- every retry of a turn, so a retried call finds the row its first run wrote instead of writing
-- a second one (insert ... on conflict do nothing, then read the row back).

-- The keys (reminders.idempotency_key and cancel_key, expenses.idempotency_key,
-- calendar_events.idempotency_key, each unique per org) are part of their tables in
-- 20261123000001_schema.sql.
create unique index reminders_cancel_key on public.reminders (org_id, cancel_key)
  where cancel_key is not null;

-- =============================================================================================
-- Tools that need one round trip
-- =============================================================================================

-- Cancels the contact's p_number-th pending reminder, in the order list_reminders shows them
-- (due_at, then id), or, with p_reminder_id (a tapped choice), that pending reminder of the
-- contact, recording the call's key p_key: a retry of the same call returns the reminder it
-- cancelled instead of cancelling the next one. Returns the cancelled reminder
-- ({id, text, due_at, recurrence}) or null.
create or replace function public.assistant_cancel_reminder(
  p_org_id uuid, p_contact_id uuid, p_number int, p_key text default null,
  p_reminder_id uuid default null)
returns jsonb
language sql
set search_path = ''
as $$
  with done as (
    select r.id, r.text, r.due_at, r.recurrence
    from public.reminders r
    where r.org_id = p_org_id and r.cancel_key = p_key
  ),
  target as (
    select r.id
    from public.reminders r
    where r.org_id = p_org_id and r.contact_id = p_contact_id and r.status = 'pending'
      and (p_reminder_id is null or r.id = p_reminder_id)
      and not exists (select 1 from done)
    order by r.due_at, r.id
    offset case when p_reminder_id is null then greatest(p_number - 1, 0) else 0 end
    limit 1
  ),
  cancelled as (
    update public.reminders r
    set status = 'cancelled', cancel_key = p_key
    from target
    where r.id = target.id and r.status = 'pending'
      and (p_reminder_id is not null or p_number >= 1)
    returning r.id, r.text, r.due_at, r.recurrence
  )
  select to_jsonb(x) from (select * from done union all select * from cancelled) x limit 1;
$$;

-- The contact's expenses in [p_from, p_to), optionally of one category (case-insensitive):
-- [{currency, category, total, count}] ordered by currency, then total descending.
create or replace function public.assistant_expense_summary(
  p_org_id uuid, p_contact_id uuid, p_from timestamptz, p_to timestamptz,
  p_category text default null)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(to_jsonb(s) order by s.currency, s.total desc, s.category), '[]')
  from (
    select e.currency::text as currency, e.category, sum(e.amount) as total, count(*) as count
    from public.expenses e
    where e.org_id = p_org_id and e.contact_id = p_contact_id
      and e.spent_at >= p_from and e.spent_at < p_to
      and (p_category is null or lower(e.category) = lower(p_category))
    group by e.currency, e.category
  ) s;
$$;

revoke execute on function
  public.assistant_cancel_reminder(uuid, uuid, int, text, uuid),
  public.assistant_expense_summary(uuid, uuid, timestamptz, timestamptz, text)
from public, anon, authenticated;
grant execute on function
  public.assistant_cancel_reminder(uuid, uuid, int, text, uuid),
  public.assistant_expense_summary(uuid, uuid, timestamptz, timestamptz, text)
to service_role;

-- =============================================================================================
-- calendar_connections: an org's Google Calendar
-- =============================================================================================
-- With a row here (and GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET set), calendar tools create and
-- list events in Google Calendar; otherwise events live in calendar_events only. The refresh
-- token is write-only for users: admins may connect or replace it, nobody but the service role
-- reads it back.
create table public.calendar_connections (
  org_id        uuid primary key references public.orgs (id) on delete cascade,
  provider      text not null default 'google' check (provider = 'google'),
  calendar_id   text not null default 'primary' check (char_length(calendar_id) between 1 and 1024),
  refresh_token text not null check (char_length(refresh_token) between 1 and 4096),
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now()
);

comment on table public.calendar_connections is 'An org''s Google Calendar for the assistant''s calendar tools; the refresh token is readable by the service role only.';

create trigger calendar_connections_set_updated_at before update on public.calendar_connections
  for each row execute function public.set_updated_at();

alter table public.calendar_connections enable row level security;

create policy calendar_connections_select_member on public.calendar_connections
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

create policy calendar_connections_insert_admin on public.calendar_connections
  for insert to authenticated
  with check (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))));

create policy calendar_connections_update_admin on public.calendar_connections
  for update to authenticated
  using (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))))
  with check (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))));

create policy calendar_connections_delete_admin on public.calendar_connections
  for delete to authenticated
  using (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))));

revoke all on public.calendar_connections from anon, authenticated;
-- Like every table, anon may select (RLS shows it nothing); no role but service_role reads the token.
grant select (org_id, provider, calendar_id, created_at, updated_at) on public.calendar_connections
  to anon, authenticated;
grant insert (org_id, calendar_id, refresh_token) on public.calendar_connections to authenticated;
grant update (calendar_id, refresh_token) on public.calendar_connections to authenticated;
grant delete on public.calendar_connections to authenticated;
