-- Admin API (issue 6): what the admin routes need beyond plain reads under RLS.
--
-- The admin routes call PostgREST with the signed-in user's own access token, so that RLS
-- decides what they see. Every change a user may make goes through one of the functions here,
-- and only through them: the tables they write (org_members, assistant_settings,
-- conversations.mode, alerts, audit_log_entries, ...) have no user grant that would let a
-- user write them directly, bypassing the validation and the audit row.
--
--   * security invoker: the reads that aggregate (overview, usage): RLS applies to every row.
--   * security definer (search_path = ''): every change (settings, handoff, alert
--     acknowledgement, member roles, removal and addition, dead-letter replay and discard,
--     staff messages, rate-limit resets). Each checks the caller's membership and role itself
--     (private.require_role: "not yours" 404, "not your role" 403) before touching anything,
--     validates what it writes (the table constraints of 20261123000001_schema.sql back it up)
--     and writes its audit_log_entries row (private.audit) in the same transaction.
--
-- A replayed dead letter is re-driven and settled by the retry cron's own functions
-- (20261123000004_cron.sql), called by the admin route as the service role.
--
-- Errors, as the admin API maps them: P0002 = not visible to the caller (404), 42501 = visible
-- but the caller's role may not do this (403), 55000 = the current state forbids it (409),
-- 22023 = a bad argument (400).
--
-- Runs unchanged on hosted Supabase: no roles, no superuser-only statements.

-- =============================================================================================
-- Helpers (private: not exposed by PostgREST)
-- =============================================================================================

-- Raises P0002 when auth.uid() is not a member of the org (the org does not exist for them),
-- 42501 when they are a member without one of p_roles.
create or replace function private.require_role(p_org_id uuid, p_roles text[])
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_org_id is null or not private.is_org_member(p_org_id) then
    raise exception 'not found' using errcode = 'no_data_found';
  end if;
  if not private.has_org_role(p_org_id, p_roles) then
    raise exception 'this action needs the role %', array_to_string(p_roles, ' or ')
      using errcode = 'insufficient_privilege';
  end if;
end;
$$;

comment on function private.require_role(uuid, text[]) is
  'P0002 unless auth.uid() is a member of the org; 42501 unless their role is one of p_roles.';

-- One audit row, as the caller (auth.uid()). Users hold no insert grant on audit_log_entries and
-- may not execute this: only the security definer functions below (and the service role) call it.
create or replace function private.audit(p_org_id uuid, p_action text, p_target text, p_details jsonb default '{}')
returns void
language sql
set search_path = ''
as $$
  insert into public.audit_log_entries (org_id, actor_id, action, target, details)
  values (p_org_id, auth.uid(), p_action, p_target, coalesce(p_details, '{}'));
$$;

comment on function private.audit(uuid, text, text, jsonb) is
  'Writes one audit_log_entries row for the caller (auth.uid()).';

revoke all on function private.require_role(uuid, text[]) from public, anon;
revoke all on function private.audit(uuid, text, text, jsonb) from public, anon, authenticated;
grant execute on function private.require_role(uuid, text[]) to authenticated, service_role;
grant execute on function private.audit(uuid, text, text, jsonb) to service_role;

-- =============================================================================================
-- conversation_summaries: the admin inbox (one row per conversation with its contact)
-- =============================================================================================

create view public.conversation_summaries
with (security_invoker = true)
as
select
  c.id,
  c.org_id,
  c.contact_id,
  ct.name                                                            as contact_name,
  ct.wa_id                                                           as contact_wa_id,
  ct.username                                                        as contact_username,
  ct.opted_out                                                       as contact_opted_out,
  c.whatsapp_number_id,
  c.group_id,
  -- Human mode from an echo ends when the staff has been idle long enough.
  case when c.human_until <= now() then 'bot' else c.mode end       as mode,
  c.last_inbound_at,
  c.last_message_at,
  private.window_open(c.last_inbound_at)                             as window_open,
  private.window_expires_at(c.last_inbound_at)                       as window_expires_at,
  coalesce(c.last_message_at, c.created_at)                          as activity_at,
  c.created_at
from public.conversations c
join public.contacts ct on ct.id = c.contact_id;

comment on view public.conversation_summaries is
  'Admin inbox: each conversation with its contact, mode, 24 h window state and activity time (sort key).';

revoke insert, update, delete, truncate, references, trigger on public.conversation_summaries
  from anon, authenticated, service_role;

-- =============================================================================================
-- Reads that aggregate (security invoker: RLS applies to every row they count)
-- =============================================================================================

