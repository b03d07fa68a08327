-- WhatsApp: the webhook's one-round-trip ingest, and the steps of background processing:
-- claim with a lease (with everything the assistant needs: settings, recent history, rate
-- limit, token budget and the contact's use today), begin a reply, finish (the reply, opt-out,
-- the turn's ledger of ai_requests and tool_executions, a voice note's transcript), fail to the
-- dead letter queue (the ledger and a STOP/START too).
-- Every function here is for the service role only (the webhook and cron routes).

-- =============================================================================================
-- messages: the link from a reply to the message it answers
-- =============================================================================================
-- An outbound message is `sending` from before the Graph API call until its outcome is known.

alter table public.messages
  add column reply_to uuid references public.messages (id) on delete set null;
comment on column public.messages.reply_to is
  'For an outbound reply: the inbound message it answers. At most one reply per message, so a retry never sends twice.';
create unique index messages_reply_to_key on public.messages (reply_to) where reply_to is not null;

-- Poison ends: a message that has used up its attempts (MAX_ATTEMPTS claims, whatever ended
-- them: a failure, a panic, a crash) is discarded and never claimed again.
alter table public.messages
  add column discarded_at timestamptz;
comment on column public.messages.discarded_at is
  'For an inbound message: when it was given up after its last attempt (its dead letter entry is discarded); never claimed again.';

-- =============================================================================================
-- Helpers (private: not exposed by PostgREST)
-- =============================================================================================

-- Outbound statuses only move forward: read never goes back to delivered.
create or replace function private.outbound_status_rank(status text) returns int
language sql immutable
set search_path = ''
as $$
  select case status
    when 'sending' then 0
    when 'simulated' then 1
    when 'sent' then 1
    when 'failed' then 2
    when 'delivered' then 3
    when 'read' then 4
    else -1
  end
$$;

-- Opens an alert unless the org already has an open one of the same kind.
create or replace function private.raise_alert(p_org_id uuid, p_kind text, p_severity text, p_message text)
returns void
language sql
set search_path = ''
as $$
  insert into public.alerts (org_id, kind, severity, message)
  select p_org_id, p_kind, p_severity, p_message
  where not exists (
    select 1 from public.alerts a
    where a.org_id is not distinct from p_org_id and a.kind = p_kind and a.status = 'open'
  )
$$;

-- Gives up inbound message p_message_id for good: failed, discarded_at set (never claimed
-- again), its dead letter entry discarded (created if it has none) and a critical
-- dead_letter_discarded alert naming p_reason. Returns whether the message was discarded now.
create or replace function private.whatsapp_discard_message(p_message_id uuid, p_reason text)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
begin
  update public.messages
  set status = 'failed', lease_until = null, discarded_at = now(),
      error = jsonb_build_object('message', p_reason)
  where id = p_message_id and direction = 'inbound' and discarded_at is null
  returning * into m;
  if not found then
    return false;
  end if;

  update public.dead_letter_queue
  set status = 'discarded', lease_until = null, resolved_at = now(), error = p_reason,
      attempts = greatest(attempts, m.attempts)
  where kind = 'inbound_message' and ref = m.id::text and status in ('pending', 'retrying');
  if not found then
    insert into public.dead_letter_queue
      (org_id, kind, ref, payload, error, attempts, status, resolved_at)
    values (m.org_id, 'inbound_message', m.id::text,
            jsonb_build_object('message_id', m.id, 'wamid', m.wa_message_id), p_reason,
            m.attempts, 'discarded', now());
  end if;

  perform private.raise_alert(m.org_id, 'dead_letter_discarded', 'critical',
    format('A WhatsApp message was discarded: %s; see dead_letter_queue (status discarded).',
           left(p_reason, 300)));
  return true;
end;
$$;

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

