-- The assistant (issue 3): what processing needs from the database for the LLM and its tools.
--
--   * whatsapp_claim_message also returns the recent conversation, the settings the assistant
--     uses, the org's token use in its budget period and the contact's use today;
--   * whatsapp_finish_message / whatsapp_fail_message write the turn's ledger (ai_requests and
--     tool_executions rows, ids chosen by the caller so a repeated call writes nothing twice);
--   * two tool functions that need one round trip each (cancel a reminder by its number, sum
--     expenses by currency and category);
--   * calendar_connections: an org's Google Calendar (refresh token readable by no user).
--
-- Every function here is for the service role only. Runs unchanged on hosted Supabase.

-- =============================================================================================
-- Helpers
-- =============================================================================================

-- Midnight today in p_tz (UTC when the zone name is not known).
create or replace function private.local_day_start(p_tz text)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  return date_trunc('day', now() at time zone p_tz) at time zone p_tz;
exception when invalid_parameter_value then
  return date_trunc('day', now() at time zone 'UTC') at time zone 'UTC';
end;
$$;

-- Where the org's token budget period starts: token_period_started_at (moved by invoice.paid)
-- while it is less than a month old, else the start of the calendar month (free plans are
-- never invoiced, so their period would otherwise never end).
create or replace function private.token_period_start(p_started_at timestamptz)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select case
    when p_started_at > now() - interval '1 month' then p_started_at
    else date_trunc('month', now())
  end;
$$;