-- The dashboard of one org: this calendar month's (UTC) traffic and the feedback (👍 / 👎) on
-- its replies (private.message_totals), AI
-- cost and Meta's charges (whatsapp: billable messages and their cost; total_cost_usd is both),
-- the token budget of the current budget period (all from private.usage_totals), open alerts,
-- dead letters, the health summary and each WhatsApp number's health.
create or replace function public.admin_overview(p_org_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_org public.orgs;
  v_month timestamptz := date_trunc('month', now(), 'UTC');
  v_period timestamptz;
  v_used bigint;
  v_traffic record;
  v_month_usage record;
begin
  perform private.require_role(p_org_id, array['owner', 'admin', 'viewer']);
  select * into v_org from public.orgs where id = p_org_id;
  v_period := private.token_period_start(v_org.token_period_started_at);
  select coalesce(sum(t.inbound), 0) as inbound, coalesce(sum(t.outbound), 0) as outbound,
         coalesce(sum(t.active_contacts), 0) as active_contacts,
         coalesce(sum(t.positive), 0) as positive, coalesce(sum(t.negative), 0) as negative
  into v_traffic
  from private.message_totals t
  where t.org_id = p_org_id and t.starts_at = v_month;
  select coalesce(sum(u.tokens_in + u.tokens_out), 0) into v_used
  from private.usage_totals u
  where u.org_id = p_org_id and u.bucket = 'period' and u.starts_at = v_period
    and u.contact_id is null;
  select coalesce(sum(u.requests), 0) as requests,
         coalesce(sum(u.tokens_in + u.tokens_out), 0) as tokens,
         coalesce(sum(u.cost_usd), 0) as cost_usd,
         coalesce(sum(u.whatsapp_messages), 0) as whatsapp_messages,
         coalesce(sum(u.whatsapp_cost_usd), 0) as whatsapp_cost_usd
  into v_month_usage
  from private.usage_totals u
  where u.org_id = p_org_id and u.bucket = 'day' and u.starts_at >= v_month
    and u.contact_id is null;

  return jsonb_build_object(
    'org', jsonb_build_object(
      'id', v_org.id, 'name', v_org.name, 'plan', v_org.plan,
      'subscription_status', v_org.subscription_status),
    'month_started_at', v_month,
    'messages', jsonb_build_object('inbound', v_traffic.inbound, 'outbound', v_traffic.outbound),
    'active_contacts', v_traffic.active_contacts,
    'feedback', jsonb_build_object('positive', v_traffic.positive, 'negative', v_traffic.negative),
    'ai', jsonb_build_object(
      'requests', v_month_usage.requests, 'tokens', v_month_usage.tokens,
      'cost_usd', v_month_usage.cost_usd),
    'whatsapp', jsonb_build_object(
      'charged_messages', v_month_usage.whatsapp_messages,
      'cost_usd', v_month_usage.whatsapp_cost_usd),
    'total_cost_usd', v_month_usage.cost_usd + v_month_usage.whatsapp_cost_usd,
    'numbers', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'phone_number_id', n.phone_number_id, 'display_phone_number', n.display_phone_number,
               'quality_event', n.quality_event, 'messaging_limit', n.messaging_limit,
               'account_event', n.account_event, 'restrictions', n.restrictions,
               'health_updated_at', n.health_updated_at) order by n.created_at, n.id), '[]')
      from public.whatsapp_numbers n where n.org_id = p_org_id),
    'budget', jsonb_build_object(
      'monthly_tokens', v_org.monthly_token_budget,
      'used_tokens', v_used,
      'remaining_tokens', greatest(v_org.monthly_token_budget - v_used, 0),
      'period_started_at', v_period),
    'open_alerts', (
      select count(*) from public.alerts a where a.org_id = p_org_id and a.status = 'open'),
    'dead_letters', (
      select count(*) from public.dead_letter_queue d
      where d.org_id = p_org_id and d.status in ('pending', 'retrying')),
    'health', (
      select to_jsonb(h) - 'org_id' from public.system_health_summary h where h.org_id = p_org_id)
  );
end;
$$;

comment on function public.admin_overview(uuid) is
  'Admin dashboard of one org (members only): month traffic, AI cost, budget left, alerts, dead letters, health.';