-- =============================================================================================
-- whatsapp_ingest: one webhook delivery, stored atomically
-- =============================================================================================
-- p_messages: [{ord, phone_number_id, wa_id, profile_name, wamid, type, body, payload, sent_at}]
-- p_statuses: [{phone_number_id, wamid, status, at, errors, callback}]
-- Routes by phone_number_id (unknown numbers are recorded and ignored), upserts contacts and
-- conversations (an inbound message opens the 24 h window at its own timestamp), inserts
-- messages deduplicated on wamid (concurrent redeliveries cannot both insert), applies
-- statuses (private.whatsapp_apply_statuses), records the delivery in webhooks.
-- Returns {new_message_ids: [uuid], unknown_numbers: int, statuses_applied: int}.
create or replace function public.whatsapp_ingest(p_delivery_id text, p_messages jsonb, p_statuses jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_new uuid[];
  v_unknown int;
  v_applied int;
  v_org uuid;
begin
  select n.org_id into v_org
  from public.whatsapp_numbers n
  where n.phone_number_id in (
    select e ->> 'phone_number_id' from jsonb_array_elements(p_messages || p_statuses) e)
  limit 1;

  select count(*) into v_unknown
  from (select distinct e ->> 'phone_number_id' as id
        from jsonb_array_elements(p_messages || p_statuses) e) ids
  where not exists (select 1 from public.whatsapp_numbers n where n.phone_number_id = ids.id);

  insert into public.webhooks (source, external_id, org_id, event_type, status, error, processed_at)
  values ('whatsapp', p_delivery_id, v_org, 'messages',
          case when v_org is null then 'ignored' else 'processed' end,
          case when v_unknown > 0 then 'unknown phone_number_id' end, now())
  on conflict (source, external_id) do update
    set attempts = public.webhooks.attempts + 1, processed_at = now();

  with incoming as (
    select m.*, n.id as number_id, n.org_id
    from jsonb_to_recordset(p_messages) as m(
      ord int, phone_number_id text, wa_id text, profile_name text, wamid text, type text,
      body text, payload jsonb, sent_at timestamptz)
    join public.whatsapp_numbers n on n.phone_number_id = m.phone_number_id
  ),
  contacts_up as (
    insert into public.contacts as c (org_id, wa_id, name)
    select distinct on (org_id, wa_id) org_id, wa_id, profile_name
    from incoming
    order by org_id, wa_id, ord desc
    on conflict (org_id, wa_id) do update
      set name = coalesce(excluded.name, c.name)
    returning c.id, c.org_id, c.wa_id
  ),
  conversations_up as (
    insert into public.conversations as v
      (org_id, contact_id, whatsapp_number_id, last_inbound_at, last_message_at)
    select i.org_id, c.id, i.number_id, max(least(i.sent_at, now())), max(least(i.sent_at, now()))
    from incoming i
    join contacts_up c on c.org_id = i.org_id and c.wa_id = i.wa_id
    group by i.org_id, c.id, i.number_id
    order by i.number_id, c.id
    on conflict (whatsapp_number_id, contact_id) do update
      set last_inbound_at = greatest(v.last_inbound_at, excluded.last_inbound_at),
          last_message_at = greatest(v.last_message_at, excluded.last_message_at)
    returning v.id, v.contact_id, v.whatsapp_number_id
  ),
  inserted as (
    insert into public.messages
      (org_id, conversation_id, contact_id, direction, wa_message_id, type, body, payload,
       status, created_at)
    select i.org_id, v.id, c.id, 'inbound', i.wamid, i.type, i.body, coalesce(i.payload, '{}'),
           'received', clock_timestamp()
    from incoming i
    join contacts_up c on c.org_id = i.org_id and c.wa_id = i.wa_id
    join conversations_up v on v.contact_id = c.id and v.whatsapp_number_id = i.number_id
    order by i.ord
    on conflict (wa_message_id) do nothing
    returning id, created_at
  )
  select coalesce(array_agg(id order by created_at), '{}') into v_new from inserted;

  v_applied := private.whatsapp_apply_statuses(p_statuses);

  return jsonb_build_object(
    'new_message_ids', to_jsonb(v_new),
    'unknown_numbers', v_unknown,
    'statuses_applied', v_applied);
end;
$$;

-- =============================================================================================
-- whatsapp_claim_message: take an inbound message for processing, with everything needed
-- =============================================================================================
-- Claimable: received, failed (re-driven by cron), or processing with an expired lease.
-- Counts the contact's rate limit and reads the org's budget in the same round trip.
-- Returns null when another worker holds the message (or it is done, or discarded). Each claim
-- counts an attempt; a message with p_max_attempts attempts already is discarded instead
-- (private.whatsapp_discard_message). Besides the message, the contact, the conversation
-- and the org's settings, it returns:
--   history: the conversation's last p_history messages before this one that have a text,
--            oldest first ({direction, type, body, at});
--   budget:  used_tokens since the org's budget period start (private.token_period_start),
--            contact_daily_cap and contact_used_today (since midnight in the contact's zone);
--   previous_reply: the text of a reply composed by an earlier attempt whose send failed, so a
--            retry sends it again instead of asking the assistant (and running its tools) twice.
create or replace function public.whatsapp_claim_message(
  p_message_id uuid, p_lease_seconds int default 120, p_history int default 20,
  p_max_attempts int default 5)
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
  select * into m from public.messages
  where id = p_message_id
    and direction = 'inbound'
    and discarded_at is null
    and (status in ('received', 'failed') or (status = 'processing' and lease_until < now()))
  for update;
  if not found then
    return null;
  end if;
  -- Every claim is an attempt, whatever ends it (a panic or a crash too): a message claimed
  -- p_max_attempts times already is poison, and is discarded instead of claimed again.
  if m.attempts >= p_max_attempts then
    perform private.whatsapp_discard_message(m.id, format(
      'discarded after %s attempts (last error: %s)', m.attempts,
      coalesce(m.error ->> 'message', 'none recorded: the attempt did not finish')));
    return null;
  end if;

  update public.messages
  set status = 'processing',
      attempts = attempts + 1,
      lease_until = now() + make_interval(secs => p_lease_seconds)
  where id = m.id
  returning * into m;

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
-- whatsapp_begin_reply: record the reply before sending it (one reply per inbound message)
-- =============================================================================================
-- Returns {outbound_id, state}: `new` (send it), `sending` (an earlier attempt's outcome is
-- unknown: do not send again), or the status of a reply already sent.
create or replace function public.whatsapp_begin_reply(p_message_id uuid, p_type text, p_body text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
  v_status text;
begin
  insert into public.messages
    (org_id, conversation_id, contact_id, direction, type, body, status, reply_to)
  select m.org_id, m.conversation_id, m.contact_id, 'outbound', p_type, p_body, 'sending', m.id
  from public.messages m
  where m.id = p_message_id
  on conflict (reply_to) where reply_to is not null do nothing
  returning id into v_id;
  if v_id is not null then
    return jsonb_build_object('outbound_id', v_id, 'state', 'new');
  end if;

  -- A reply that failed for certain may be sent again; any other state may not.
  update public.messages
  set status = 'sending', type = p_type, body = p_body, error = null
  where reply_to = p_message_id and status = 'failed'
  returning id into v_id;
  if v_id is not null then
    return jsonb_build_object('outbound_id', v_id, 'state', 'new');
  end if;

  select id, status into v_id, v_status from public.messages where reply_to = p_message_id;
  return jsonb_build_object('outbound_id', v_id, 'state', v_status);
end;
$$;

-- =============================================================================================
-- whatsapp_finish_message: the message is processed; record the reply and side effects
-- =============================================================================================
-- p_result: {outbound_id, outbound_status, wamid, wamids, type, body, error, opt_out, alert,
--            ledger: {ai_requests, tool_executions}, transcript}
-- (every key optional; alert = {kind, severity, message}). The transcript becomes the inbound
-- message's body (so it is part of later history).
-- Rows are locked in the order whatsapp_ingest locks them (contact, conversation, messages),
-- so a redelivery arriving meanwhile cannot deadlock with it.
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
    perform private.whatsapp_record_parts((p_result ->> 'outbound_id')::uuid, p_result -> 'wamids');
  end if;

  if p_result ? 'alert' then
    perform private.raise_alert(m.org_id, p_result -> 'alert' ->> 'kind',
      coalesce(p_result -> 'alert' ->> 'severity', 'warning'), p_result -> 'alert' ->> 'message');
  end if;

  perform private.record_ledger(m, p_result -> 'ledger');
end;
$$;

-- =============================================================================================
-- whatsapp_fail_message: processing failed; park it in the dead letter queue
-- =============================================================================================
-- One dead letter entry per message: attempts and exponential backoff (1, 2, 4 ... min, at most
-- 6 h). Repeated failures (3 attempts of one message, or 5 pending entries in the org) raise
-- an org alert, as does p_alert ({kind, severity, message}, e.g. an expired token). A reply
-- that was being sent is marked failed (known not sent). p_ledger is the failed turn's ledger
-- (as in whatsapp_finish_message). p_opt_out (a STOP or START) is recorded first, so that it
-- counts even when the rest of the processing failed (e.g. the confirmation could not be sent).
-- The attempt numbered p_max_attempts (when given) is the last: the message is discarded
-- (private.whatsapp_discard_message) instead of waiting for a retry.
create or replace function public.whatsapp_fail_message(
  p_message_id uuid, p_error text, p_outbound_id uuid default null, p_alert jsonb default null,
  p_ledger jsonb default null, p_opt_out boolean default null, p_max_attempts int default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
  v_pending int;
begin
  -- Contact first: the order whatsapp_ingest locks rows in.
  if p_opt_out is not null then
    update public.contacts c
    set opted_out = p_opt_out, opted_out_at = case when p_opt_out then now() end
    from public.messages mm
    where mm.id = p_message_id and c.id = mm.contact_id;
  end if;

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

  if p_alert is not null then
    perform private.raise_alert(m.org_id, p_alert ->> 'kind',
      coalesce(p_alert ->> 'severity', 'warning'), p_alert ->> 'message');
  end if;

  -- Its last attempt: poison ends here (never claimed again).
  if m.attempts >= p_max_attempts then
    perform private.whatsapp_discard_message(m.id, format(
      'failed %s attempts (last error: %s)', m.attempts, p_error));
    return;
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

  select count(*) into v_pending
  from public.dead_letter_queue
  where org_id = m.org_id and status in ('pending', 'retrying');
  if m.attempts >= 3 or v_pending >= 5 then
    perform private.raise_alert(m.org_id, 'processing_failures', 'critical',
      'WhatsApp messages keep failing to process; see dead_letter_queue');
  end if;
end;
$$;

-- Service role only (the default privileges would let every role execute them).
revoke execute on function
  public.whatsapp_ingest(text, jsonb, jsonb),
  public.whatsapp_claim_message(uuid, int, int, int),
  public.whatsapp_begin_reply(uuid, text, text),
  public.whatsapp_finish_message(uuid, jsonb),
  public.whatsapp_fail_message(uuid, text, uuid, jsonb, jsonb, boolean, int)
from public, anon, authenticated;
grant execute on function
  public.whatsapp_ingest(text, jsonb, jsonb),
  public.whatsapp_claim_message(uuid, int, int, int),
  public.whatsapp_begin_reply(uuid, text, text),
  public.whatsapp_finish_message(uuid, jsonb),
  public.whatsapp_fail_message(uuid, text, uuid, jsonb, jsonb, boolean, int)
to service_role;
revoke execute on function private.raise_alert(uuid, text, text, text) from public, anon, authenticated;
revoke execute on function private.outbound_status_rank(text) from public, anon, authenticated;
grant execute on function private.raise_alert(uuid, text, text, text), private.outbound_status_rank(text)
  to service_role;
revoke execute on function
  private.whatsapp_discard_message(uuid, text),
  private.local_day_start(text),
  private.token_period_start(timestamptz),
  private.record_ledger(public.messages, jsonb)
from public, anon, authenticated;
grant execute on function
  private.whatsapp_discard_message(uuid, text),
  private.local_day_start(text),
  private.token_period_start(timestamptz),
  private.record_ledger(public.messages, jsonb)
to service_role;

-- =============================================================================================
-- Outcomes: statuses never lost, unknown send outcomes resolved (docs/webhook.md#outcomes)
-- =============================================================================================
-- Every send carries biz_opaque_callback_data = the outbound messages.id, which Meta echoes in
-- the statuses of each part; a status therefore names its message even before the send's
-- wamids are recorded. Statuses go to the parts of a message (a long text is several WhatsApp
-- messages), and the message's status is the status of its least advanced part.

alter table public.messages
  add column sending_since timestamptz;
comment on column public.messages.sending_since is
  'For an outbound message: when its current send began (status became sending, or the outcome resolver sent it again).';
create index messages_sending_since_idx on public.messages (sending_since) where status = 'sending';

create or replace function private.messages_sending_since() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' or old.status is distinct from 'sending' then
    new.sending_since := now();
  end if;
  return new;
end;
$$;
create trigger messages_sending_since
  before insert or update of status on public.messages
  for each row when (new.status = 'sending') execute function private.messages_sending_since();

create table private.whatsapp_message_parts (
  wamid      text primary key,
  message_id uuid not null references public.messages (id) on delete cascade,
  part       int,
  status     text not null default 'sent',
  status_at  timestamptz,
  error      jsonb
);
comment on table private.whatsapp_message_parts is
  'Each WhatsApp message of an outbound message (a long text is split) with its own status; part is null until the send''s wamids are recorded (a status matched by callback data first). Service role only.';
create index whatsapp_message_parts_message_idx on private.whatsapp_message_parts (message_id);

create table private.whatsapp_early_statuses (
  wamid              text primary key,
  whatsapp_number_id uuid not null references public.whatsapp_numbers (id) on delete cascade,
  status             text not null,
  at                 timestamptz not null,
  errors             jsonb,
  received_at        timestamptz not null default now()
);
comment on table private.whatsapp_early_statuses is
  'Statuses whose message is not known yet (no part, wamid or callback data matches): applied when its wamids are recorded, purged after 7 days. Service role only.';
create index whatsapp_early_statuses_received_idx on private.whatsapp_early_statuses (received_at);

create table private.whatsapp_status_stream (
  whatsapp_number_id uuid primary key references public.whatsapp_numbers (id) on delete cascade,
  received_at        timestamptz not null
);
comment on table private.whatsapp_status_stream is
  'When a status of the business number last arrived (this service''s clock, to 10 s): shows that Meta''s status stream for the number works. Service role only.';

alter table private.whatsapp_message_parts enable row level security;
alter table private.whatsapp_early_statuses enable row level security;
alter table private.whatsapp_status_stream enable row level security;
revoke all on private.whatsapp_message_parts, private.whatsapp_early_statuses,
  private.whatsapp_status_stream from public, anon, authenticated;
grant select, insert, update, delete on private.whatsapp_message_parts,
  private.whatsapp_early_statuses, private.whatsapp_status_stream to service_role;

-- Messages p_ids take the status of their least advanced part (never going back), and a
-- reply that was `sending` (outcome unknown) and is now confirmed settles the message it
-- answers (private.whatsapp_settle_answered).
create or replace function private.whatsapp_settle_parts(p_ids uuid[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_unknown uuid[];
begin
  select coalesce(array_agg(id), '{}') into v_unknown
  from public.messages where id = any (p_ids) and status = 'sending';

  with least_part as (
    select p.message_id,
           (array_agg(p.status order by private.outbound_status_rank(p.status)))[1] as status,
           max(p.status_at) as at,
           (array_agg(p.error order by private.outbound_status_rank(p.status)))[1] as error
    from private.whatsapp_message_parts p
    where p.message_id = any (p_ids)
    group by p.message_id
  )
  update public.messages m
  set status = l.status, status_at = coalesce(l.at, m.status_at), error = coalesce(l.error, m.error)
  from least_part l
  where m.id = l.message_id
    and m.status <> 'simulated'
    and private.outbound_status_rank(l.status) > private.outbound_status_rank(m.status);

  perform private.whatsapp_settle_answered(array(
    select id from public.messages where id = any (v_unknown) and status <> 'sending'));
end;
$$;

-- The outbound messages p_ids are settled (sent or confirmed): the inbound messages replies
-- answer are processed (unless a live worker holds one) and their dead letter entries
-- resolved; the reminder occurrence a message delivers (payload occurrence, set when its
-- outcome became unknown: private.cron_mark_unknown) is sent.
create or replace function private.whatsapp_settle_answered(p_ids uuid[])
returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.messages i
  set status = 'processed', lease_until = null, error = null
  from public.messages r
  where r.id = any (p_ids) and i.id = r.reply_to
    and (i.status = 'failed' or (i.status = 'processing' and coalesce(i.lease_until < now(), true)));
  update public.dead_letter_queue d
  set status = 'resolved', resolved_at = now(), lease_until = null
  from public.messages r
  where r.id = any (p_ids) and d.kind = 'inbound_message' and d.ref = r.reply_to::text
    and d.status in ('pending', 'retrying');
  update public.reminders o
  set status = 'sent', lease_token = null, last_error = null, sent_wa_message_id = r.wa_message_id
  from public.messages r
  where r.id = any (p_ids) and o.id = (r.payload ->> 'occurrence')::uuid and o.status = 'failed';
end;
$$;

-- whatsapp_ingest's statuses: p_statuses = [{phone_number_id, wamid, status, at, errors,
-- callback}]. Each goes to its message's part (found by the part's wamid, the message's
-- wamid, or the callback data naming the message), without regressing; one whose message is
-- not known yet is kept in whatsapp_early_statuses. A part that fails raises a
-- `delivery_failed` alert; the 131047 (re-engagement) ones are marked for a template retry by
-- the outcome resolver. Returns how many statuses changed a part.
create or replace function private.whatsapp_apply_statuses(p_statuses jsonb)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_applied int;
  v_touched uuid[];
  v_failed uuid[];
begin
  if coalesce(jsonb_array_length(p_statuses), 0) = 0 then
    return 0;
  end if;

  with numbers as (
    select distinct n.id
    from jsonb_to_recordset(p_statuses) as s(phone_number_id text)
    join public.whatsapp_numbers n on n.phone_number_id = s.phone_number_id
  ),
  fresh as (
    insert into private.whatsapp_status_stream (whatsapp_number_id, received_at)
    select id, now() from numbers order by id
    on conflict do nothing
  )
  update private.whatsapp_status_stream t
  set received_at = now()
  from numbers n
  where t.whatsapp_number_id = n.id and t.received_at < now() - interval '10 seconds';

  with incoming as (
    select distinct on (s.wamid) s.wamid, s.status, s.at, s.errors, s.callback,
           n.id as number_id, n.org_id
    from jsonb_to_recordset(p_statuses) as s(
      phone_number_id text, wamid text, status text, at timestamptz, errors jsonb, callback uuid)
    join public.whatsapp_numbers n on n.phone_number_id = s.phone_number_id
    order by s.wamid, private.outbound_status_rank(s.status) desc
  ),
  matched as (
    select i.*, coalesce(p.message_id, w.id, c.id) as message_id
    from incoming i
    left join private.whatsapp_message_parts p on p.wamid = i.wamid
    left join public.messages w
      on p.wamid is null and w.wa_message_id = i.wamid and w.direction = 'outbound'
    left join public.messages c
      on c.id = i.callback and c.direction = 'outbound' and c.org_id = i.org_id
  ),
  early as (
    insert into private.whatsapp_early_statuses as e (wamid, whatsapp_number_id, status, at, errors)
    select wamid, number_id, status, at, errors from matched where message_id is null
    on conflict (wamid) do update
      set status = excluded.status, at = excluded.at, errors = coalesce(excluded.errors, e.errors)
      where private.outbound_status_rank(excluded.status) > private.outbound_status_rank(e.status)
  ),
  parts as (
    insert into private.whatsapp_message_parts as p (wamid, message_id, status, status_at, error)
    select wamid, message_id, status, at, errors from matched where message_id is not null
    order by wamid
    on conflict (wamid) do update
      set status = excluded.status, status_at = excluded.status_at,
          error = coalesce(excluded.error, p.error)
      where private.outbound_status_rank(excluded.status) > private.outbound_status_rank(p.status)
    returning p.message_id, p.status, p.error
  )
  select count(*), coalesce(array_agg(distinct message_id), '{}'),
         coalesce(array_agg(distinct message_id) filter (where status = 'failed'), '{}')
  into v_applied, v_touched, v_failed
  from parts;

  perform private.whatsapp_settle_parts(v_touched);
  perform private.whatsapp_delivery_failed(v_failed);
  return v_applied;
end;
$$;

-- Parts of messages p_ids failed after Meta accepted them: an alert per org, and a text whose
-- failure is 131047 (outside the 24 h window) marked for a template retry (payload
-- template_retry), which the outcome resolver sends when the org has a template for it.
create or replace function private.whatsapp_delivery_failed(p_ids uuid[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_org uuid;
begin
  if cardinality(p_ids) = 0 then
    return;
  end if;
  update public.messages m
  set payload = m.payload || '{"template_retry": true}'
  where m.id = any (p_ids) and m.type = 'text' and not m.payload ? 'template_retry'
    and exists (
      select 1 from private.whatsapp_message_parts p, jsonb_array_elements(
        case jsonb_typeof(p.error) when 'array' then p.error else '[]' end) e
      where p.message_id = m.id and p.status = 'failed' and e ->> 'code' = '131047');
  for v_org in select distinct org_id from public.messages where id = any (p_ids) loop
    perform private.raise_alert(v_org, 'delivery_failed', 'warning',
      'WhatsApp could not deliver a message it had accepted; see messages.error (status failed).');
  end loop;
end;
$$;

-- The send of outbound message p_message_id is recorded with its wamids (one per part, in
-- order): its parts are stored, the statuses that arrived before them applied
-- (whatsapp_early_statuses), and the message takes its least advanced part's status.
create or replace function private.whatsapp_record_parts(p_message_id uuid, p_wamids jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_message_id is null or coalesce(jsonb_array_length(p_wamids), 0) = 0 then
    return;
  end if;
  insert into private.whatsapp_message_parts as p (wamid, message_id, part)
  select w.wamid, p_message_id, w.ord - 1
  from jsonb_array_elements_text(p_wamids) with ordinality as w(wamid, ord)
  order by w.wamid
  on conflict (wamid) do update set part = excluded.part where p.message_id = excluded.message_id;

  with early as (
    delete from private.whatsapp_early_statuses e
    where e.wamid in (select jsonb_array_elements_text(p_wamids))
    returning e.*
  )
  update private.whatsapp_message_parts p
  set status = e.status, status_at = e.at, error = coalesce(e.errors, p.error)
  from early e
  where p.wamid = e.wamid
    and private.outbound_status_rank(e.status) > private.outbound_status_rank(p.status);

  perform private.whatsapp_settle_parts(array[p_message_id]);
end;
$$;

-- =============================================================================================
-- The outcome resolver (retry-failed): outbound messages whose send outcome is unknown
-- =============================================================================================
-- A message `sending` for longer than p_grace_seconds (longer than any live worker's worst
-- case) has had no status (a status would have moved it). If a status of the same business
-- number arrived after its send began + p_grace_seconds, Meta's status stream works and
-- never accepted it: it is claimed for a resend (sending_since moves to now, so no other run
-- takes it within the grace period; the resend carries the same callback data). If no status
-- of the number arrived since, it is left as it is, and past p_alert_seconds an
-- `outcome_unresolved` alert is raised. Texts marked template_retry (failed with 131047) are
-- claimed too, once. Returns [{id, kind: reply|reminder|staff, body, type, phone_number_id,
-- wa_id, window_open, template, template_language, opted_out, template_retry}].
create or replace function public.whatsapp_claim_unresolved(
  p_grace_seconds int, p_alert_seconds int, p_limit int)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_grace interval := make_interval(secs => p_grace_seconds);
  v_claimed uuid[];
  v_org uuid;
begin
  for v_org in
    select distinct m.org_id
    from public.messages m
    join public.conversations v on v.id = m.conversation_id
    left join private.whatsapp_status_stream s on s.whatsapp_number_id = v.whatsapp_number_id
    where m.status = 'sending'
      and m.sending_since < now() - make_interval(secs => p_alert_seconds)
      and coalesce(s.received_at <= m.sending_since + v_grace, true)
  loop
    perform private.raise_alert(v_org, 'outcome_unresolved', 'critical',
      'WhatsApp sent no status for a while: sends with an unknown outcome wait (messages with status sending).');
  end loop;

  with due as (
    select m.id
    from public.messages m
    join public.conversations v on v.id = m.conversation_id
    left join private.whatsapp_status_stream s on s.whatsapp_number_id = v.whatsapp_number_id
    where m.direction = 'outbound'
      and ((m.status = 'sending' and m.sending_since < now() - v_grace
            and s.received_at > m.sending_since + v_grace)
           or (m.status = 'failed' and m.payload ->> 'template_retry' = 'true'))
    order by m.created_at
    limit p_limit
    for update of m skip locked
  ),
  claimed as (
    update public.messages m
    set sending_since = now(), status = 'sending',
        payload = case when m.payload ? 'template_retry'
                       then m.payload || '{"template_retry": "sent"}' else m.payload end
    from due
    where m.id = due.id
    returning m.id
  )
  select coalesce(array_agg(id), '{}') into v_claimed from claimed;

  return coalesce((
    select jsonb_agg(jsonb_build_object(
      'id', m.id,
      'kind', case when m.reply_to is not null then 'reply'
                   when m.reminder_id is not null then 'reminder' else 'staff' end,
      'body', m.body, 'type', m.type,
      'phone_number_id', n.phone_number_id, 'wa_id', c.wa_id,
      'window_open', coalesce(v.last_inbound_at > now() - interval '24 hours', false)
                     and m.payload ->> 'template_retry' is null,
      'template', case when m.reminder_id is not null then s.reminder_template
                       else s.reply_template end,
      'template_language', coalesce(s.template_language, 'en_US'),
      'opted_out', c.opted_out))
    from public.messages m
    join public.conversations v on v.id = m.conversation_id
    join public.whatsapp_numbers n on n.id = v.whatsapp_number_id
    join public.contacts c on c.id = m.contact_id
    left join public.assistant_settings s on s.org_id = m.org_id
    where m.id = any (v_claimed)), '[]');
end;
$$;

-- The resolver's outcome for outbound message p_message_id. p_result: {status:
-- sent|simulated|failed, wamid, wamids, type, error} (failed: known not sent; a reply is then
-- sent again by the dead letter re-drive). A sent message is settled: its parts recorded, and
-- for a reply the message it answers processed (private.whatsapp_settle_answered).
create or replace function public.whatsapp_record_outcome(p_message_id uuid, p_result jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.messages
  set status = p_result ->> 'status',
      wa_message_id = coalesce(p_result ->> 'wamid', wa_message_id),
      type = coalesce(p_result ->> 'type', type),
      payload = payload || jsonb_build_object('wamids', coalesce(p_result -> 'wamids', '[]')),
      error = p_result -> 'error',
      status_at = now()
  where id = p_message_id and status = 'sending';
  if not found or p_result ->> 'status' = 'failed' then
    return;
  end if;
  -- A template retry replaces the parts that failed.
  delete from private.whatsapp_message_parts
  where message_id = p_message_id
    and wamid not in (select jsonb_array_elements_text(coalesce(p_result -> 'wamids', '[]')));
  perform private.whatsapp_record_parts(p_message_id, p_result -> 'wamids');
  perform private.whatsapp_settle_answered(array[p_message_id]);
end;
$$;

-- Statuses kept for a message that never became known, after 7 days. Returns how many.
create or replace function public.whatsapp_purge_early_statuses(p_limit int)
returns int
language sql
set search_path = ''
as $$
  with old as (
    delete from private.whatsapp_early_statuses
    where wamid in (select wamid from private.whatsapp_early_statuses
                    where received_at < now() - interval '7 days' limit p_limit)
    returning 1
  )
  select count(*)::int from old;
$$;

revoke execute on function
  public.whatsapp_claim_unresolved(int, int, int),
  public.whatsapp_record_outcome(uuid, jsonb),
  public.whatsapp_purge_early_statuses(int),
  private.messages_sending_since(),
  private.whatsapp_settle_parts(uuid[]),
  private.whatsapp_settle_answered(uuid[]),
  private.whatsapp_apply_statuses(jsonb),
  private.whatsapp_delivery_failed(uuid[]),
  private.whatsapp_record_parts(uuid, jsonb)
from public, anon, authenticated;
grant execute on function
  public.whatsapp_claim_unresolved(int, int, int),
  public.whatsapp_record_outcome(uuid, jsonb),
  public.whatsapp_purge_early_statuses(int),
  private.whatsapp_settle_parts(uuid[]),
  private.whatsapp_settle_answered(uuid[]),
  private.whatsapp_apply_statuses(jsonb),
  private.whatsapp_delivery_failed(uuid[]),
  private.whatsapp_record_parts(uuid, jsonb)
to service_role;
