-- WhatsApp: the webhook's one-round-trip ingest, and the steps of background processing:
-- claim with a lease (with everything the assistant needs: settings, recent history, rate
-- limit, token budget and the contact's use today), begin a reply, finish (the reply, opt-out,
-- the turn's ledger of ai_requests and tool_executions, a voice note's transcript), fail to the
-- dead letter queue (the ledger and a STOP/START too).
-- Every function here is for the service role only (the webhook and cron routes).

-- =============================================================================================
-- messages: replies, turns, poison ends (the columns are in 20261123000001_schema.sql)
-- =============================================================================================
-- An outbound message is `sending` from before the Graph API call until its outcome is known.
-- messages.reply_to links a reply to the message it answers (at most one reply each).
create unique index messages_reply_to_key on public.messages (reply_to) where reply_to is not null;

-- Poison ends: a message that has used up its attempts (MAX_ATTEMPTS claims, whatever ended
-- them: a failure, a panic, a crash) is discarded (messages.discarded_at) and never claimed
-- again.
-- One turn at a time per conversation: the conversation's row is the turn's lock, and
-- conversations.turn_token / turn_lease_until its lease (whatsapp_claim_message). A message
-- claimed in a turn carries the turn's messages.claim_token: begin, finish and fail succeed
-- only for its holder.
-- A turn's claimable messages, and the replies whose outcome is unknown (the conversation waits).
create index messages_unanswered_idx on public.messages (conversation_id, created_at)
  where direction = 'inbound' and status in ('received', 'processing', 'failed')
    and discarded_at is null;
create index messages_sending_replies_idx on public.messages (conversation_id)
  where status = 'sending' and reply_to is not null;

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