-- AI usage and Meta's charges (whatsapp_messages, whatsapp_cost_usd) of one org between two
-- UTC dates (inclusive), read from the running totals (private.usage_totals), not from the
-- ledger: totals and days over the range (the org's day rows), and the top 25 contacts by cost over the calendar months the range touches
-- (contacts_from .. contacts_to; the contacts' month rows). Bounded: the candidates are the top
-- 25 of each month (usage_totals_contact_month_cost_idx). A candidate's months in those lists
-- give a lower bound of its cost (exact when it is in every full month's list) and an upper
-- bound (each full month it is missing from adds that month's 25th cost); a contact in no list
-- costs at most the sum of each full month's 25th cost. The 25 highest lower bounds are listed
-- with their exact totals; contacts_exact says they are the true top 25 (fewer than 25
-- contacts, or the last listed costs at least every other contact's upper bound).
create or replace function public.admin_usage(p_org_id uuid, p_from date, p_to date)
returns json
language plpgsql
stable
set search_path = ''
as $$
declare
  v_start timestamptz;
  v_end timestamptz;
  v_months_start timestamptz;
  v_months_end timestamptz;
  v_days json;
  v_totals json;
  v_contacts json;
  v_exact boolean;
begin
  perform private.require_role(p_org_id, array['owner', 'admin', 'viewer']);
  if p_from is null or p_to is null or p_to < p_from or p_to - p_from > 366 then
    raise exception 'from and to must be dates, from <= to, at most 366 days apart'
      using errcode = 'invalid_parameter_value';
  end if;
  v_start := p_from::timestamp at time zone 'UTC';
  v_end := (p_to + 1)::timestamp at time zone 'UTC';
  v_months_start := date_trunc('month', v_start, 'UTC');
  v_months_end := date_trunc('month', p_to::timestamp at time zone 'UTC', 'UTC') + interval '1 month';

  -- json, not jsonb: built from rows as text, about 3x cheaper than one jsonb object per day.
  select coalesce(json_agg(x order by x.day), '[]'),
         json_build_object(
           'requests', coalesce(sum(x.requests), 0),
           'tokens_in', coalesce(sum(x.tokens_in), 0),
           'tokens_out', coalesce(sum(x.tokens_out), 0),
           'tokens_cached', coalesce(sum(x.tokens_cached), 0),
           'cost_usd', coalesce(sum(x.cost_usd), 0),
           'whatsapp_messages', coalesce(sum(x.whatsapp_messages), 0),
           'whatsapp_cost_usd', coalesce(sum(x.whatsapp_cost_usd), 0))
  into v_days, v_totals
  from (
    select (d.starts_at at time zone 'UTC')::date as day, d.requests, d.tokens_in, d.tokens_out,
           d.tokens_cached, d.cost_usd, d.whatsapp_messages, d.whatsapp_cost_usd
    from private.usage_totals d
    where d.org_id = p_org_id and d.bucket = 'day' and d.contact_id is null
      and d.starts_at >= v_start and d.starts_at < v_end) x;

  with tops as materialized (
    select g.m, t.contact_id, t.cost_usd, t.requests, t.tokens
    from generate_series(v_months_start, v_months_end - interval '1 month', interval '1 month') g(m)
    cross join lateral (
      select u.contact_id, u.cost_usd, u.requests, u.tokens_in + u.tokens_out as tokens
      from private.usage_totals u
      where u.org_id = p_org_id and u.bucket = 'month' and u.starts_at = g.m
      order by u.cost_usd desc, u.contact_id
      limit 25) t),
  full_months as (
    select t.m, min(t.cost_usd) as last from tops t group by t.m having count(*) = 25),
  bound as (
    select coalesce(sum(f.last), 0) as cost_usd, count(*) as months from full_months f),
  candidates as (
    select t.contact_id, sum(t.cost_usd) as low, sum(t.requests) as requests,
           sum(t.tokens) as tokens, count(f.m) = (select b.months from bound b) as known,
           sum(t.cost_usd) + (select b.cost_usd from bound b) - coalesce(sum(f.last), 0) as high
    from tops t
    left join full_months f on f.m = t.m
    group by t.contact_id),
  listed as materialized (
    select c.* from candidates c order by c.low desc, c.contact_id limit 25)
  select coalesce(json_agg(x order by x.cost_usd desc, x.tokens desc, x.contact_id), '[]'),
         count(*) < 25 or min(x.cost_usd) >= greatest(
           (select b.cost_usd from bound b),
           (select max(c.high) from candidates c
            where c.contact_id not in (select l.contact_id from listed l)))
  into v_contacts, v_exact
  from (
    select l.contact_id, ct.name as contact_name, ct.wa_id as contact_wa_id,
           ct.username as contact_username,
           coalesce(e.requests, l.requests) as requests, coalesce(e.tokens, l.tokens) as tokens,
           coalesce(e.cost_usd, l.low) as cost_usd
    from listed l
    -- The exact total of a contact missing from some full month's list (one range).
    left join lateral (
      select sum(u.requests) as requests, sum(u.tokens_in + u.tokens_out) as tokens,
             sum(u.cost_usd) as cost_usd
      from private.usage_totals u
      where not l.known and u.org_id = p_org_id and u.bucket = 'month'
        and u.contact_id = l.contact_id
        and u.starts_at >= v_months_start and u.starts_at < v_months_end) e on true
    left join public.contacts ct on ct.id = l.contact_id) x;

  return json_build_object(
    'org_id', p_org_id,
    'from', p_from,
    'to', p_to,
    'totals', v_totals,
    'days', v_days,
    'contacts_from', (v_months_start at time zone 'UTC')::date,
    'contacts_to', (v_months_end at time zone 'UTC')::date - 1,
    'contacts_exact', v_exact,
    'contacts', v_contacts
  );
end;
$$;

comment on function public.admin_usage(uuid, date, date) is
  'AI requests, tokens and cost and Meta''s charges of one org per UTC day, and its top contacts over the months the range touches (members only).';

-- =============================================================================================
-- Changes of one org's rows, with their audit row (security definer: they check the caller)
-- =============================================================================================

-- Partial update of the org's assistant settings: only the keys present change. The values are
-- checked by the table's constraints (the admin API's bounds) and the models by the org's plan
-- (assistant_settings_check_models); a value out of bounds is bad input (22023), as in the API.
create or replace function public.admin_update_settings(p_org_id uuid, p_settings jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_keys text[];
  v_row public.assistant_settings;
  v_constraint text;
begin
  perform private.require_role(p_org_id, array['owner', 'admin']);
  if jsonb_typeof(p_settings) is distinct from 'object' or p_settings = '{}'::jsonb then
    raise exception 'settings: a non-empty object is required' using errcode = 'invalid_parameter_value';
  end if;
  select array_agg(k order by k) into v_keys from jsonb_object_keys(p_settings) k;
  if not v_keys <@ array[
    'system_prompt', 'model', 'fallback_model', 'enabled_tools', 'language', 'timezone',
    'reply_template', 'reminder_template', 'template_language', 'rate_limit_per_minute',
    'contact_daily_token_cap', 'monthly_cost_budget_usd', 'welcome_message',
    'staff_idle_minutes', 'answer_groups'] then
    raise exception 'settings: unknown field' using errcode = 'invalid_parameter_value';
  end if;

  begin
    update public.assistant_settings s set
      system_prompt = case when p_settings ? 'system_prompt' then p_settings ->> 'system_prompt' else s.system_prompt end,
      model = case when p_settings ? 'model' then p_settings ->> 'model' else s.model end,
      fallback_model = case when p_settings ? 'fallback_model' then p_settings ->> 'fallback_model' else s.fallback_model end,
      enabled_tools = case when p_settings ? 'enabled_tools'
        then array(select jsonb_array_elements_text(p_settings -> 'enabled_tools')) else s.enabled_tools end,
      language = case when p_settings ? 'language' then p_settings ->> 'language' else s.language end,
      timezone = case when p_settings ? 'timezone' then p_settings ->> 'timezone' else s.timezone end,
      reply_template = case when p_settings ? 'reply_template' then p_settings ->> 'reply_template' else s.reply_template end,
      reminder_template = case when p_settings ? 'reminder_template' then p_settings ->> 'reminder_template' else s.reminder_template end,
      template_language = case when p_settings ? 'template_language' then p_settings ->> 'template_language' else s.template_language end,
      rate_limit_per_minute = case when p_settings ? 'rate_limit_per_minute'
        then (p_settings ->> 'rate_limit_per_minute')::int else s.rate_limit_per_minute end,
      contact_daily_token_cap = case when p_settings ? 'contact_daily_token_cap'
        then (p_settings ->> 'contact_daily_token_cap')::bigint else s.contact_daily_token_cap end,
      monthly_cost_budget_usd = case when p_settings ? 'monthly_cost_budget_usd'
        then (p_settings ->> 'monthly_cost_budget_usd')::numeric else s.monthly_cost_budget_usd end,
      welcome_message = case when p_settings ? 'welcome_message' then p_settings ->> 'welcome_message' else s.welcome_message end,
      staff_idle_minutes = case when p_settings ? 'staff_idle_minutes'
        then (p_settings ->> 'staff_idle_minutes')::int else s.staff_idle_minutes end,
      answer_groups = case when p_settings ? 'answer_groups'
        then (p_settings ->> 'answer_groups')::boolean else s.answer_groups end
    where s.org_id = p_org_id
    returning * into v_row;
  exception when check_violation then
    get stacked diagnostics v_constraint = constraint_name;
    raise exception 'settings: % is out of bounds',
      coalesce(substring(v_constraint from '^assistant_settings_(.*)_check$'), v_constraint)
      using errcode = 'invalid_parameter_value';
  end;
  if not found then
    raise exception 'the org has no assistant settings' using errcode = 'no_data_found';
  end if;

  perform private.audit(p_org_id, 'settings.update', 'assistant_settings',
    jsonb_build_object('fields', to_jsonb(v_keys)));
  return to_jsonb(v_row);
end;
$$;

comment on function public.admin_update_settings(uuid, jsonb) is
  'Owners/admins: partial update of the org''s assistant_settings, audited.';

-- Bot <-> human: in human mode the assistant does not answer the conversation.
create or replace function public.admin_set_conversation_mode(p_conversation_id uuid, p_mode text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_org uuid;
  v_old text;
begin
  select c.org_id, c.mode into v_org, v_old from public.conversations c where c.id = p_conversation_id;
  if not found then
    raise exception 'conversation not found' using errcode = 'no_data_found';
  end if;
  perform private.require_role(v_org, array['owner', 'admin']);
  if p_mode is null or p_mode not in ('bot', 'human') then
    raise exception 'mode must be bot or human' using errcode = 'invalid_parameter_value';
  end if;

  update public.conversations set mode = p_mode, human_until = null
  where id = p_conversation_id
    and (mode <> p_mode or human_until is not null);
  if found then
    perform private.audit(v_org, 'conversation.handoff', p_conversation_id::text,
      jsonb_build_object('from', v_old, 'to', p_mode));
  end if;
  return (select to_jsonb(s) from public.conversation_summaries s where s.id = p_conversation_id);
end;
$$;

comment on function public.admin_set_conversation_mode(uuid, text) is
  'Owners/admins: hand a conversation to a human (mode human) or back to the bot, audited.';

-- open -> acknowledged (by the caller, now); acknowledging again changes nothing; resolved: 55000.
create or replace function public.admin_acknowledge_alert(p_alert_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_alert public.alerts;
begin
  select * into v_alert from public.alerts a where a.id = p_alert_id;
  if not found then
    raise exception 'alert not found' using errcode = 'no_data_found';
  end if;
  perform private.require_role(v_alert.org_id, array['owner', 'admin']);
  if v_alert.status = 'resolved' then
    raise exception 'the alert is already resolved' using errcode = 'object_not_in_prerequisite_state';
  end if;

  update public.alerts set status = 'acknowledged'
  where id = p_alert_id and status = 'open'
  returning * into v_alert;
  if found then
    perform private.audit(v_alert.org_id, 'alert.acknowledge', p_alert_id::text,
      jsonb_build_object('kind', v_alert.kind));
  else
    select * into v_alert from public.alerts a where a.id = p_alert_id;
  end if;
  return to_jsonb(v_alert);
end;
$$;

comment on function public.admin_acknowledge_alert(uuid) is
  'Owners/admins: acknowledge an open alert of their org, audited.';

-- Owners change a member's role (the last owner stays: org_members_keep_an_owner).
create or replace function public.admin_set_member_role(p_org_id uuid, p_user_id uuid, p_role text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_old text;
begin
  perform private.require_role(p_org_id, array['owner']);
  if p_role is null or p_role not in ('owner', 'admin', 'viewer') then
    raise exception 'role must be owner, admin or viewer' using errcode = 'invalid_parameter_value';
  end if;
  select m.role into v_old from public.org_members m where m.org_id = p_org_id and m.user_id = p_user_id;
  if not found then
    raise exception 'member not found' using errcode = 'no_data_found';
  end if;

  update public.org_members set role = p_role
  where org_id = p_org_id and user_id = p_user_id and role <> p_role;
  if found then
    perform private.audit(p_org_id, 'member.role_change', p_user_id::text,
      jsonb_build_object('from', v_old, 'to', p_role));
  end if;
  return jsonb_build_object('org_id', p_org_id, 'user_id', p_user_id, 'role', p_role);
end;
$$;

comment on function public.admin_set_member_role(uuid, uuid, text) is
  'Owners: change a member''s role, audited; the last owner cannot be demoted.';

create or replace function public.admin_remove_member(p_org_id uuid, p_user_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_role text;
begin
  perform private.require_role(p_org_id, array['owner']);
  delete from public.org_members
  where org_id = p_org_id and user_id = p_user_id
  returning role into v_role;
  if not found then
    raise exception 'member not found' using errcode = 'no_data_found';
  end if;
  perform private.audit(p_org_id, 'member.remove', p_user_id::text, jsonb_build_object('role', v_role));
  return jsonb_build_object('org_id', p_org_id, 'user_id', p_user_id, 'removed', true);
end;
$$;

comment on function public.admin_remove_member(uuid, uuid) is
  'Owners: remove a member, audited; the last owner cannot leave.';

-- =============================================================================================
-- Actions that need more than RLS grants (security definer: they check the caller themselves)
-- =============================================================================================

-- Members with their sign-in email (auth.users is not readable by users).
create or replace function public.admin_list_members(p_org_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  perform private.require_role(p_org_id, array['owner', 'admin', 'viewer']);
  return coalesce((
    select jsonb_agg(jsonb_build_object(
      'user_id', m.user_id, 'email', u.email, 'role', m.role, 'created_at', m.created_at)
      order by m.created_at, m.user_id)
    from public.org_members m
    join auth.users u on u.id = m.user_id
    where m.org_id = p_org_id), '[]');
end;
$$;

comment on function public.admin_list_members(uuid) is
  'Members of an org with their email, for any member of it.';

-- Owners add a user who has signed up, by email.
create or replace function public.admin_add_member(p_org_id uuid, p_email text, p_role text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user uuid;
  v_created timestamptz;
begin
  perform private.require_role(p_org_id, array['owner']);
  if p_role is null or p_role not in ('owner', 'admin', 'viewer') then
    raise exception 'role must be owner, admin or viewer' using errcode = 'invalid_parameter_value';
  end if;
  select u.id into v_user from auth.users u where lower(u.email) = lower(btrim(p_email)) limit 1;
  if v_user is null then
    raise exception 'no user has signed up with this email' using errcode = 'no_data_found';
  end if;

  insert into public.org_members (org_id, user_id, role)
  values (p_org_id, v_user, p_role)
  on conflict (org_id, user_id) do nothing
  returning created_at into v_created;
  if v_created is null then
    raise exception 'this user is already a member' using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform private.audit(p_org_id, 'member.add', v_user::text, jsonb_build_object('role', p_role));
  return jsonb_build_object(
    'user_id', v_user, 'email', lower(btrim(p_email)), 'role', p_role, 'created_at', v_created);
end;
$$;

comment on function public.admin_add_member(uuid, text, text) is
  'Owners: add a signed-up user to the org by email with a role, audited.';

-- Claims a dead letter for a retry now, as the retry cron claims one (status `retrying` with a
-- lease of p_lease_seconds): the caller then re-drives and settles it as the cron does
-- (cron_settle_dead_letter); if the caller dies, the cron takes it over when the lease ends.
-- Only the kinds the cron re-drives (inbound messages, reminders); not one being retried now.
create or replace function public.admin_replay_dead_letter(p_dead_letter_id uuid, p_lease_seconds int)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_entry public.dead_letter_queue;
begin
  select * into v_entry from public.dead_letter_queue d where d.id = p_dead_letter_id for update;
  if not found then
    raise exception 'dead letter not found' using errcode = 'no_data_found';
  end if;
  perform private.require_role(v_entry.org_id, array['owner', 'admin']);
  if v_entry.status in ('resolved', 'discarded') then
    raise exception 'the dead letter is already %', v_entry.status
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_entry.kind not in ('inbound_message', 'reminder') then
    raise exception 'only inbound messages and reminders are retried'
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if v_entry.status = 'retrying' and v_entry.lease_until > now() then
    raise exception 'the dead letter is being retried now'
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  update public.dead_letter_queue
  set status = 'retrying',
      lease_until = now() + make_interval(secs => least(greatest(coalesce(p_lease_seconds, 120), 1), 3600))
  where id = p_dead_letter_id
  returning * into v_entry;
  perform private.audit(v_entry.org_id, 'dead_letter.replay', p_dead_letter_id::text,
    jsonb_build_object('kind', v_entry.kind, 'ref', v_entry.ref));
  return to_jsonb(v_entry);
end;
$$;

comment on function public.admin_replay_dead_letter(uuid, int) is
  'Owners/admins: claim a dead letter (inbound message or reminder) for a retry now, audited.';

create or replace function public.admin_discard_dead_letter(p_dead_letter_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_entry public.dead_letter_queue;
begin
  select * into v_entry from public.dead_letter_queue d where d.id = p_dead_letter_id for update;
  if not found then
    raise exception 'dead letter not found' using errcode = 'no_data_found';
  end if;
  perform private.require_role(v_entry.org_id, array['owner', 'admin']);
  if v_entry.status in ('resolved', 'discarded') then
    raise exception 'the dead letter is already %', v_entry.status
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  update public.dead_letter_queue
  set status = 'discarded', resolved_at = now(), lease_until = null
  where id = p_dead_letter_id
  returning * into v_entry;
  perform private.audit(v_entry.org_id, 'dead_letter.discard', p_dead_letter_id::text,
    jsonb_build_object('kind', v_entry.kind, 'ref', v_entry.ref));
  return to_jsonb(v_entry);
end;
$$;

comment on function public.admin_discard_dead_letter(uuid) is
  'Owners/admins: give up on a dead letter (never retried again), audited.';

-- Clears the rate-limit counters of the org, or of one of its contacts.
create or replace function public.admin_reset_rate_limits(p_org_id uuid, p_contact_id uuid default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_deleted int;
begin
  perform private.require_role(p_org_id, array['owner', 'admin']);
  if p_contact_id is not null and not exists (
    select 1 from public.contacts c where c.id = p_contact_id and c.org_id = p_org_id) then
    raise exception 'contact not found' using errcode = 'no_data_found';
  end if;

  with deleted as (
    delete from public.rate_limits r
    where r.org_id = p_org_id
      and (p_contact_id is null or r.key = 'contact:' || p_contact_id)
    returning 1)
  select count(*) into v_deleted from deleted;
  perform private.audit(p_org_id, 'rate_limits.reset',
    coalesce('contact:' || p_contact_id, 'org'), jsonb_build_object('deleted', v_deleted));
  return jsonb_build_object('deleted', v_deleted);
end;
$$;

comment on function public.admin_reset_rate_limits(uuid, uuid) is
  'Owners/admins: clear the org''s rate-limit counters (or one contact''s), audited.';

-- A staff reply, step 1: checks the caller and the WhatsApp rules, records the message as
-- `sending` with its audit row, and returns what the sender needs. The window closed without
-- an approved reply template, or a contact who opted out: 55000 (nothing recorded).
create or replace function public.admin_begin_staff_message(p_conversation_id uuid, p_text text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v record;
  v_id uuid;
begin
  select c.id, c.org_id, c.contact_id, ct.wa_id, ct.user_id, ct.opted_out, n.phone_number_id,
         c.group_id,
         private.window_open(c.last_inbound_at) as window_open,
         private.usable_template(c.org_id, s.reply_template, s.template_language) as reply_template,
         private.template_language(s.template_language) as template_language
  into v
  from public.conversations c
  join public.contacts ct on ct.id = c.contact_id
  join public.whatsapp_numbers n on n.id = c.whatsapp_number_id
  left join public.assistant_settings s on s.org_id = c.org_id
  where c.id = p_conversation_id;
  if not found then
    raise exception 'conversation not found' using errcode = 'no_data_found';
  end if;
  perform private.require_role(v.org_id, array['owner', 'admin']);
  if p_text is null or btrim(p_text) = '' then
    raise exception 'text is required' using errcode = 'invalid_parameter_value';
  end if;
  if not private.staff_text_fits(p_text) then
    raise exception 'text is longer than 4096 characters' using errcode = 'invalid_parameter_value';
  end if;
  if v.opted_out then
    raise exception 'the contact opted out of messages' using errcode = 'object_not_in_prerequisite_state';
  end if;
  if not v.window_open and v.group_id is not null then
    raise exception 'the group''s 24-hour window is closed (templates are never sent to a group)'
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  if not v.window_open and v.reply_template is null then
    raise exception 'the 24-hour window is closed and the org has no approved reply template'
      using errcode = 'object_not_in_prerequisite_state';
  end if;

  insert into public.messages (org_id, conversation_id, contact_id, direction, type, body, status, payload)
  values (v.org_id, v.id, v.contact_id, 'outbound',
          case when v.window_open then 'text' else 'template' end, p_text, 'sending',
          jsonb_build_object('sent_by', auth.uid()))
  returning id into v_id;
  perform private.audit(v.org_id, 'message.send', p_conversation_id::text,
    jsonb_build_object('message_id', v_id));
  return jsonb_build_object(
    'message_id', v_id, 'wa_id', v.wa_id, 'user_id', v.user_id, 'group_id', v.group_id,
    'phone_number_id', v.phone_number_id,
    'window_open', v.window_open, 'reply_template', v.reply_template,
    'template_language', v.template_language);
end;
$$;

comment on function public.admin_begin_staff_message(uuid, text) is
  'Owners/admins: record a staff reply as sending (window/template/opt-out rules), audited.';

-- A staff reply, step 2 (service role: the outcome of the Graph API call is the system's).
-- p_result: {status: sent|simulated|failed, type, wamid, wamids, error}.
create or replace function public.admin_finish_staff_message(p_message_id uuid, p_result jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_message public.messages;
begin
  -- Only while it is `sending` (a second finish raises); a status other than sent, simulated
  -- or failed raises 22023.
  v_message := private.record_send_outcome(p_message_id, p_result);
  if v_message.id is null then
    raise exception 'no staff message is being sent with this id' using errcode = 'no_data_found';
  end if;
  if v_message.status <> 'failed' then
    update public.conversations set last_message_at = now() where id = v_message.conversation_id;
  end if;
  return jsonb_build_object(
    'id', v_message.id, 'conversation_id', v_message.conversation_id,
    'direction', v_message.direction, 'type', v_message.type, 'body', v_message.body,
    'status', v_message.status, 'wa_message_id', v_message.wa_message_id,
    'error', v_message.error, 'created_at', v_message.created_at, 'status_at', v_message.status_at);
end;
$$;

comment on function public.admin_finish_staff_message(uuid, jsonb) is
  'Service role: record the Graph API outcome of a staff reply begun by admin_begin_staff_message.';

-- =============================================================================================
-- Privileges: users' functions for authenticated only; the system's for service_role only
-- =============================================================================================

revoke execute on function
  public.admin_overview(uuid),
  public.admin_usage(uuid, date, date),
  public.admin_update_settings(uuid, jsonb),
  public.admin_set_conversation_mode(uuid, text),
  public.admin_acknowledge_alert(uuid),
  public.admin_set_member_role(uuid, uuid, text),
  public.admin_remove_member(uuid, uuid),
  public.admin_list_members(uuid),
  public.admin_add_member(uuid, text, text),
  public.admin_replay_dead_letter(uuid, int),
  public.admin_discard_dead_letter(uuid),
  public.admin_reset_rate_limits(uuid, uuid),
  public.admin_begin_staff_message(uuid, text),
  public.admin_finish_staff_message(uuid, jsonb)
from public, anon;

revoke execute on function public.admin_finish_staff_message(uuid, jsonb) from authenticated;
grant execute on function public.admin_finish_staff_message(uuid, jsonb) to service_role;
grant execute on function
  public.admin_overview(uuid),
  public.admin_usage(uuid, date, date),
  public.admin_update_settings(uuid, jsonb),
  public.admin_set_conversation_mode(uuid, text),
  public.admin_acknowledge_alert(uuid),
  public.admin_set_member_role(uuid, uuid, text),
  public.admin_remove_member(uuid, uuid),
  public.admin_list_members(uuid),
  public.admin_add_member(uuid, text, text),
  public.admin_replay_dead_letter(uuid, int),
  public.admin_discard_dead_letter(uuid),
  public.admin_reset_rate_limits(uuid, uuid),
  public.admin_begin_staff_message(uuid, text)
to authenticated;

-- =============================================================================================
-- Erasure of a contact's data on request (owners)
-- =============================================================================================

-- Erases contact p_contact_id: its conversations and messages (with their dead letter entries),
-- reminders, expenses, calendar events, tool executions and rate-limit windows are deleted; its
-- AI requests are kept for the org's cost, without the contact, conversation or message. A
-- contact who opted out keeps only its wa_id and opt-out (so the opt-out is still honoured);
-- any other contact row is deleted (a later message from the number starts afresh). The audit
-- row names the contact's id and the counts, never the erased data. Owners only.
create or replace function public.admin_erase_contact(p_contact_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_contact public.contacts;
  v_counts jsonb;
begin
  select * into v_contact from public.contacts c where c.id = p_contact_id for update;
  if not found then
    raise exception 'contact not found' using errcode = 'no_data_found';
  end if;
  perform private.require_role(v_contact.org_id, array['owner']);

  with refs as (
    select m.id::text as ref from public.messages m where m.contact_id = p_contact_id
    union all
    select r.id::text from public.reminders r where r.contact_id = p_contact_id),
  dead as (
    delete from public.dead_letter_queue d
    where d.org_id = v_contact.org_id and d.ref in (select ref from refs) returning 1),
  ai as (
    update public.ai_requests a set contact_id = null, conversation_id = null, message_id = null
    where a.contact_id = p_contact_id returning 1),
  tools as (delete from public.tool_executions t where t.contact_id = p_contact_id returning 1),
  msgs as (delete from public.messages m where m.contact_id = p_contact_id returning 1),
  rems as (delete from public.reminders r where r.contact_id = p_contact_id returning 1),
  exps as (delete from public.expenses e where e.contact_id = p_contact_id returning 1),
  cal as (delete from public.calendar_events e where e.contact_id = p_contact_id returning 1),
  convs as (delete from public.conversations c where c.contact_id = p_contact_id returning 1),
  limits as (
    delete from public.rate_limits r
    where r.org_id = v_contact.org_id and r.key = 'contact:' || p_contact_id returning 1)
  select jsonb_build_object(
    'messages', (select count(*) from msgs), 'reminders', (select count(*) from rems),
    'expenses', (select count(*) from exps), 'calendar_events', (select count(*) from cal),
    'conversations', (select count(*) from convs), 'tool_executions', (select count(*) from tools),
    'ai_requests_anonymized', (select count(*) from ai), 'dead_letters', (select count(*) from dead),
    'rate_limits', (select count(*) from limits))
  into v_counts;

  if v_contact.opted_out then
    update public.contacts
    set name = null, username = null, locale = null, timezone = null, erased_at = now()
    where id = p_contact_id;
  else
    delete from public.contacts where id = p_contact_id;
  end if;

  v_counts := v_counts || jsonb_build_object('contact_kept_for_opt_out', v_contact.opted_out);
  perform private.audit(v_contact.org_id, 'contact.erase', 'contact:' || p_contact_id, v_counts);
  return v_counts;
end;
$$;

comment on function public.admin_erase_contact(uuid) is
  'Owners: erase a contact''s data (only an opt-out is kept), audited without the erased data.';

revoke execute on function public.admin_erase_contact(uuid) from public, anon;
grant execute on function public.admin_erase_contact(uuid) to authenticated;