-- Writes a turn's ledger for message m: p_ledger = {ai_requests: [...], tool_executions: [...]}.
-- Rows carry their own ids (and start times, for created_at), so writing the same ledger twice
-- adds nothing.
create or replace function private.record_ledger(m public.messages, p_ledger jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_ledger is null then
    return;
  end if;
  insert into public.ai_requests
    (id, org_id, contact_id, conversation_id, message_id, provider, model, tokens_in, tokens_out,
     tokens_cached, cost_usd, latency_ms, status, error, created_at)
  select r.id, m.org_id, m.contact_id, m.conversation_id, m.id, r.provider, r.model,
         coalesce(r.tokens_in, 0), coalesce(r.tokens_out, 0), coalesce(r.tokens_cached, 0),
         coalesce(r.cost_usd, 0), r.latency_ms, r.status, r.error, least(coalesce(r.at, now()), now())
  from jsonb_to_recordset(coalesce(p_ledger -> 'ai_requests', '[]')) as r(
    id uuid, provider text, model text, tokens_in int, tokens_out int, tokens_cached int,
    cost_usd numeric, latency_ms int, status text, error text, at timestamptz)
  on conflict (id) do nothing;

  insert into public.tool_executions
    (id, org_id, ai_request_id, contact_id, tool, input, output, status, error, latency_ms,
     created_at)
  select t.id, m.org_id, t.ai_request_id, m.contact_id, t.tool, coalesce(t.input, '{}'),
         t.output, t.status, t.error, t.latency_ms, least(coalesce(t.at, now()), now())
  from jsonb_to_recordset(coalesce(p_ledger -> 'tool_executions', '[]')) as t(
    id uuid, ai_request_id uuid, tool text, input jsonb, output jsonb, status text, error text,
    latency_ms int, at timestamptz)
  on conflict (id) do nothing;
end;
$$;

revoke execute on function
  private.local_day_start(text),
  private.token_period_start(timestamptz),
  private.record_ledger(public.messages, jsonb)
from public, anon, authenticated;
grant execute on function
  private.local_day_start(text),
  private.token_period_start(timestamptz),
  private.record_ledger(public.messages, jsonb)
to service_role;

-- =============================================================================================
-- whatsapp_claim_message: the claim, with everything the assistant needs
-- =============================================================================================
-- As before (claimable: received, failed, or processing with an expired lease; counts the
-- contact's rate limit; null when another worker holds it), plus:
--   history: the conversation's last p_history messages before this one that have a text,
--            oldest first ({direction, type, body, at});
--   budget:  used_tokens since the org's budget period start (private.token_period_start),
--            contact_daily_cap and contact_used_today (since midnight in the contact's zone);
--   settings: fallback_model, enabled_tools, timezone, contact_daily_token_cap;
--   previous_reply: the text of a reply composed by an earlier attempt whose send failed, so a
--            retry sends it again instead of asking the assistant (and running its tools) twice.
drop function if exists public.whatsapp_claim_message(uuid, int);

create or replace function public.whatsapp_claim_message(
  p_message_id uuid, p_lease_seconds int default 120, p_history int default 20)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
  v_limit int;
  v_hits int;
  v_used bigint;
  v_contact_used bigint;
  v_period_start timestamptz;
  v_tz text;
begin
  update public.messages
  set status = 'processing',
      attempts = attempts + 1,
      lease_until = now() + make_interval(secs => p_lease_seconds)
  where id = p_message_id
    and direction = 'inbound'
    and (status in ('received', 'failed') or (status = 'processing' and lease_until < now()))
  returning * into m;
  if not found then
    return null;
  end if;

  select s.rate_limit_per_minute into v_limit
  from public.assistant_settings s where s.org_id = m.org_id;
  select r.hits into v_hits
  from public.rate_limit_hit('contact:' || m.contact_id, 60, coalesce(v_limit, 10), m.org_id) r;

  select private.token_period_start(o.token_period_started_at) into v_period_start
  from public.orgs o where o.id = m.org_id;
  select coalesce(sum(a.tokens_in + a.tokens_out), 0) into v_used
  from public.ai_requests a
  where a.org_id = m.org_id and a.created_at >= v_period_start;

  select coalesce(c.timezone, s.timezone, 'UTC') into v_tz
  from public.contacts c
  left join public.assistant_settings s on s.org_id = c.org_id
  where c.id = m.contact_id;
  select coalesce(sum(a.tokens_in + a.tokens_out), 0) into v_contact_used
  from public.ai_requests a
  where a.contact_id = m.contact_id and a.created_at >= private.local_day_start(v_tz);

  return (
    select jsonb_build_object(
      'message', jsonb_build_object(
        'id', m.id, 'org_id', m.org_id, 'wamid', m.wa_message_id, 'type', m.type,
        'body', m.body, 'payload', m.payload, 'attempts', m.attempts),
      'contact', jsonb_build_object(
        'id', c.id, 'wa_id', c.wa_id, 'name', c.name, 'locale', c.locale,
        'timezone', v_tz, 'opted_out', c.opted_out),
      'conversation', jsonb_build_object(
        'id', v.id, 'mode', v.mode,
        'window_open', coalesce(v.last_inbound_at > now() - interval '24 hours', false)),
      'phone_number_id', n.phone_number_id,
      'settings', jsonb_build_object(
        'system_prompt', s.system_prompt, 'model', s.model, 'fallback_model', s.fallback_model,
        'enabled_tools', to_jsonb(s.enabled_tools), 'language', coalesce(s.language, 'en'),
        'timezone', coalesce(s.timezone, 'UTC'),
        'reply_template', s.reply_template,
        'template_language', coalesce(s.template_language, 'en_US')),
      'rate_limit', jsonb_build_object(
        'limit', coalesce(v_limit, 10), 'hits', v_hits),
      'previous_reply', (select r.body from public.messages r where r.reply_to = m.id),
      'budget', jsonb_build_object(
        'monthly_tokens', o.monthly_token_budget, 'used_tokens', v_used,
        'contact_daily_cap', coalesce(s.contact_daily_token_cap, 20000),
        'contact_used_today', v_contact_used),
      'history', coalesce((
        select jsonb_agg(jsonb_build_object(
                 'direction', h.direction, 'type', h.type, 'body', h.body, 'at', h.created_at)
               order by h.created_at, h.id)
        from (
          select x.direction, x.type, x.body, x.created_at, x.id
          from public.messages x
          where x.conversation_id = m.conversation_id
            and x.id <> m.id
            and x.created_at <= m.created_at
            and x.body is not null
          order by x.created_at desc, x.id desc
          limit greatest(p_history, 0)
        ) h), '[]'))
    from public.contacts c
    join public.conversations v on v.id = m.conversation_id
    join public.whatsapp_numbers n on n.id = v.whatsapp_number_id
    join public.orgs o on o.id = m.org_id
    left join public.assistant_settings s on s.org_id = m.org_id
    where c.id = m.contact_id
  );
end;
$$;

-- =============================================================================================
-- whatsapp_finish_message: as before, plus the ledger and a voice note's transcript
-- =============================================================================================
-- p_result: {outbound_id, outbound_status, wamid, wamids, type, body, error, opt_out, alert,
--            ledger: {ai_requests, tool_executions}, transcript} (every key optional).
-- The transcript becomes the inbound message's body (so it is part of later history).
create or replace function public.whatsapp_finish_message(p_message_id uuid, p_result jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
begin
  select * into m from public.messages where id = p_message_id;
  if not found then
    return;
  end if;

  if p_result ? 'opt_out' then
    update public.contacts
    set opted_out = (p_result ->> 'opt_out')::boolean,
        opted_out_at = case when (p_result ->> 'opt_out')::boolean then now() end
    where id = m.contact_id;
  end if;

  if p_result ? 'outbound_id' then
    update public.conversations set last_message_at = now() where id = m.conversation_id;
  end if;

  update public.messages
  set status = 'processed', lease_until = null, error = null,
      body = coalesce(body, p_result ->> 'transcript')
  where id = p_message_id;

  if p_result ? 'outbound_id' then
    update public.messages
    set status = p_result ->> 'outbound_status',
        wa_message_id = p_result ->> 'wamid',
        type = coalesce(p_result ->> 'type', type),
        body = coalesce(p_result ->> 'body', body),
        payload = payload || jsonb_build_object('wamids', coalesce(p_result -> 'wamids', '[]')),
        error = p_result -> 'error',
        status_at = now()
    where id = (p_result ->> 'outbound_id')::uuid;
  end if;

  if p_result ? 'alert' then
    perform private.raise_alert(m.org_id, p_result -> 'alert' ->> 'kind',
      coalesce(p_result -> 'alert' ->> 'severity', 'warning'), p_result -> 'alert' ->> 'message');
  end if;

  perform private.record_ledger(m, p_result -> 'ledger');
end;
$$;

-- =============================================================================================
-- whatsapp_fail_message: as before, plus the ledger of the failed turn (p_ledger)
-- =============================================================================================
drop function if exists public.whatsapp_fail_message(uuid, text, uuid, jsonb);

create or replace function public.whatsapp_fail_message(
  p_message_id uuid, p_error text, p_outbound_id uuid default null, p_alert jsonb default null,
  p_ledger jsonb default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
  v_pending int;
begin
  update public.messages
  set status = 'failed', lease_until = null, error = jsonb_build_object('message', p_error)
  where id = p_message_id
  returning * into m;
  if not found then
    return;
  end if;

  perform private.record_ledger(m, p_ledger);

  if p_outbound_id is not null then
    update public.messages
    set status = 'failed', error = jsonb_build_object('message', p_error), status_at = now()
    where id = p_outbound_id and status = 'sending';
  end if;

  update public.dead_letter_queue
  set attempts = m.attempts, error = p_error, status = 'pending',
      next_attempt_at = now() + least(interval '6 hours', interval '1 minute' * 2 ^ (m.attempts - 1))
  where kind = 'inbound_message' and ref = m.id::text and status in ('pending', 'retrying');
  if not found then
    insert into public.dead_letter_queue (org_id, kind, ref, payload, error, attempts, next_attempt_at)
    values (m.org_id, 'inbound_message', m.id::text,
            jsonb_build_object('message_id', m.id, 'wamid', m.wa_message_id), p_error, m.attempts,
            now() + least(interval '6 hours', interval '1 minute' * 2 ^ (m.attempts - 1)));
  end if;

  if p_alert is not null then
    perform private.raise_alert(m.org_id, p_alert ->> 'kind',
      coalesce(p_alert ->> 'severity', 'warning'), p_alert ->> 'message');
  end if;

  select count(*) into v_pending
  from public.dead_letter_queue
  where org_id = m.org_id and status in ('pending', 'retrying');
  if m.attempts >= 3 or v_pending >= 5 then
    perform private.raise_alert(m.org_id, 'processing_failures', 'critical',
      'WhatsApp messages keep failing to process; see dead_letter_queue');
  end if;
end;
$$;

-- =============================================================================================
-- Tools that need one round trip
-- =============================================================================================

-- Cancels the contact's p_number-th pending reminder, in the order list_reminders shows them
-- (due_at, then id). Returns the cancelled reminder ({id, text, due_at, recurrence}) or null.
create or replace function public.assistant_cancel_reminder(
  p_org_id uuid, p_contact_id uuid, p_number int)
returns jsonb
language sql
set search_path = ''
as $$
  with target as (
    select r.id
    from public.reminders r
    where r.org_id = p_org_id and r.contact_id = p_contact_id and r.status = 'pending'
    order by r.due_at, r.id
    offset greatest(p_number - 1, 0)
    limit 1
  ),
  cancelled as (
    update public.reminders r
    set status = 'cancelled'
    from target
    where r.id = target.id and r.status = 'pending' and p_number >= 1
    returning r.id, r.text, r.due_at, r.recurrence
  )
  select to_jsonb(cancelled) from cancelled;
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
  public.whatsapp_claim_message(uuid, int, int),
  public.whatsapp_finish_message(uuid, jsonb),
  public.whatsapp_fail_message(uuid, text, uuid, jsonb, jsonb),
  public.assistant_cancel_reminder(uuid, uuid, int),
  public.assistant_expense_summary(uuid, uuid, timestamptz, timestamptz, text)
from public, anon, authenticated;
grant execute on function
  public.whatsapp_claim_message(uuid, int, int),
  public.whatsapp_finish_message(uuid, jsonb),
  public.whatsapp_fail_message(uuid, text, uuid, jsonb, jsonb),
  public.assistant_cancel_reminder(uuid, uuid, int),
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
  calendar_id   text not null default 'primary' check (calendar_id <> ''),
  refresh_token text not null check (refresh_token <> ''),
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now()
);

comment on table public.calendar_connections is 'An org''s Google Calendar for the assistant''s calendar tools; the refresh token is readable by the service role only.';

create trigger calendar_connections_set_updated_at before update on public.calendar_connections
  for each row execute function public.set_updated_at();

alter table public.calendar_connections enable row level security;

create policy calendar_connections_select_member on public.calendar_connections
  for select to authenticated
  using (private.is_org_member(org_id));

create policy calendar_connections_insert_admin on public.calendar_connections
  for insert to authenticated
  with check (private.has_org_role(org_id, array['owner', 'admin']));

create policy calendar_connections_update_admin on public.calendar_connections
  for update to authenticated
  using (private.has_org_role(org_id, array['owner', 'admin']))
  with check (private.has_org_role(org_id, array['owner', 'admin']));

create policy calendar_connections_delete_admin on public.calendar_connections
  for delete to authenticated
  using (private.has_org_role(org_id, array['owner', 'admin']));

revoke all on public.calendar_connections from anon, authenticated;
-- Like every table, anon may select (RLS shows it nothing); no role but service_role reads the token.
grant select (org_id, provider, calendar_id, created_at, updated_at) on public.calendar_connections
  to anon, authenticated;
grant insert (org_id, calendar_id, refresh_token) on public.calendar_connections to authenticated;
grant update (calendar_id, refresh_token) on public.calendar_connections to authenticated;
grant delete on public.calendar_connections to authenticated;