-- Whether message m may be claimed for a turn now: an inbound message not discarded, received or
-- failed (a retry), or processing under a lease that ran out (a crashed worker). The one
-- definition whatsapp_claim_message's three queries use. `language sql`, stable, no `set`
-- clause: inlined into the query (so `set search_path` is deliberately absent; it names only
-- the row's columns and now()), where it is exactly the predicate of the partial index
-- messages_unanswered_idx plus the lease check, so the index still serves a conversation's turn.
create function private.message_claimable(m public.messages)
returns boolean
language sql stable parallel safe
as $$
  select m.direction = 'inbound' and m.discarded_at is null
     and (m.status in ('received', 'failed') or (m.status = 'processing' and m.lease_until < now()))
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

-- Midnight of p_at's day (today by default) in p_tz (UTC when the zone name is not known).
create or replace function private.local_day_start(p_tz text, p_at timestamptz default now())
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  return date_trunc('day', p_at at time zone p_tz) at time zone p_tz;
exception when invalid_parameter_value then
  return date_trunc('day', p_at at time zone 'UTC') at time zone 'UTC';
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

-- =============================================================================================
-- Usage totals: the ledger's running sums, written in the ledger's own transaction
-- =============================================================================================
-- One row per (org, bucket, [contact,] start): `period` = the org's current budget period
-- (private.token_period_start, the one definition the claim, the admin API and billing use),
-- `day` = a UTC day of the org, `month` = a UTC calendar month of one contact (admin_usage's
-- top contacts, read in cost order by usage_totals_contact_month_cost_idx), `local_day` = a
-- contact's day in its time zone (the daily cap). The claim and the admin summaries read these
-- rows instead of summing ai_requests (docs/performance.md). A request counts into the period
-- current when it is recorded (one older than the period start counts in no period), so a
-- period moved by invoice.paid starts from zero. In private (not exposed by PostgREST); members
-- may read their org's rows through the security invoker admin_* functions.
create table private.usage_totals (
  org_id        uuid not null references public.orgs (id) on delete cascade,
  contact_id    uuid references public.contacts (id) on delete cascade,
  bucket        text not null check (bucket in ('period', 'day', 'month', 'local_day')),
  starts_at     timestamptz not null,
  requests      bigint not null default 0,
  tokens_in     bigint not null default 0,
  tokens_out    bigint not null default 0,
  tokens_cached bigint not null default 0,
  cost_usd      numeric(16, 6) not null default 0,
  -- Meta's charges (private.whatsapp_charge_parts): billable message parts and their cost.
  whatsapp_messages bigint not null default 0,
  whatsapp_cost_usd numeric(16, 6) not null default 0,
  constraint usage_totals_contact_bucket check ((bucket in ('month', 'local_day')) = (contact_id is not null)),
  -- Covering: every read of these rows is an index-only range (a contact's months: one range).
  constraint usage_totals_key unique nulls not distinct (org_id, bucket, contact_id, starts_at)
    include (requests, tokens_in, tokens_out, tokens_cached, cost_usd, whatsapp_messages,
             whatsapp_cost_usd)
);

-- A month's contacts in cost order, with what admin_usage shows of them (index-only).
create index usage_totals_contact_month_cost_idx on private.usage_totals
  (org_id, starts_at, cost_usd desc, contact_id) include (requests, tokens_in, tokens_out)
  where bucket = 'month';
-- A contact's deletion cascades here: one index probe, not a scan of every org's rows.
create index usage_totals_contact_id_idx on private.usage_totals (contact_id)
  where contact_id is not null;

comment on table private.usage_totals is
  'Running totals of ai_requests per org budget period and UTC day, per contact UTC month and local day.';

alter table private.usage_totals enable row level security;

create policy usage_totals_select_member on private.usage_totals
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke all on private.usage_totals from public, anon, authenticated;
grant select on private.usage_totals to authenticated, service_role;

-- The usage_totals rows a use of org p_org_id by contact p_contact (null: none) at p_at counts
-- into: the org's budget period (when p_at is in the current one) and UTC day, the contact's UTC
-- month and local day. The one home of the buckets: AI requests (private.count_usage) and
-- Meta's charges (private.whatsapp_charge_parts) both count through it.
create or replace function private.usage_buckets(p_org_id uuid, p_contact_id uuid, p_at timestamptz)
returns table (bucket text, contact_id uuid, starts_at timestamptz)
language sql
stable
set search_path = ''
as $$
  select k.bucket, k.contact_id, k.starts_at
  from public.orgs o
  left join public.contacts c on c.id = p_contact_id
  left join public.assistant_settings s on s.org_id = o.id
  cross join lateral (
    select private.token_period_start(o.token_period_started_at) as period_start) p
  cross join lateral (values
    ('period', null::uuid, case when p_at >= p.period_start then p.period_start end),
    ('day', null::uuid, date_trunc('day', p_at, 'UTC')),
    ('month', p_contact_id, case when p_contact_id is not null then
       date_trunc('month', p_at, 'UTC') end),
    ('local_day', p_contact_id, case when p_contact_id is not null then
       private.local_day_start(coalesce(c.timezone, s.timezone, 'UTC'), p_at) end)
  ) as k(bucket, contact_id, starts_at)
  where o.id = p_org_id and k.starts_at is not null
$$;

revoke all on function private.usage_buckets(uuid, uuid, timestamptz) from public, anon, authenticated;

-- After each insert into ai_requests (statement level, set-based): adds the new rows to their
-- buckets, in key order (concurrent ledgers of one org lock the same rows in the same order).
create or replace function private.count_usage()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.usage_totals as u
    (org_id, contact_id, bucket, starts_at, requests, tokens_in, tokens_out, tokens_cached, cost_usd)
  select r.org_id, k.contact_id, k.bucket, k.starts_at, count(*), sum(r.tokens_in),
         sum(r.tokens_out), sum(r.tokens_cached), sum(r.cost_usd)
  from new_rows r
  cross join lateral private.usage_buckets(r.org_id, r.contact_id, r.created_at) k
  group by r.org_id, k.bucket, k.contact_id, k.starts_at
  order by r.org_id, k.bucket, k.contact_id, k.starts_at
  on conflict on constraint usage_totals_key do update
    set requests = u.requests + excluded.requests,
        tokens_in = u.tokens_in + excluded.tokens_in,
        tokens_out = u.tokens_out + excluded.tokens_out,
        tokens_cached = u.tokens_cached + excluded.tokens_cached,
        cost_usd = u.cost_usd + excluded.cost_usd;
  return null;
end;
$$;

revoke all on function private.count_usage() from public, anon, authenticated;

create trigger ai_requests_count_usage after insert on public.ai_requests
  referencing new table as new_rows
  for each statement execute function private.count_usage();

-- =============================================================================================
-- Message totals: the month's traffic of an org, written by the messages' own insert
-- =============================================================================================
-- admin_overview's month counts (inbound, outbound, active contacts) read these rows instead of
-- counting the month's messages (docs/performance.md). One row per (org, UTC month, writer):
-- the writer is the inserting backend's pid, so concurrent writers never wait for one another
-- on a counter row (a month of an org has as many rows as connections wrote it).
-- active_contacts counts a contact once per UTC month, with its first inbound message of it
-- (private.contact_months remembers who was counted). Traffic counts: an erased or purged
-- message stays counted. positive / negative: the 👍 / 👎 reactions on the assistant's replies
-- sent in the month (private.count_feedback; a changed or removed reaction moves its count).
create table private.message_totals (
  org_id          uuid not null references public.orgs (id) on delete cascade,
  starts_at       timestamptz not null,
  writer          int not null,
  inbound         bigint not null default 0,
  outbound        bigint not null default 0,
  active_contacts bigint not null default 0,
  positive        bigint not null default 0,
  negative        bigint not null default 0,
  primary key (org_id, starts_at, writer)
    include (inbound, outbound, active_contacts, positive, negative)
);

create table private.contact_months (
  contact_id uuid not null references public.contacts (id) on delete cascade,
  starts_at  timestamptz not null,
  primary key (contact_id, starts_at)
);

comment on table private.message_totals is
  'Messages per org, UTC month and writing connection (inbound, outbound, contacts first active in the month).';
comment on table private.contact_months is
  'The UTC months in which a contact sent a message (counted once into message_totals.active_contacts).';

alter table private.message_totals enable row level security;
alter table private.contact_months enable row level security;

create policy message_totals_select_member on private.message_totals
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke all on private.message_totals, private.contact_months from public, anon, authenticated;
grant select on private.message_totals to authenticated, service_role;

-- After each insert into messages (statement level, set-based): counts the new rows into their
-- org's month, and each contact's first inbound message of a month into active_contacts.
create or replace function private.count_messages()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  with firsts as (
    insert into private.contact_months (contact_id, starts_at)
    select distinct r.contact_id, date_trunc('month', r.created_at, 'UTC')
    from new_rows r
    where r.direction = 'inbound'
    order by 1, 2
    on conflict do nothing
    returning contact_id, starts_at
  ), counts as (
    select r.org_id, date_trunc('month', r.created_at, 'UTC') as starts_at,
           count(*) filter (where r.direction = 'inbound') as inbound,
           count(*) filter (where r.direction = 'outbound') as outbound, 0 as active_contacts
    from new_rows r
    group by 1, 2
    union all
    -- The org from the new rows, not from contacts: the ingest runs this with nested loops
    -- off, so a join to contacts would scan the table.
    select r.org_id, f.starts_at, 0, 0, 1
    from firsts f
    join (select distinct n.contact_id, n.org_id from new_rows n) r on r.contact_id = f.contact_id
  )
  insert into private.message_totals as t (org_id, starts_at, writer, inbound, outbound, active_contacts)
  select c.org_id, c.starts_at, pg_backend_pid(), sum(c.inbound), sum(c.outbound), sum(c.active_contacts)
  from counts c
  group by 1, 2
  order by 1, 2
  on conflict (org_id, starts_at, writer) do update
    set inbound = t.inbound + excluded.inbound,
        outbound = t.outbound + excluded.outbound,
        active_contacts = t.active_contacts + excluded.active_contacts;
  return null;
end;
$$;

revoke all on function private.count_messages() from public, anon, authenticated;

-- A reaction on a reply of org p_org sent at p_sent_at went from p_old to p_new (either null:
-- none): moves the reply's month's feedback counts (👍 positive, 👎 negative, any skin tone).
create or replace function private.count_feedback(
  p_org uuid, p_sent_at timestamptz, p_old text, p_new text)
returns void
language plpgsql
security definer  -- writes private.message_totals, which the service role only reads
set search_path = ''
as $$
declare
  v_positive int := (coalesce(p_new, '') like '👍%')::int - (coalesce(p_old, '') like '👍%')::int;
  v_negative int := (coalesce(p_new, '') like '👎%')::int - (coalesce(p_old, '') like '👎%')::int;
begin
  if v_positive = 0 and v_negative = 0 then
    return;
  end if;
  insert into private.message_totals as t (org_id, starts_at, writer, positive, negative)
  values (p_org, date_trunc('month', p_sent_at, 'UTC'), pg_backend_pid(), v_positive, v_negative)
  on conflict (org_id, starts_at, writer) do update
    set positive = t.positive + excluded.positive, negative = t.negative + excluded.negative;
end;
$$;

revoke all on function private.count_feedback(uuid, timestamptz, text, text)
  from public, anon, authenticated;
grant execute on function private.count_feedback(uuid, timestamptz, text, text) to service_role;

create trigger messages_count_messages after insert on public.messages
  referencing new table as new_rows
  for each statement execute function private.count_messages();

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

-- Counts each newly stored inbound message (p_ids, in arrival order) once in its contact's
-- rate-limit window (60 s, key contact:<id>) and records its number there in
-- messages.rate_hits: claims read it, so re-drives and replays never count again.
create or replace function private.count_inbound(p_ids uuid[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  x record;
begin
  for x in
    select m.id, m.contact_id, m.org_id from public.messages m
    where m.id = any(p_ids) and m.direction = 'inbound'
    order by m.created_at, m.id
  loop
    update public.messages
    set rate_hits = (select r.hits
                     from public.rate_limit_hit('contact:' || x.contact_id, 60, 0, x.org_id) r)
    where id = x.id;
  end loop;
end;
$$;

-- =============================================================================================
-- Meta's charges: a price per category and market, charged once per billable message part
-- =============================================================================================
-- USD per delivered message, by pricing category (the `pricing.category` of Meta's status
-- webhooks), market and start date. The market is the recipient's country calling code (the
-- longest one that prefixes the contact's wa_id wins; 'other' is the fallback). Operators keep
-- it current with SQL (service role): a new price is a new row with its effective_from, the old
-- rows stay for the charges already made. The defaults below are Meta's per-message rates
-- effective 2025-07-01 for a few markets, as third-party copies of Meta's rate card list them
-- (docs.sent.dm/docs/guides/whatsapp-pricing, https://developers.facebook.com/docs/whatsapp/pricing);
-- service messages are charged from 2026-10-01 at the market's utility rate (per third-party
-- summaries of Meta's announcement: chakrahq.com, hello-charles.com). Check them against Meta's
-- current rate card before relying on them: docs/operations.md#whatsapp-prices.
create table private.whatsapp_prices (
  category       text not null check (category in ('marketing', 'marketing_lite', 'utility',
                   'authentication', 'authentication_international', 'service')),
  market         text not null check (market ~ '^([0-9]{1,4}|other)$'),
  effective_from date not null,
  price_usd      numeric(10, 6) not null check (price_usd between 0 and 100),
  primary key (category, market, effective_from)
);
comment on table private.whatsapp_prices is
  'USD per billable WhatsApp message by pricing category, market (calling code or other) and start date. Service role only.';

alter table private.whatsapp_prices enable row level security;
revoke all on private.whatsapp_prices from public, anon, authenticated;
grant select, insert, update, delete on private.whatsapp_prices to service_role;

insert into private.whatsapp_prices (category, market, effective_from, price_usd)
select c.category, r.market, d.effective_from,
       case c.category when 'marketing' then r.marketing when 'marketing_lite' then r.marketing
                       when 'authentication' then r.authentication else r.utility end
from (values
  -- market: North America (+1), Brazil, India, Mexico, Germany, United Kingdom, Indonesia, other
  ('1', 0.0250, 0.0040, 0.0135), ('55', 0.0625, 0.0068, 0.0068), ('91', 0.0118, 0.0014, 0.0014),
  ('52', 0.0305, 0.0085, 0.0085), ('49', 0.1365, 0.0550, 0.0768), ('44', 0.0529, 0.0220, 0.0358),
  ('62', 0.0411, 0.0250, 0.0250), ('other', 0.0604, 0.0077, 0.0077)
) as r(market, marketing, utility, authentication)
cross join (values ('marketing'), ('marketing_lite'), ('utility'), ('authentication'),
                   ('service')) c(category)
cross join lateral (values (case c.category when 'service' then date '2026-10-01'
                                             else date '2025-07-01' end)) d(effective_from);

-- The price of a message of pricing category p_category to wa_id p_wa_id charged at p_at: the
-- longest calling code of the category that prefixes the number, else 'other'; the latest
-- price in effect then. Null when the category has no price.
create or replace function private.whatsapp_price(p_category text, p_wa_id text, p_at timestamptz)
returns numeric
language sql
stable
set search_path = ''
as $$
  select w.price_usd
  from private.whatsapp_prices w
  where w.category = p_category and w.effective_from <= p_at
    and (w.market = 'other' or starts_with(coalesce(p_wa_id, ''), w.market))
  order by w.market <> 'other' desc, length(w.market) desc, w.effective_from desc
  limit 1
$$;

revoke all on function private.whatsapp_price(text, text, timestamptz) from public, anon, authenticated;

-- Charges message parts: p_charges = [{wamid, charge}], charge = the pricing category of a
-- billable status (the webhook parser decides what is billable: lib/src/whatsapp/pricing.rs),
-- null when not billable. The category is noted on the part (its first billable status: sent,
-- usually), and a part is charged once it is delivered or read (Meta charges delivered
-- messages only; a read status may come without the delivered one, and without pricing).
-- Each part is charged once, whatever its statuses and their redeliveries (charged_at; a
-- concurrent charge of the same part waits for the first, then finds it charged), at its price
-- (private.whatsapp_price, 0 when the category has none), counted into the usage totals of its
-- org and contact beside AI cost (private.usage_buckets). A status of a part not known yet
-- keeps its charge in whatsapp_early_statuses until the send's wamids are recorded.
create or replace function private.whatsapp_charge_parts(p_charges jsonb)
returns void
language plpgsql
security definer  -- writes private.usage_totals, which the service role only reads
set search_path = ''
as $$
declare
  v_wamids text[];
begin
  if coalesce(jsonb_array_length(p_charges), 0) = 0 then
    return;
  end if;
  select array_agg(distinct c.wamid) into v_wamids
  from jsonb_to_recordset(p_charges) as c(wamid text);

  update private.whatsapp_message_parts p
  set charge = c.charge
  from (select distinct on (c.wamid) c.wamid, c.charge
        from jsonb_to_recordset(p_charges) as c(wamid text, charge text)
        where c.charge is not null
        order by c.wamid, c.charge) c
  where p.wamid = c.wamid and p.charge is null;

  with priced as materialized (
    select p.wamid, m.org_id, m.contact_id, p.charge,
           coalesce(private.whatsapp_price(p.charge, c.wa_id, now()), 0) as cost_usd
    from private.whatsapp_message_parts p
    join public.messages m on m.id = p.message_id
    left join public.contacts c on c.id = m.contact_id
    where p.wamid = any (v_wamids) and p.charge is not null and p.charged_at is null
      and p.status in ('delivered', 'read')
  ),
  charged as (
    update private.whatsapp_message_parts p
    set charged_at = now(), cost_usd = x.cost_usd
    from priced x
    where p.wamid = x.wamid and p.charged_at is null
    returning p.wamid
  )
  insert into private.usage_totals as u
    (org_id, contact_id, bucket, starts_at, whatsapp_messages, whatsapp_cost_usd)
  select x.org_id, k.contact_id, k.bucket, k.starts_at, count(*), sum(x.cost_usd)
  from priced x
  join charged using (wamid)
  cross join lateral private.usage_buckets(x.org_id, x.contact_id, now()) k
  group by x.org_id, k.bucket, k.contact_id, k.starts_at
  order by x.org_id, k.bucket, k.contact_id, k.starts_at
  on conflict on constraint usage_totals_key do update
    set whatsapp_messages = u.whatsapp_messages + excluded.whatsapp_messages,
        whatsapp_cost_usd = u.whatsapp_cost_usd + excluded.whatsapp_cost_usd;
end;
$$;

revoke all on function private.whatsapp_charge_parts(jsonb) from public, anon, authenticated;
grant execute on function private.whatsapp_charge_parts(jsonb) to service_role;

-- =============================================================================================
-- Number and account health: Meta's account webhooks, recorded per number, template, contact
-- =============================================================================================
-- The org's message templates as Meta's webhooks last described them
-- (message_template_status_update, message_template_quality_update), per WABA of the org.
create table public.whatsapp_templates (
  org_id      uuid not null references public.orgs (id) on delete cascade,
  name        text not null check (char_length(name) between 1 and 512 and name ~ '^[a-z0-9_]+$'),
  language    text not null check (language ~ '^[A-Za-z0-9_]{1,15}$'),
  template_id text check (template_id ~ '^[0-9]{1,32}$'),
  status      text check (status ~ '^[A-Z0-9_]{1,64}$'),
  category    text check (category ~ '^[A-Z0-9_]{1,64}$'),
  quality     text check (quality ~ '^[A-Z0-9_]{1,64}$'),
  reason      text check (char_length(reason) <= 512),
  updated_at  timestamptz not null default now(),
  primary key (org_id, name, language)
);
comment on table public.whatsapp_templates is
  'Message templates as Meta''s webhooks last described them: status (APPROVED, PAUSED, DISABLED...), category, quality.';

create trigger whatsapp_templates_set_updated_at before update on public.whatsapp_templates
  for each row execute function public.set_updated_at();

alter table public.whatsapp_templates enable row level security;

create policy whatsapp_templates_select_member on public.whatsapp_templates
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.whatsapp_templates from anon, authenticated;

-- Template statuses in which Meta does not send the template.
create function private.template_unusable(p_status text)
returns boolean
language sql immutable parallel safe
as $$
  select coalesce(p_status in ('PAUSED', 'DISABLED', 'REJECTED', 'PENDING', 'IN_APPEAL',
                               'PENDING_DELETION', 'DELETED', 'ARCHIVED'), false)
$$;

revoke execute on function private.template_unusable(text) from public;
grant execute on function private.template_unusable(text) to authenticated, service_role;

-- The org's template p_name in p_language, or null when Meta paused, disabled or rejected it
-- (private.template_unusable): every place that hands a template to the send step reads it
-- through this, so a template Meta stopped is never sent (the send then fails that item:
-- outside the window with no usable template).
create function private.usable_template(p_org_id uuid, p_name text, p_language text)
returns text
language sql stable
set search_path = ''
as $$
  select case when exists (
    select 1 from public.whatsapp_templates t
    where t.org_id = p_org_id and t.name = p_name
      and t.language = private.template_language(p_language)
      and private.template_unusable(t.status)) then null else p_name end
$$;

revoke execute on function private.usable_template(uuid, text, text) from public;
grant execute on function private.usable_template(uuid, text, text) to authenticated, service_role;

-- whatsapp_ingest's account events (lib/src/whatsapp/account.rs): p_events = [{kind, waba_id,
-- ...}], kind one of
--   account          {event, ban_state, restrictions}: the WABA's numbers (waba_id) record the
--                    event and, for ACCOUNT_RESTRICTION, the restrictions; a restriction, a
--                    ban or a disabled account raises a critical whatsapp_account_restricted
--                    alert, a violation a whatsapp_account_violation warning;
--   number_quality   {display_phone_number, event, messaging_limit}: the number (by WABA and
--                    display digits) records them; FLAGGED or DOWNGRADE raises a
--                    whatsapp_number_quality warning, UNFLAGGED or UPGRADE resolves it;
--   template_status  {template_id, name, language, event, category, reason} and
--   template_quality {template_id, name, language, quality}: the template of each org of the
--                    WABA; a paused, disabled or rejected template that is the org's
--                    reply_template or reminder_template raises a critical
--                    whatsapp_template_unusable alert;
--   marketing        {phone_number_id, wa_id, stopped, at}: the contact's marketing_stopped_at.
-- Each event is applied alone: one that fails (a value the table refuses) is skipped with a
-- warning in the database log, never failing the delivery.
create or replace function private.whatsapp_apply_account_events(p_events jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
  e record;
  v_org uuid;
begin
  if coalesce(jsonb_array_length(p_events), 0) = 0 then
    return;
  end if;
  for e in
    select * from jsonb_to_recordset(p_events) as x(
      kind text, waba_id text, event text, ban_state text, restrictions jsonb,
      display_phone_number text, messaging_limit text, template_id text, name text,
      language text, category text, reason text, quality text, phone_number_id text,
      wa_id text, stopped boolean, at timestamptz)
  loop
    begin
      if e.kind = 'account' then
        for v_org in
          update public.whatsapp_numbers n
          set account_event = e.event, health_updated_at = now(),
              restrictions = case when e.event = 'ACCOUNT_RESTRICTION'
                                  then coalesce(e.restrictions, '[]') else n.restrictions end
          where n.waba_id = e.waba_id
          returning n.org_id
        loop
          if (e.event = 'ACCOUNT_RESTRICTION' and jsonb_array_length(coalesce(e.restrictions, '[]')) > 0)
             or (e.event = 'DISABLED_UPDATE' and coalesce(e.ban_state, '') <> 'REINSTATE')
             or e.event in ('ACCOUNT_DELETED', 'ACCOUNT_OFFBOARDED') then
            perform private.raise_alert(v_org, 'whatsapp_account_restricted', 'critical',
              'Meta restricted or disabled the WhatsApp Business account (' || e.event
              || '): sending may stop. See the number''s restrictions in the console.');
          elsif e.event = 'ACCOUNT_VIOLATION' then
            perform private.raise_alert(v_org, 'whatsapp_account_violation', 'warning',
              'Meta reported a policy violation on the WhatsApp Business account.');
          end if;
        end loop;
      elsif e.kind = 'number_quality' then
        for v_org in
          update public.whatsapp_numbers n
          set quality_event = e.event, health_updated_at = now(),
              messaging_limit = coalesce(e.messaging_limit, n.messaging_limit)
          where n.waba_id = e.waba_id
            and regexp_replace(n.display_phone_number, '[^0-9]', '', 'g') = e.display_phone_number
          returning n.org_id
        loop
          if e.event in ('FLAGGED', 'DOWNGRADE') then
            perform private.raise_alert(v_org, 'whatsapp_number_quality', 'warning',
              'Meta lowered a WhatsApp number''s quality rating or messaging limit (' || e.event || ').');
          elsif e.event in ('UNFLAGGED', 'UPGRADE') then
            update public.alerts a set status = 'resolved'
            where a.org_id = v_org and a.kind = 'whatsapp_number_quality' and a.status = 'open';
          end if;
        end loop;
      elsif e.kind in ('template_status', 'template_quality') then
        for v_org in
          insert into public.whatsapp_templates as t
            (org_id, name, language, template_id, status, category, quality, reason)
          select distinct n.org_id, e.name, e.language, e.template_id, e.event, e.category,
                 e.quality, e.reason
          from public.whatsapp_numbers n
          where n.waba_id = e.waba_id
          on conflict (org_id, name, language) do update
            set template_id = coalesce(excluded.template_id, t.template_id),
                status = coalesce(excluded.status, t.status),
                category = coalesce(excluded.category, t.category),
                quality = coalesce(excluded.quality, t.quality),
                reason = case when excluded.status is not null then excluded.reason else t.reason end
          returning t.org_id
        loop
          if private.template_unusable(e.event) and exists (
              select 1 from public.assistant_settings s
              where s.org_id = v_org and e.name in (s.reply_template, s.reminder_template)
                and private.template_language(s.template_language) = e.language) then
            perform private.raise_alert(v_org, 'whatsapp_template_unusable', 'critical',
              'Meta set the template ' || e.name || ' (' || e.language || ') in use to ' || e.event
              || ': messages outside the 24 h window cannot be sent until another template is set.');
          end if;
        end loop;
      elsif e.kind = 'marketing' then
        update public.contacts c
        set marketing_stopped_at = case when e.stopped then least(coalesce(e.at, now()), now()) end
        from public.whatsapp_numbers n
        where n.phone_number_id = e.phone_number_id and c.org_id = n.org_id and c.wa_id = e.wa_id;
      end if;
    exception when others then
      raise warning 'account event % skipped: %', e.kind, sqlerrm;
    end;
  end loop;
end;
$$;

-- =============================================================================================
-- Contacts: one person, known by a phone number (wa_id), a BSUID (user_id), or both
-- =============================================================================================

-- Merges contact p_drop into p_keep (they turned out to be one person): conversations (and
-- their messages), reminders, expenses, calendar events, tool executions, AI requests, usage
-- and the rate-limit window follow; an opt-out (or a marketing opt-out) of either stands.
-- p_drop is deleted. Security definer: usage totals are written only by their owner
-- (private.count_usage).
create or replace function private.whatsapp_merge_contacts(p_keep uuid, p_drop uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  d public.contacts;
  x record;
begin
  select * into d from public.contacts where id = p_drop for update;
  if not found or p_keep = p_drop then
    return;
  end if;
  perform 1 from public.contacts where id = p_keep for update;
  -- A conversation of both with one number: the dropped one's messages join the kept one.
  for x in
    select dv.id as drop_id, kv.id as keep_id
    from public.conversations dv
    join public.conversations kv
      on kv.whatsapp_number_id = dv.whatsapp_number_id and kv.contact_id = p_keep
         and kv.group_id is not distinct from dv.group_id
    where dv.contact_id = p_drop
  loop
    update public.messages set conversation_id = x.keep_id where conversation_id = x.drop_id;
    update public.ai_requests set conversation_id = x.keep_id where conversation_id = x.drop_id;
    update public.conversations k
    set last_inbound_at = greatest(k.last_inbound_at, o.last_inbound_at),
        last_message_at = greatest(k.last_message_at, o.last_message_at),
        mode = case when o.mode = 'human' then 'human' else k.mode end
    from public.conversations o
    where k.id = x.keep_id and o.id = x.drop_id;
    delete from public.conversations where id = x.drop_id;
  end loop;
  update public.conversations set contact_id = p_keep where contact_id = p_drop;
  update public.messages set contact_id = p_keep where contact_id = p_drop;
  update public.reminders set contact_id = p_keep where contact_id = p_drop;
  update public.expenses set contact_id = p_keep where contact_id = p_drop;
  update public.calendar_events set contact_id = p_keep where contact_id = p_drop;
  update public.tool_executions set contact_id = p_keep where contact_id = p_drop;
  update public.ai_requests set contact_id = p_keep where contact_id = p_drop;
  insert into private.usage_totals as u
    (org_id, contact_id, bucket, starts_at, requests, tokens_in, tokens_out, tokens_cached, cost_usd)
  select org_id, p_keep, bucket, starts_at, requests, tokens_in, tokens_out, tokens_cached, cost_usd
  from private.usage_totals where contact_id = p_drop
  on conflict on constraint usage_totals_key do update
    set requests = u.requests + excluded.requests, tokens_in = u.tokens_in + excluded.tokens_in,
        tokens_out = u.tokens_out + excluded.tokens_out,
        tokens_cached = u.tokens_cached + excluded.tokens_cached,
        cost_usd = u.cost_usd + excluded.cost_usd;
  insert into private.contact_months (contact_id, starts_at)
  select p_keep, starts_at from private.contact_months where contact_id = p_drop
  on conflict do nothing;
  delete from public.rate_limits where org_id = d.org_id and key = 'contact:' || p_drop;
  delete from public.contacts where id = p_drop;
  update public.contacts k
  set opted_out = k.opted_out or d.opted_out,
      opted_out_at = case when k.opted_out then k.opted_out_at else d.opted_out_at end,
      wa_id = coalesce(k.wa_id, d.wa_id), user_id = coalesce(k.user_id, d.user_id),
      parent_user_id = coalesce(k.parent_user_id, d.parent_user_id),
      username = coalesce(k.username, d.username), name = coalesce(k.name, d.name),
      locale = coalesce(k.locale, d.locale), timezone = coalesce(k.timezone, d.timezone),
      marketing_stopped_at = coalesce(k.marketing_stopped_at, d.marketing_stopped_at)
  where k.id = p_keep;
end;
$$;

-- The contact of org p_org named by p_wa_id and/or p_user_id (at least one), created when
-- new; two contacts each holding one of the ids are one person: merged. The attributes given
-- (parent BSUID, username, profile name) are recorded. Returns its id.
create or replace function private.whatsapp_contact(
  p_org uuid, p_wa_id text, p_user_id text, p_parent text default null,
  p_username text default null, p_name text default null)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_by_number uuid;
  v_by_user uuid;
  v_id uuid;
begin
  for i in 1..2 loop
    select id into v_by_number from public.contacts
    where org_id = p_org and wa_id = p_wa_id and p_wa_id is not null;
    select id into v_by_user from public.contacts
    where org_id = p_org and user_id = p_user_id and p_user_id is not null;
    if v_by_number is not null and v_by_user is not null and v_by_number <> v_by_user then
      perform private.whatsapp_merge_contacts(v_by_number, v_by_user);
      v_by_user := v_by_number;
    end if;
    v_id := coalesce(v_by_number, v_by_user);
    if v_id is null then
      insert into public.contacts (org_id, wa_id, user_id, parent_user_id, username, name)
      values (p_org, p_wa_id, p_user_id, p_parent, p_username, p_name)
      on conflict do nothing
      returning id into v_id;
      if v_id is not null then
        return v_id;
      end if;
      -- A concurrent delivery created it: found the second time round.
    else
      update public.contacts c
      set wa_id = coalesce(p_wa_id, c.wa_id), user_id = coalesce(p_user_id, c.user_id),
          parent_user_id = coalesce(p_parent, c.parent_user_id),
          username = coalesce(p_username, c.username), name = coalesce(p_name, c.name)
      where c.id = v_id
        and (c.wa_id is distinct from coalesce(p_wa_id, c.wa_id)
             or c.user_id is distinct from coalesce(p_user_id, c.user_id)
             or c.parent_user_id is distinct from coalesce(p_parent, c.parent_user_id)
             or c.username is distinct from coalesce(p_username, c.username)
             or c.name is distinct from coalesce(p_name, c.name));
      return v_id;
    end if;
  end loop;
  raise exception 'contact not found after a conflict';
end;
$$;

-- A person's identity changed (a system message user_changed_number or user_changed_user_id):
-- contact p_id takes the new number or BSUID; a contact already holding it is the same
-- person, merged into p_id.
create or replace function private.whatsapp_change_identity(
  p_id uuid, p_new_wa_id text, p_new_user_id text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_org uuid;
  v_other uuid;
begin
  select org_id into v_org from public.contacts where id = p_id;
  select id into v_other from public.contacts
  where org_id = v_org and id <> p_id
    and ((wa_id = p_new_wa_id and p_new_wa_id is not null)
         or (user_id = p_new_user_id and p_new_user_id is not null))
  limit 1;
  if v_other is not null then
    -- Clear the ids the kept contact takes over, then merge.
    update public.contacts set wa_id = null where id = v_other and wa_id = p_new_wa_id
      and user_id is not null;
    update public.contacts set user_id = null where id = v_other and user_id = p_new_user_id
      and wa_id is not null;
    perform private.whatsapp_merge_contacts(p_id, v_other);
  end if;
  update public.contacts
  set wa_id = coalesce(p_new_wa_id, wa_id), user_id = coalesce(p_new_user_id, user_id)
  where id = p_id;
end;
$$;

-- Applies one stored message that is never answered (p_wamid, of contact p_contact): a system
-- notice changes the contact's identity (private.whatsapp_change_identity); an edit gives
-- the edited message (p_target) its new text, which its turn reads if not answered yet; a
-- revoke clears the revoked message's content, as erasure does, and cancels it if not
-- answered yet; a reaction is recorded on the message it reacts to (found by its wamid or a
-- part's: feedback on a reply). Each is recorded `processed` (a group message too): never
-- claimed.
create or replace function private.whatsapp_apply_notice(
  p_org uuid, p_contact uuid, p_wamid text, p_type text, p_body text, p_new_wa_id text,
  p_new_user_id text, p_target text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_target public.messages;
begin
  if p_type = 'system' and (p_new_wa_id is not null or p_new_user_id is not null) then
    perform private.whatsapp_change_identity(p_contact, p_new_wa_id, p_new_user_id);
  elsif p_type = 'edit' and p_target is not null then
    -- A revoked message (content cleared) is not brought back by a late edit.
    update public.messages m set body = p_body
    where m.wa_message_id = p_target and m.org_id = p_org and m.contact_id = p_contact
      and m.direction = 'inbound' and m.payload <> '{}'::jsonb;
  elsif p_type = 'reaction' and p_target is not null then
    select * into v_target from public.messages m
    where m.org_id = p_org and m.id = coalesce(
      (select x.id from public.messages x where x.wa_message_id = p_target),
      (select p.message_id from private.whatsapp_message_parts p where p.wamid = p_target))
      and (m.contact_id = p_contact)
    for update;
    if found then
      update public.messages m set reaction = nullif(left(p_body, 32), '')
      where m.id = v_target.id;
      -- A reaction on an assistant's reply is feedback (admin_overview).
      if v_target.reply_to is not null then
        perform private.count_feedback(p_org, v_target.created_at, v_target.reaction,
                                       nullif(left(p_body, 32), ''));
      end if;
    end if;
  elsif p_type = 'revoke' and p_target is not null then
    update public.messages m
    set body = null, payload = '{}',
        status = case when m.status in ('received', 'failed') then 'processed' else m.status end,
        lease_until = null
    where m.wa_message_id = p_target and m.org_id = p_org and m.contact_id = p_contact
      and m.direction = 'inbound';
    -- Its edits held its text too.
    update public.messages m set body = null, payload = '{}'
    where m.contact_id = p_contact and m.type = 'edit'
      and m.payload -> 'edit' ->> 'original_message_id' = p_target;
  end if;
  update public.messages m set status = 'processed'
  where m.wa_message_id = p_wamid and m.status = 'received';
end;
$$;

-- =============================================================================================
-- whatsapp_ingest: one webhook delivery, stored atomically
-- =============================================================================================
-- p_messages: [{ord, phone_number_id, wa_id, user_id, parent_user_id, username, profile_name,
--   wamid, type, body, payload, sent_at, new_wa_id, new_user_id, target_wamid, group_id, echo}]
--   (wa_id or user_id or both; new_*: a system message's new identity; target_wamid: the
--   message an edit or revoke is about; echo: sent by the owner from the WhatsApp Business
--   app to this person, stored as an outbound staff message that puts the conversation in
--   human mode until the staff is idle for staff_idle_minutes)
-- p_statuses: [{phone_number_id, wamid, status, at, errors, callback}]
-- Routes by phone_number_id (unknown numbers are recorded and ignored), upserts contacts and
-- conversations (an inbound message opens the 24 h window at its own timestamp), inserts
-- messages deduplicated on wamid (concurrent redeliveries cannot both insert), applies
-- statuses (private.whatsapp_apply_statuses), records the delivery in webhooks (latency_ms:
-- from p_received_at, the webhook route's start, to now, when given).
-- Returns {new_message_ids: [uuid], unknown_numbers: int, statuses_applied: int}.
create or replace function public.whatsapp_ingest(
  p_delivery_id text, p_messages jsonb, p_statuses jsonb, p_received_at timestamptz default null,
  p_account_events jsonb default '[]')
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_new uuid[];
  v_unknown int;
  v_applied int;
  v_org uuid;
  v_nestloop text;
  v_contacts jsonb := '{}'::jsonb;
  x record;
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

  insert into public.webhooks
    (source, external_id, org_id, event_type, status, error, processed_at, latency_ms)
  values ('whatsapp', p_delivery_id, v_org, 'messages',
          case when v_org is null then 'ignored' else 'processed' end,
          case when v_unknown > 0 then 'unknown phone_number_id' end, now(),
          case when p_received_at is not null then
            greatest(0, round(extract(epoch from clock_timestamp() - p_received_at) * 1000))::int
          end)
  on conflict (source, external_id) do update
    set attempts = public.webhooks.attempts + 1, processed_at = now();

  -- Each sender's contact, found by either id (private.whatsapp_contact: an index probe per
  -- distinct sender; created or merged when needed), keyed by its ids for the statement below.
  for x in
    select distinct on (n.org_id, m.wa_id, m.user_id) n.org_id, m.wa_id, m.user_id,
           m.parent_user_id, m.username, m.profile_name
    from jsonb_to_recordset(p_messages) as m(
      ord int, phone_number_id text, wa_id text, user_id text, parent_user_id text,
      username text, profile_name text)
    join public.whatsapp_numbers n on n.phone_number_id = m.phone_number_id
    order by n.org_id, m.wa_id, m.user_id, m.ord desc
  loop
    v_contacts := v_contacts || jsonb_build_object(
      concat_ws('|', x.org_id, x.wa_id, x.user_id),
      private.whatsapp_contact(x.org_id, x.wa_id, x.user_id, x.parent_user_id, x.username,
                               x.profile_name));
  end loop;

  -- The CTEs' row estimates are guesses (1 row after a join), so the planner would join them
  -- by nested loops, n^2 for n messages: hash joins only, for this statement.
  v_nestloop := current_setting('enable_nestloop');
  perform set_config('enable_nestloop', 'off', true);
  with incoming as (
    select m.ord, m.wamid, m.type, m.body, m.payload, m.sent_at, coalesce(m.echo, false) as echo,
           m.group_id,
           n.id as number_id, n.org_id,
           (v_contacts ->> concat_ws('|', n.org_id, m.wa_id, m.user_id))::uuid as contact_id,
           make_interval(mins => coalesce(s.staff_idle_minutes, 30)) as staff_idle,
           coalesce(s.answer_groups, false) as answer_groups
    from jsonb_to_recordset(p_messages) as m(
      ord int, phone_number_id text, wa_id text, user_id text, wamid text, type text,
      body text, payload jsonb, sent_at timestamptz, echo boolean, group_id text)
    join public.whatsapp_numbers n on n.phone_number_id = m.phone_number_id
    left join public.assistant_settings s on s.org_id = n.org_id
  ),
  -- Each message with its contact's id, materialized once: the joins below hash on the full
  -- (contact, number) key, so a delivery of n messages costs O(n).
  keyed as materialized (
    select i.* from incoming i
  ),
  -- System notices (an identity change) and echoes do not open the 24 h window: the person
  -- wrote nothing. A group message has a conversation of its own, whose window it opens only
  -- when the org answers groups (assistant_settings.answer_groups).
  -- An echo puts the conversation in human mode until human_until; a handoff made through the
  -- admin API (human, no end) stays as it is.
  conversations_up as (
    insert into public.conversations as v
      (org_id, contact_id, whatsapp_number_id, group_id, last_inbound_at, last_message_at, mode,
       human_until)
    select k.org_id, k.contact_id, k.number_id, k.group_id,
           max(least(k.sent_at, now()))
             filter (where k.type <> 'system' and not k.echo
                             and (k.group_id is null or k.answer_groups)),
           max(least(k.sent_at, now())),
           case when bool_or(k.echo) then 'human' else 'bot' end,
           max(least(k.sent_at, now()) + k.staff_idle) filter (where k.echo)
    from keyed k
    group by k.org_id, k.contact_id, k.number_id, k.group_id
    order by k.number_id, k.contact_id, k.group_id
    on conflict (whatsapp_number_id, contact_id, group_id) do update
      set last_inbound_at = greatest(v.last_inbound_at, excluded.last_inbound_at),
          last_message_at = greatest(v.last_message_at, excluded.last_message_at),
          mode = case when excluded.human_until is not null then 'human' else v.mode end,
          human_until = case
            when excluded.human_until is null then v.human_until
            when v.mode = 'human' and v.human_until is null then null
            else greatest(v.human_until, excluded.human_until) end
    returning v.id, v.contact_id, v.whatsapp_number_id, coalesce(v.group_id, '') as group_key
  ),
  inserted as (
    insert into public.messages
      (org_id, conversation_id, contact_id, direction, wa_message_id, type, body, payload,
       status, created_at)
    select k.org_id, v.id, k.contact_id,
           case when k.echo then 'outbound' else 'inbound' end, k.wamid, k.type, k.body,
           case when k.echo
             then jsonb_build_object('sent_by', 'business_app', 'message', coalesce(k.payload, '{}'))
             else coalesce(k.payload, '{}') end,
           case when k.echo then 'sent' else 'received' end, clock_timestamp()
    from keyed k
    join conversations_up v on v.contact_id = k.contact_id and v.whatsapp_number_id = k.number_id
      and v.group_key = coalesce(k.group_id, '')
    order by k.ord
    on conflict (wa_message_id) do nothing
    returning id, created_at, direction
  )
  select coalesce(array_agg(id order by created_at) filter (where direction = 'inbound'), '{}')
  into v_new from inserted;
  perform set_config('enable_nestloop', v_nestloop, true);
  perform private.count_inbound(v_new);
  -- What is stored and never answered: identity changes, edits, revokes, reactions, group
  -- messages of an org that does not answer groups.
  for x in
    select m.*, n.org_id,
           (v_contacts ->> concat_ws('|', n.org_id, m.wa_id, m.user_id))::uuid as contact_id
    from jsonb_to_recordset(p_messages) as m(
      phone_number_id text, wa_id text, user_id text, wamid text, type text, body text,
      new_wa_id text, new_user_id text, target_wamid text, group_id text, echo boolean)
    join public.whatsapp_numbers n on n.phone_number_id = m.phone_number_id
    left join public.assistant_settings s on s.org_id = n.org_id
    where (m.type in ('system', 'edit', 'revoke', 'reaction')
           or (m.group_id is not null and not coalesce(s.answer_groups, false)))
      and not coalesce(m.echo, false)
  loop
    perform private.whatsapp_apply_notice(x.org_id, x.contact_id, x.wamid, x.type, x.body,
                                          x.new_wa_id, x.new_user_id, x.target_wamid);
  end loop;
  if found then
    v_new := array(select m.id from public.messages m
                   where m.id = any(v_new) and m.status = 'received' order by m.created_at);
  end if;

  v_applied := private.whatsapp_apply_statuses(p_statuses);
  perform private.whatsapp_apply_account_events(p_account_events);

  return jsonb_build_object(
    'new_message_ids', to_jsonb(v_new),
    'unknown_numbers', v_unknown,
    'statuses_applied', v_applied);
end;
$$;

-- Group commit (inbound/ingest.rs): several deliveries in one transaction, each stored by
-- whatsapp_ingest in order. p_deliveries: [{id, messages, statuses}]; returns the results in
-- the same order. Any error rolls back every delivery of the batch (each is answered 503).
create or replace function public.whatsapp_ingest_batch(p_deliveries jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_results jsonb := '[]'::jsonb;
  d jsonb;
begin
  for d in select e from jsonb_array_elements(p_deliveries) e loop
    v_results := v_results || jsonb_build_array(
      public.whatsapp_ingest(d ->> 'id', d -> 'messages', d -> 'statuses',
                             (d ->> 'received_at')::timestamptz, d -> 'account_events'));
  end loop;
  return v_results;
end;
$$;

-- =============================================================================================
-- whatsapp_claim_message: take a conversation's next turn for processing, with everything needed
-- =============================================================================================
-- One turn at a time per conversation, in arrival order. Claiming p_message_id (received,
-- failed, or processing with an expired lease) claims its conversation: under the
-- conversation's row lock, a fresh token and a lease of p_lease_seconds, and every unanswered
-- inbound message of the conversation up to now (at most p_turn_limit, oldest first) as one
-- turn, answered together. Returns null when the conversation is busy (another turn holds its
-- lease, or one of its replies is `sending`: its outcome is unknown until resolved), or when
-- nothing is left to claim. Each claim counts an attempt of every message of the turn; a
-- message with p_max_attempts attempts already is discarded instead
-- (private.whatsapp_discard_message). Returns:
--   token:   the turn's token (begin, finish and fail need it);
--   message: the turn's last message (the reply answers it), with
--   turn:    {ids, bodies}: every message of the turn, oldest first (the first one is the key
--            of the turn's tool calls);
--   contact, conversation, phone_number_id, settings;
--   rate_limit: {limit, hits}: hits = the lowest number of the turn's messages in their
--            contact's rate-limit window (counted once, when stored: private.count_inbound;
--            a message never counted, not stored by whatsapp_ingest, is left out);
--   history: the conversation's last p_history messages up to the turn's last one (so the
--            turn's earlier messages too) that have a text, oldest first ({direction, type, body, at});
--   budget:  used_tokens since the org's budget period start (private.token_period_start),
--            contact_daily_cap and contact_used_today (since midnight in the contact's zone),
--            both read from private.usage_totals, never summed from the ledger;
--   previous_reply: {body, rich} of a reply composed by an earlier attempt whose send failed
--            (rich: its payload's rich reply, or null for a text), so a retry sends the same
--            content again instead of asking the assistant (and running its tools) twice.
create or replace function public.whatsapp_claim_message(
  p_message_id uuid, p_lease_seconds int default 120, p_history int default 20,
  p_max_attempts int default 5, p_turn_limit int default 20)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
  v public.conversations;
  v_token uuid := gen_random_uuid();
  v_turn uuid[];
  v_limit int;
  v_hits int;
  v_used bigint;
  v_contact_used bigint;
  v_period_start timestamptz;
  v_tz text;
begin
  select * into m from public.messages x
  where x.id = p_message_id and private.message_claimable(x);
  if not found then
    return null;
  end if;

  -- The conversation's row is the turn's lock: the checks below see every committed turn.
  select * into v from public.conversations where id = m.conversation_id for update;
  -- Human mode from an echo ends once the staff has been idle long enough.
  if v.human_until <= now() then
    update public.conversations set mode = 'bot', human_until = null
    where id = v.id returning * into v;
  end if;
  if v.turn_lease_until > now() or exists (
    select 1 from public.messages r
    where r.conversation_id = v.id and r.status = 'sending' and r.reply_to is not null
  ) then
    return null;
  end if;

  -- Every claim is an attempt, whatever ends it (a panic or a crash too): a message claimed
  -- p_max_attempts times already is poison, and is discarded instead of claimed again.
  perform private.whatsapp_discard_message(x.id, format(
      'discarded after %s attempts (last error: %s)', x.attempts,
      coalesce(x.error ->> 'message', 'none recorded: the attempt did not finish')))
  from public.messages x
  where x.conversation_id = v.id and private.message_claimable(x)
    and x.attempts >= p_max_attempts;

  with turn as (
    select x.id from public.messages x
    where x.conversation_id = v.id and private.message_claimable(x)
    order by x.created_at, x.id
    limit greatest(p_turn_limit, 1)
    for update
  ),
  claimed as (
    update public.messages x
    set status = 'processing',
        attempts = x.attempts + 1,
        lease_until = now() + make_interval(secs => p_lease_seconds),
        claim_token = v_token
    from turn
    where x.id = turn.id
    returning x.id, x.created_at
  )
  select array_agg(id order by created_at, id) into v_turn from claimed;
  if v_turn is null then
    return null;
  end if;

  update public.conversations
  set turn_token = v_token, turn_lease_until = now() + make_interval(secs => p_lease_seconds)
  where id = v.id;

  select * into m from public.messages where id = v_turn[array_length(v_turn, 1)];
  select coalesce(min(x.rate_hits), 0) into v_hits from public.messages x where x.id = any(v_turn);
  select s.rate_limit_per_minute into v_limit
  from public.assistant_settings s where s.org_id = m.org_id;

  select private.token_period_start(o.token_period_started_at) into v_period_start
  from public.orgs o where o.id = m.org_id;
  select coalesce(sum(u.tokens_in + u.tokens_out), 0) into v_used
  from private.usage_totals u
  where u.org_id = m.org_id and u.bucket = 'period' and u.starts_at = v_period_start
    and u.contact_id is null;

  select coalesce(c.timezone, s.timezone, 'UTC') into v_tz
  from public.contacts c
  left join public.assistant_settings s on s.org_id = c.org_id
  where c.id = m.contact_id;
  select coalesce(sum(u.tokens_in + u.tokens_out), 0) into v_contact_used
  from private.usage_totals u
  where u.org_id = m.org_id and u.bucket = 'local_day'
    and u.starts_at = private.local_day_start(v_tz) and u.contact_id = m.contact_id;

  return (
    select jsonb_build_object(
      'token', v_token,
      'message', jsonb_build_object(
        'id', m.id, 'org_id', m.org_id, 'wamid', m.wa_message_id, 'type', m.type,
        'body', m.body, 'payload', m.payload, 'attempts', m.attempts),
      'turn', (
        select jsonb_build_object(
          'ids', to_jsonb(v_turn),
          'bodies', jsonb_agg(jsonb_build_object('type', x.type, 'body', x.body)
                              order by x.created_at, x.id))
        from public.messages x where x.id = any(v_turn)),
      'contact', jsonb_build_object(
        'id', c.id, 'wa_id', c.wa_id, 'user_id', c.user_id, 'username', c.username,
        'name', c.name, 'locale', c.locale,
        'timezone', v_tz, 'opted_out', c.opted_out),
      'conversation', jsonb_build_object(
        'id', v.id, 'mode', v.mode, 'group_id', v.group_id,
        'window_open', private.window_open(v.last_inbound_at)),
      'phone_number_id', n.phone_number_id,
      'settings', jsonb_build_object(
        'system_prompt', s.system_prompt, 'model', s.model, 'fallback_model', s.fallback_model,
        'enabled_tools', to_jsonb(s.enabled_tools), 'language', coalesce(s.language, 'en'),
        'timezone', coalesce(s.timezone, 'UTC'),
        'reply_template', private.usable_template(m.org_id, s.reply_template, s.template_language),
        'welcome_message', s.welcome_message,
        'template_language', private.template_language(s.template_language),
        'fallback_first', exists (
          select 1 from public.alerts a
          where a.org_id = m.org_id and a.kind = 'ai_latency' and a.status = 'open')),
      'rate_limit', jsonb_build_object(
        'limit', coalesce(v_limit, 10), 'hits', v_hits),
      'previous_reply', (select jsonb_build_object('body', r.body, 'rich', r.payload -> 'rich')
                         from public.messages r where r.reply_to = m.id),
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
            -- A system notice is no one's words, and an edit's text is its message's now.
            and x.type not in ('system', 'edit')
          order by x.created_at desc, x.id desc
          limit greatest(p_history, 0)
        ) h), '[]'))
    from public.contacts c
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
-- Only for the holder of the turn: p_token must still be the claim token of p_message_id (the
-- turn's last message), which must still be processing; otherwise returns null (not sent).
-- Returns {outbound_id, state}: `new` (send it), `sending` (an earlier attempt's outcome is
-- unknown: do not send again), or the status of a reply already sent. p_payload ({rich}, a
-- rich reply's content, or null for a text) is what a retry or a resend sends again.
create or replace function public.whatsapp_begin_reply(
  p_message_id uuid, p_token uuid, p_type text, p_body text, p_payload jsonb default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
  v_status text;
begin
  perform 1 from public.messages m
  where m.id = p_message_id and m.claim_token = p_token and m.status = 'processing'
  for update;
  if not found then
    return null;
  end if;

  insert into public.messages
    (org_id, conversation_id, contact_id, direction, type, body, payload, status, reply_to)
  select m.org_id, m.conversation_id, m.contact_id, 'outbound', p_type, p_body,
         coalesce(p_payload, '{}'), 'sending', m.id
  from public.messages m
  where m.id = p_message_id
  on conflict (reply_to) where reply_to is not null do nothing
  returning id into v_id;
  if v_id is not null then
    return jsonb_build_object('outbound_id', v_id, 'state', 'new');
  end if;

  -- A reply that failed for certain may be sent again; any other state may not.
  update public.messages
  set status = 'sending', type = p_type, body = p_body, error = null,
      payload = (payload - 'rich') || coalesce(p_payload, '{}')
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
-- whatsapp_finish_message: the turn is processed; record the reply and side effects
-- =============================================================================================
-- Only for the holder of the turn (p_token, from the claim): every message of the turn becomes
-- processed and the conversation's turn lease is released. p_message_id is the turn's last
-- message (the one the reply answers).
-- p_result: {outbound_id, outbound_status, wamid, wamids, type, body, error, opt_out, alert,
--            ledger: {ai_requests, tool_executions}, transcript}
-- (every key optional; alert = {kind, severity, message}). The transcript becomes the inbound
-- message's body (so it is part of later history).
-- Returns {held, next, claim}: held = false when p_token no longer holds the turn (nothing
-- recorded); next = the conversation's oldest message that arrived meanwhile (`received`), for
-- the next turn, or null. With p_claim (whatsapp_claim_message's arguments but the message:
-- {p_lease_seconds, p_history, p_max_attempts, p_turn_limit}) that next turn is claimed in the
-- same transaction, under the conversation's lock this turn already holds, and returned as
-- `claim` (what whatsapp_claim_message returns; next is then null when it could not be
-- claimed). A claim that raises leaves this turn's outcome recorded: `claim` is then absent
-- and next is left for the worker to claim on its own.
-- Rows are locked in the order whatsapp_ingest locks them (contact, conversation, messages),
-- so a redelivery arriving meanwhile cannot deadlock with it.
create or replace function public.whatsapp_finish_message(
  p_message_id uuid, p_token uuid, p_result jsonb, p_claim jsonb default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
  v_next uuid;
  v_claim jsonb;
begin
  select * into m from public.messages where id = p_message_id;
  if not found then
    return jsonb_build_object('held', false);
  end if;
  perform 1 from public.contacts where id = m.contact_id for update;
  perform 1 from public.conversations
  where id = m.conversation_id and turn_token = p_token
  for update;
  if not found then
    return jsonb_build_object('held', false);
  end if;

  if p_result ? 'opt_out' then
    update public.contacts
    set opted_out = (p_result ->> 'opt_out')::boolean,
        opted_out_at = case when (p_result ->> 'opt_out')::boolean then now() end
    where id = m.contact_id;
  end if;

  update public.conversations
  set turn_token = null, turn_lease_until = null,
      last_message_at = case when p_result ? 'outbound_id' then now() else last_message_at end
  where id = m.conversation_id;

  update public.messages
  set status = 'processed', lease_until = null, error = null
  where conversation_id = m.conversation_id and claim_token = p_token and status = 'processing';
  update public.messages
  set body = coalesce(body, left(p_result ->> 'transcript', 8192))
  where id = p_message_id;

  if p_result ? 'outbound_id' then
    -- The turn's holder sent it: recorded even when a status report overtook the send's answer.
    perform private.record_send_outcome((p_result ->> 'outbound_id')::uuid,
      jsonb_strip_nulls(jsonb_build_object(
        'status', p_result -> 'outbound_status', 'wamid', p_result -> 'wamid',
        'wamids', p_result -> 'wamids', 'type', p_result -> 'type', 'body', p_result -> 'body',
        'error', p_result -> 'error')),
      true);
  end if;

  if p_result ? 'alert' then
    perform private.raise_alert(m.org_id, p_result -> 'alert' ->> 'kind',
      coalesce(p_result -> 'alert' ->> 'severity', 'warning'), p_result -> 'alert' ->> 'message');
  end if;

  perform private.record_ledger(m, p_result -> 'ledger');

  select x.id into v_next from public.messages x
  where x.conversation_id = m.conversation_id and x.direction = 'inbound'
    and x.status = 'received' and x.discarded_at is null
  order by x.created_at, x.id
  limit 1;
  if v_next is null or p_claim is null then
    return jsonb_build_object('held', true, 'next', v_next);
  end if;
  begin
    v_claim := public.whatsapp_claim_message(v_next,
      (p_claim ->> 'p_lease_seconds')::int, (p_claim ->> 'p_history')::int,
      (p_claim ->> 'p_max_attempts')::int, (p_claim ->> 'p_turn_limit')::int);
  exception when others then
    -- The error's text may quote a stored value: its code alone.
    raise warning 'whatsapp_finish_message: the next turn was not claimed (sqlstate %)', sqlstate;
    return jsonb_build_object('held', true, 'next', v_next);
  end;
  return jsonb_build_object('held', true, 'next', case when v_claim is not null then v_next end,
                            'claim', v_claim);
end;
$$;

-- =============================================================================================
-- whatsapp_fail_message: processing failed; park the turn's messages in the dead letter queue
-- =============================================================================================
-- Only for the holder of the turn (p_token, from the claim; p_message_id is its last message):
-- returns false, recording nothing, when p_token no longer holds it. Every message of the turn
-- fails and the conversation's turn lease is released. One dead letter entry per message:
-- attempts and exponential backoff (1, 2, 4 ... min, at most 6 h). Repeated failures (3
-- attempts of one message, or 5 pending entries in the org) raise an org alert, as does
-- p_alert ({kind, severity, message}, e.g. an expired token). A reply that was being sent is
-- marked failed (known not sent). p_ledger is the failed turn's ledger (as in
-- whatsapp_finish_message). p_opt_out (a STOP or START) is recorded first, so that it counts
-- even when the rest of the processing failed (e.g. the confirmation could not be sent).
-- The attempt numbered p_max_attempts (when given) is the last: the message is discarded
-- (private.whatsapp_discard_message) instead of waiting for a retry.
create or replace function public.whatsapp_fail_message(
  p_message_id uuid, p_token uuid, p_error text, p_outbound_id uuid default null,
  p_alert jsonb default null, p_ledger jsonb default null, p_opt_out boolean default null,
  p_max_attempts int default null)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
  x public.messages;
  v_pending int;
begin
  select * into m from public.messages where id = p_message_id;
  if not found then
    return false;
  end if;
  -- Contact first: the order whatsapp_ingest locks rows in.
  perform 1 from public.contacts where id = m.contact_id for update;
  update public.conversations
  set turn_token = null, turn_lease_until = null
  where id = m.conversation_id and turn_token = p_token;
  if not found then
    return false;
  end if;

  if p_opt_out is not null then
    update public.contacts
    set opted_out = p_opt_out, opted_out_at = case when p_opt_out then now() end
    where id = m.contact_id;
  end if;

  perform private.record_ledger(m, p_ledger);

  if p_outbound_id is not null then
    perform private.record_send_outcome(p_outbound_id, jsonb_build_object(
      'status', 'failed', 'error', jsonb_build_object('message', p_error)));
  end if;

  if p_alert is not null then
    perform private.raise_alert(m.org_id, p_alert ->> 'kind',
      coalesce(p_alert ->> 'severity', 'warning'), p_alert ->> 'message');
  end if;

  for x in
    update public.messages
    set status = 'failed', lease_until = null, error = jsonb_build_object('message', p_error)
    where conversation_id = m.conversation_id and claim_token = p_token and status = 'processing'
    returning *
  loop
    -- Its last attempt: poison ends here (never claimed again).
    if x.attempts >= p_max_attempts then
      perform private.whatsapp_discard_message(x.id, format(
        'failed %s attempts (last error: %s)', x.attempts, p_error));
      continue;
    end if;

    update public.dead_letter_queue
    set attempts = x.attempts, error = p_error, status = 'pending',
        next_attempt_at = now() + private.cron_backoff(x.attempts, 60)
    where kind = 'inbound_message' and ref = x.id::text and status in ('pending', 'retrying');
    if not found then
      insert into public.dead_letter_queue (org_id, kind, ref, payload, error, attempts, next_attempt_at)
      values (x.org_id, 'inbound_message', x.id::text,
              jsonb_build_object('message_id', x.id, 'wamid', x.wa_message_id), p_error, x.attempts,
              now() + private.cron_backoff(x.attempts, 60));
    end if;

    select count(*) into v_pending
    from public.dead_letter_queue
    where org_id = x.org_id and status in ('pending', 'retrying');
    if x.attempts >= 3 or v_pending >= 5 then
      perform private.raise_alert(x.org_id, 'processing_failures', 'critical',
        'WhatsApp messages keep failing to process; see dead_letter_queue');
    end if;
  end loop;
  return true;
end;
$$;

-- Service role only (the default privileges would let every role execute them).
revoke execute on function
  public.whatsapp_ingest(text, jsonb, jsonb, timestamptz, jsonb),
  public.whatsapp_ingest_batch(jsonb),
  public.whatsapp_claim_message(uuid, int, int, int, int),
  public.whatsapp_begin_reply(uuid, uuid, text, text, jsonb),
  public.whatsapp_finish_message(uuid, uuid, jsonb, jsonb),
  public.whatsapp_fail_message(uuid, uuid, text, uuid, jsonb, jsonb, boolean, int)
from public, anon, authenticated;
grant execute on function
  public.whatsapp_ingest(text, jsonb, jsonb, timestamptz, jsonb),
  public.whatsapp_ingest_batch(jsonb),
  public.whatsapp_claim_message(uuid, int, int, int, int),
  public.whatsapp_begin_reply(uuid, uuid, text, text, jsonb),
  public.whatsapp_finish_message(uuid, uuid, jsonb, jsonb),
  public.whatsapp_fail_message(uuid, uuid, text, uuid, jsonb, jsonb, boolean, int)
to service_role;
revoke execute on function private.raise_alert(uuid, text, text, text) from public, anon, authenticated;
revoke execute on function private.message_claimable(public.messages) from public, anon, authenticated;
grant execute on function private.message_claimable(public.messages) to service_role;
revoke execute on function private.outbound_status_rank(text) from public, anon, authenticated;
grant execute on function private.raise_alert(uuid, text, text, text), private.outbound_status_rank(text)
  to service_role;
revoke execute on function
  private.whatsapp_merge_contacts(uuid, uuid),
  private.whatsapp_contact(uuid, text, text, text, text, text),
  private.whatsapp_change_identity(uuid, text, text),
  private.whatsapp_apply_notice(uuid, uuid, text, text, text, text, text, text),
  private.whatsapp_discard_message(uuid, text),
  private.count_inbound(uuid[]),
  private.local_day_start(text, timestamptz),
  private.token_period_start(timestamptz),
  private.record_ledger(public.messages, jsonb)
from public, anon, authenticated;
grant execute on function
  private.whatsapp_merge_contacts(uuid, uuid),
  private.whatsapp_contact(uuid, text, text, text, text, text),
  private.whatsapp_change_identity(uuid, text, text),
  private.whatsapp_apply_notice(uuid, uuid, text, text, text, text, text, text),
  private.whatsapp_discard_message(uuid, text),
  private.count_inbound(uuid[]),
  private.local_day_start(text, timestamptz),
  private.token_period_start(timestamptz),
  private.record_ledger(public.messages, jsonb)
to service_role;
-- The admin summaries (security invoker) find the current budget period the same way.
grant execute on function private.token_period_start(timestamptz) to authenticated;

-- =============================================================================================
-- Outcomes: statuses never lost, unknown send outcomes resolved (docs/webhook.md#outcomes)
-- =============================================================================================
-- Every send carries biz_opaque_callback_data = the outbound messages.id, which Meta echoes in
-- the statuses of each part; a status therefore names its message even before the send's
-- wamids are recorded. Statuses go to the parts of a message (a long text is several WhatsApp
-- messages), and the message's status is the status of its least advanced part.

-- messages.sending_since: when the current send began (set by the trigger below).
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
  error      jsonb,
  -- Meta's charge (private.whatsapp_charge_parts): the pricing category, the price, when.
  charge     text check (charge ~ '^[a-z_]{1,64}$'),
  cost_usd   numeric(10, 6) check (cost_usd >= 0),
  charged_at timestamptz
);
comment on table private.whatsapp_message_parts is
  'Each WhatsApp message of an outbound message (a long text is split) with its own status and Meta''s charge; part is null until the send''s wamids are recorded (a status matched by callback data first). Service role only.';
create index whatsapp_message_parts_message_idx on private.whatsapp_message_parts (message_id);

create table private.whatsapp_early_statuses (
  wamid              text primary key,
  whatsapp_number_id uuid not null references public.whatsapp_numbers (id) on delete cascade,
  status             text not null,
  at                 timestamptz not null,
  errors             jsonb,
  charge             text check (charge ~ '^[a-z_]{1,64}$'),  -- a billable status's pricing category
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

  -- Nothing was of unknown outcome (a send just recorded, most statuses): nothing to settle.
  if cardinality(v_unknown) > 0 then
    perform private.whatsapp_settle_answered(array(
      select id from public.messages where id = any (v_unknown) and status <> 'sending'));
  end if;
end;
$$;

-- The outbound messages p_ids are settled (sent or confirmed): the inbound messages replies
-- answer (each reply's whole turn: the messages claimed with the one it names) are processed (unless a live worker holds one) and their dead letter entries
-- resolved; the reminder occurrence a message delivers (payload occurrence, set when its
-- outcome became unknown: private.cron_mark_unknown) is sent.
create or replace function private.whatsapp_settle_answered(p_ids uuid[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_answered uuid[];
begin
  -- A reply answers its turn: the message it names and every message claimed with it.
  select coalesce(array_agg(i.id), '{}') into v_answered
  from public.messages r
  join public.messages a on a.id = r.reply_to
  join public.messages i on i.conversation_id = a.conversation_id
    and (i.id = a.id or (a.claim_token is not null and i.claim_token = a.claim_token))
  where r.id = any (p_ids) and i.direction = 'inbound';

  update public.messages i
  set status = 'processed', lease_until = null, error = null
  where i.id = any (v_answered)
    and (i.status = 'failed' or (i.status = 'processing' and coalesce(i.lease_until < now(), true)));
  update public.dead_letter_queue d
  set status = 'resolved', resolved_at = now(), lease_until = null
  where d.kind = 'inbound_message' and d.ref = any (array(select x::text from unnest(v_answered) x))
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
-- the outcome resolver. A billable status (charge: its pricing category) charges its part
-- once (private.whatsapp_charge_parts). Returns how many statuses changed a part.
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
           max(s.charge) over (partition by s.wamid) as charge,
           n.id as number_id, n.org_id
    from jsonb_to_recordset(p_statuses) as s(
      phone_number_id text, wamid text, status text, at timestamptz, errors jsonb, callback uuid,
      charge text)
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
    insert into private.whatsapp_early_statuses as e
      (wamid, whatsapp_number_id, status, at, errors, charge)
    select wamid, number_id, status, at, errors, charge from matched where message_id is null
    on conflict (wamid) do update
      set status = excluded.status, at = excluded.at, errors = coalesce(excluded.errors, e.errors),
          charge = coalesce(e.charge, excluded.charge)
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
  perform private.whatsapp_charge_parts(p_statuses);
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
declare
  v_charges jsonb;
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
    where e.wamid = any (array(select jsonb_array_elements_text(p_wamids)))
    returning e.*
  ),
  applied as (
    update private.whatsapp_message_parts p
    set status = e.status, status_at = e.at, error = coalesce(e.errors, p.error)
    from early e
    where p.wamid = e.wamid
      and private.outbound_status_rank(e.status) > private.outbound_status_rank(p.status)
  )
  select coalesce(jsonb_agg(jsonb_build_object('wamid', e.wamid, 'charge', e.charge)), '[]')
  into v_charges
  from early e;
  perform private.whatsapp_charge_parts(v_charges);

  perform private.whatsapp_settle_parts(array[p_message_id]);
end;
$$;

-- =============================================================================================
-- A send's outcome, recorded on its outbound message: the one statement that does it
-- =============================================================================================
-- Every finisher calls it: whatsapp_finish_message (a reply sent), whatsapp_fail_message (a
-- reply known not sent), whatsapp_record_outcome (the outcome resolver), cron_finish_reminder
-- and cron_fail_reminder (a reminder), admin_finish_staff_message (a staff reply).
-- p_result: delivered {status: sent|simulated, wamid, wamids: [...], type, body}, or a certain
-- failure {status: failed, wamids: [] or absent, error: any json (a string or {message})};
-- any other status raises 22023 (nothing recorded). What it records:
--   * status = the result's, status_at = now();
--   * wa_message_id = the result's wamid; a result without one (a failure) keeps the wamid of
--     an earlier accepted send of the message;
--   * type and body = the result's when given;
--   * payload.wamids = the result's wamids ([] when absent);
--   * error = the result's error, stored as given, on a failure; cleared on a success (an
--     earlier failure's error does not outlive a send that worked);
--   * only on an outbound message whose outcome is open, i.e. `sending`. With p_holder (the
--     caller holds the send: the turn's token, the reminder's lease token) a delivered result
--     is also recorded when a status report, matched by the callback data, moved the message
--     past `sending` before the send's answer came back (its wamids are still to be recorded);
--     a failure never is (a status showed WhatsApp accepted it);
--   * a delivered result's wamids become the message's parts (private.whatsapp_record_parts),
--     replacing those of an earlier send of the same message (a resend, a template retry), and
--     the statuses that arrived early apply; the message may then move on (delivered, read).
-- Returns the message as recorded (before its parts' statuses apply), or null when nothing was.
create or replace function private.record_send_outcome(
  p_message_id uuid, p_result jsonb, p_holder boolean default false)
returns public.messages
language plpgsql
set search_path = ''
as $$
declare
  v_status text := p_result ->> 'status';
  v_wamids jsonb := coalesce(p_result -> 'wamids', '[]');
  m public.messages;
begin
  if v_status is null or v_status not in ('sent', 'simulated', 'failed') then
    raise exception 'status must be sent, simulated or failed' using errcode = 'invalid_parameter_value';
  end if;
  update public.messages
  set status = v_status,
      wa_message_id = coalesce(p_result ->> 'wamid', wa_message_id),
      type = coalesce(p_result ->> 'type', type),
      body = coalesce(p_result ->> 'body', body),
      payload = payload || jsonb_build_object('wamids', v_wamids),
      error = case when v_status = 'failed' then p_result -> 'error' end,
      status_at = now()
  where id = p_message_id and direction = 'outbound'
    and (status = 'sending' or (p_holder and v_status <> 'failed'))
  returning * into m;
  if not found then
    return null;
  end if;
  if v_status <> 'failed' and jsonb_array_length(v_wamids) > 0 then
    delete from private.whatsapp_message_parts
    where message_id = p_message_id
      and wamid not in (select jsonb_array_elements_text(v_wamids));
    perform private.whatsapp_record_parts(p_message_id, v_wamids);
  end if;
  return m;
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
-- wa_id, user_id, group_id, window_open, template, template_language, opted_out, template_retry}].
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

  -- A staff text past WhatsApp's 4096 characters (never begun so: admin_begin_staff_message
  -- refuses it) fails on its own, with its reason; the others are returned.
  perform private.record_send_outcome(m.id, jsonb_build_object('status', 'failed',
            'error', jsonb_build_object('message', 'the text is longer than 4096 characters')))
  from public.messages m
  where m.id = any (v_claimed) and m.reply_to is null and m.reminder_id is null
    and not private.staff_text_fits(m.body);

  return coalesce((
    select jsonb_agg(jsonb_build_object(
      'id', m.id,
      'kind', case when m.reply_to is not null then 'reply'
                   when m.reminder_id is not null then 'reminder' else 'staff' end,
      'body', m.body, 'type', m.type, 'rich', m.payload -> 'rich',
      'phone_number_id', n.phone_number_id, 'wa_id', c.wa_id, 'user_id', c.user_id,
      'group_id', v.group_id,
      'window_open', private.window_open(v.last_inbound_at)
                     and m.payload ->> 'template_retry' is null,
      'template', private.usable_template(m.org_id,
                    case when m.reminder_id is not null then s.reminder_template
                         else s.reply_template end, s.template_language),
      'template_language', private.template_language(s.template_language),
      'opted_out', c.opted_out))
    from public.messages m
    join public.conversations v on v.id = m.conversation_id
    join public.whatsapp_numbers n on n.id = v.whatsapp_number_id
    join public.contacts c on c.id = m.contact_id
    left join public.assistant_settings s on s.org_id = m.org_id
    where m.id = any (v_claimed) and m.status = 'sending'), '[]');
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
declare
  m public.messages;
begin
  -- Only while it is `sending`: a status that settled it meanwhile wins. A template retry's
  -- wamids replace the parts that failed.
  m := private.record_send_outcome(p_message_id, p_result);
  if m.id is null or m.status = 'failed' then
    return;
  end if;
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
  private.whatsapp_record_parts(uuid, jsonb),
  private.record_send_outcome(uuid, jsonb, boolean)
from public, anon, authenticated;
grant execute on function
  public.whatsapp_claim_unresolved(int, int, int),
  public.whatsapp_record_outcome(uuid, jsonb),
  public.whatsapp_purge_early_statuses(int),
  private.whatsapp_settle_parts(uuid[]),
  private.whatsapp_settle_answered(uuid[]),
  private.whatsapp_apply_statuses(jsonb),
  private.whatsapp_delivery_failed(uuid[]),
  private.whatsapp_record_parts(uuid, jsonb),
  private.record_send_outcome(uuid, jsonb, boolean)
to service_role;
