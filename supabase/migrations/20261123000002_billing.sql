-- Billing: Stripe webhook events applied to orgs (issue 5).
--
-- /api/billing/webhook verifies the signature and calls public.apply_stripe_event once through
-- PostgREST as service_role. One call is one transaction: it records the event in webhooks
-- (deduplicated on the event id), locks the org, decides whether the event is new enough,
-- applies it and writes alerts. Nothing is half-applied; a duplicate delivery, even a
-- concurrent one, waits for the first and then changes nothing.
--
-- Order: Stripe guarantees no delivery order, so each kind of event is ordered against its own
-- clock (one clock per org would make a customer.subscription.updated retried after an
-- invoice.paid of the next second stale: the org would keep its old plan although it paid):
--   * A subscription refetched from the Stripe API (p_subscription, asked for at p_fetched_at on
--     this service's clock) is the state at that instant: it applies without the event's own
--     order check, unless it is older than the state the org holds (private.stripe_snapshot_is_stale:
--     fetched before the org's snapshot, orgs.subscription_fetched_at, or before the event the
--     org's state comes from, or an ended subscription shown as not ended: a canceled
--     subscription never comes back). A stale snapshot is dropped and the event is ordered by its
--     own copy, as without a key: a slow customer.subscription.updated handler cannot bring back
--     a plan that a faster customer.subscription.deleted handler removed. The event is still
--     deduplicated and recorded.
--   * customer.subscription.* events (the event's own copy: no key, or the API answered 404) are
--     ordered against orgs.subscription_event_at, the time of the subscription state the org
--     holds; ties (same second: Stripe emits several events in one second) follow the
--     subscription's lifecycle, created < updated < deleted (private.stripe_event_rank,
--     orgs.subscription_event_type): an update cannot undo a deletion, a creation an update.
--   * invoice.* events are ordered against orgs.invoice_event_at, among themselves only: a late
--     payment failure cannot undo a later payment, nor the reverse, and an invoice never makes
--     a subscription event stale. Their status change (past_due <-> active) is a shortcut for the
--     subscription's own update; it is skipped when the org already holds a newer subscription
--     state. invoice.paid also renews the token period.
--   * checkout.session.completed links the org to its customer and subscription. That link is
--     subscription state: a checkout older than orgs.subscription_event_at does not link (a late
--     old checkout cannot bring back a replaced subscription), and a checkout moves no clock, so
--     the subscription's own events of the same or an earlier second still apply. The refetched
--     subscription of a checkout applies as above.
--   * An event about a customer no org has yet (any type but a checkout; Stripe often sends
--     customer.subscription.created before checkout.session.completed) is kept in
--     private.stripe_pending_events (its webhooks row stays 'received') and applied, in order,
--     by the checkout that links the customer. A transaction-level advisory lock on the customer
--     id orders a delivery that parks with the checkout that links, so none is left behind.
--     Parked events are deleted with their webhooks row (WEBHOOK_RETENTION_DAYS).
--   * orgs.billing_event_at is the time of the newest applied event, for operators; it orders
--     nothing.
--
-- Runs unchanged on hosted Supabase: no roles, no superuser-only statements.

-- The orgs' billing columns (token_period_started_at, subscription_event_type,
-- subscription_event_at, invoice_event_at, subscription_fetched_at) are part of the table in
-- 20261123000001_schema.sql.

-- =============================================================================================
-- Events waiting for their customer's checkout (private: PostgREST never exposes it)
-- =============================================================================================

create table private.stripe_pending_events (
  webhook_id         uuid primary key references public.webhooks (id) on delete cascade,
  stripe_customer_id text not null,
  created            timestamptz not null,
  event              jsonb not null
);

comment on table private.stripe_pending_events is
  'Stripe events for a customer no org has yet; applied in order by the checkout that links the customer. Service role only.';

create index stripe_pending_events_customer_idx
  on private.stripe_pending_events (stripe_customer_id, created);

alter table private.stripe_pending_events enable row level security;
revoke all on private.stripe_pending_events from public, anon, authenticated;
grant select, insert, delete on private.stripe_pending_events to service_role;

-- =============================================================================================
-- Helpers (private: not exposed by PostgREST)
-- =============================================================================================

-- A subscription's lifecycle: created, updated, deleted (0 for anything else).
create or replace function private.stripe_event_rank(p_type text)
returns int
language sql
immutable
set search_path = ''
as $$
  select case p_type
    when 'customer.subscription.created' then 1
    when 'customer.subscription.updated' then 2
    when 'customer.subscription.deleted' then 3
    else 0
  end;
$$;

-- Whether an event's own copy comes too late for the org (see the rules above). A refetched
-- subscription is never stale; the caller decides that.
create or replace function private.stripe_is_stale(
  p_org public.orgs,
  p_type text,
  p_created timestamptz,
  p_object jsonb
)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(case
    when private.stripe_event_rank(p_type) > 0 then
      p_org.subscription_event_at > p_created
      or (p_org.subscription_event_at = p_created
          and p_object ->> 'id' = p_org.stripe_subscription_id
          and private.stripe_event_rank(p_type) < private.stripe_event_rank(p_org.subscription_event_type))
    when p_type = 'checkout.session.completed' then p_org.subscription_event_at > p_created
    when p_type like 'invoice.%' then p_org.invoice_event_at > p_created
  end, false);
$$;

-- Whether a refetched subscription is older than the state the org holds: asked for before the
-- org's own snapshot or before the event its state comes from (a null p_fetched_at compares
-- as fresh), or the org's subscription has ended (canceled, incomplete_expired: terminal in
-- Stripe) and the snapshot shows it not ended.
create or replace function private.stripe_snapshot_is_stale(
  p_org public.orgs,
  p_subscription jsonb,
  p_fetched_at timestamptz
)
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce(p_fetched_at < p_org.subscription_fetched_at, false)
      or coalesce(p_fetched_at < p_org.subscription_event_at, false)
      or (p_org.stripe_subscription_id = p_subscription ->> 'id'
          and p_org.subscription_status in ('canceled', 'incomplete_expired')
          and coalesce(p_subscription ->> 'status', '') not in ('canceled', 'incomplete_expired'));
$$;

-- A Stripe reference: an id string, or the object itself when expanded; null otherwise.
create or replace function private.stripe_id(p_value jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
  select case jsonb_typeof(p_value)
    when 'string' then p_value #>> '{}'
    when 'object' then p_value ->> 'id'
  end;
$$;

-- Serialises, per Stripe customer, parking an event with the checkout that links the customer.
create or replace function private.stripe_lock_customer(p_customer text)
returns void
language sql
set search_path = ''
as $$
  select pg_advisory_xact_lock(hashtextextended('stripe_customer:' || p_customer, 0));
$$;

-- The org an event is about, locked until the transaction ends (all fields null when none):
-- a checkout session names it in client_reference_id, every other event by its customer. When
-- no org has the customer, the customer lock is taken and the org looked up again: a checkout
-- linking it meanwhile has then committed (or parks after this transaction).
create or replace function private.stripe_lock_org(p_type text, p_object jsonb)
returns public.orgs
language plpgsql
set search_path = ''
as $$
declare
  v_org       public.orgs;
  v_reference text := p_object ->> 'client_reference_id';
  v_customer  text := private.stripe_id(p_object -> 'customer');
begin
  if p_type = 'checkout.session.completed'
     and v_reference ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    select * into v_org from public.orgs where id = v_reference::uuid for update;
    return v_org;
  end if;
  select * into v_org from public.orgs where stripe_customer_id = v_customer for update;
  if not found and v_customer is not null then
    perform private.stripe_lock_customer(v_customer);
    select * into v_org from public.orgs where stripe_customer_id = v_customer for update;
  end if;
  return v_org;
end;
$$;

-- Keeps an event whose customer no org has yet, under the customer lock taken by
-- stripe_lock_org. Its webhooks row stays 'received' until the checkout applies it.
create or replace function private.stripe_park(p_webhook uuid, p_customer text, p_event jsonb)
returns text
language sql
set search_path = ''
as $$
  insert into private.stripe_pending_events (webhook_id, stripe_customer_id, created, event)
  values (p_webhook, p_customer, to_timestamp((p_event ->> 'created')::double precision), p_event);
  select 'pending';
$$;

-- Applies, oldest first (a subscription's lifecycle breaking ties), the events kept for a
-- customer the org has just been linked to. The caller holds the customer lock.
create or replace function private.stripe_apply_pending(p_org_id uuid, p_customer text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_pending record;
  v_org     public.orgs;
begin
  for v_pending in
    select webhook_id, event from private.stripe_pending_events
    where stripe_customer_id = p_customer
    order by created, private.stripe_event_rank(event ->> 'type'), webhook_id
  loop
    delete from private.stripe_pending_events where webhook_id = v_pending.webhook_id;
    select * into v_org from public.orgs where id = p_org_id;
    perform private.stripe_apply(v_pending.webhook_id, v_org, v_pending.event, null);
  end loop;
end;
$$;

-- Applies a Subscription object (the event's copy, or the API's when refetched): status, plan
-- and monthly_token_budget from the price, current_period_end (on the subscription before API
-- version 2025-03-31.basil, on its items since), cancel_at_period_end. The plan holds while the
-- subscription is active, trialing or past_due; in any other status the org is back on free.
-- Returns why it was not applied, or null: a subscription that is over and is not the org's
-- current one (an old subscription ending after the org subscribed again) changes nothing.
create or replace function private.stripe_apply_subscription(
  p_org public.orgs,
  p_subscription jsonb,
  p_deleted boolean
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_status   text := case when p_deleted then 'canceled' else p_subscription ->> 'status' end;
  v_entitled boolean := v_status in ('active', 'trialing', 'past_due');
  v_items    jsonb := coalesce(p_subscription #> '{items,data}', '[]'::jsonb);
  v_plan     public.plans;
begin
  if not v_entitled
     and p_org.stripe_subscription_id is distinct from (p_subscription ->> 'id')
     and p_org.stripe_subscription_id is not null then
    return 'not the org''s current subscription';
  end if;

  if v_entitled then
    select p.* into v_plan
    from jsonb_array_elements(v_items) as item
    join public.plans p on p.stripe_price_id = coalesce(item #>> '{price,id}', item #>> '{plan,id}')
    order by p.monthly_token_budget desc
    limit 1;
    if v_plan.name is null then
      insert into public.alerts (org_id, kind, severity, message)
      values (p_org.id, 'billing_unknown_price', 'warning',
              format('Stripe subscription %s has no price that matches a plan; the org keeps plan %s.',
                     p_subscription ->> 'id', p_org.plan));
      select * into v_plan from public.plans where name = p_org.plan;
    end if;
  else
    select * into v_plan from public.plans where name = 'free';
  end if;

  update public.orgs
  set stripe_subscription_id = p_subscription ->> 'id',
      subscription_status    = v_status,
      plan                   = v_plan.name,
      monthly_token_budget   = v_plan.monthly_token_budget,
      current_period_end     = to_timestamp(coalesce(
                                 (p_subscription ->> 'current_period_end')::bigint,
                                 (select max((item ->> 'current_period_end')::bigint)
                                  from jsonb_array_elements(v_items) as item))),
      cancel_at_period_end   = coalesce((p_subscription ->> 'cancel_at_period_end')::boolean, false)
  where id = p_org.id;
  return null;
end;
$$;

-- checkout.session.completed: when p_link, links the org to its Stripe customer and subscription
-- and applies the events kept for that customer; then applies the refetched subscription, if any.
create or replace function private.stripe_apply_checkout(
  p_org public.orgs,
  p_session jsonb,
  p_subscription jsonb,
  p_link boolean
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_org          public.orgs := p_org;
  v_customer     text := private.stripe_id(p_session -> 'customer');
  v_subscription text := private.stripe_id(p_session -> 'subscription');
begin
  if p_link then
    update public.orgs
    set stripe_customer_id      = coalesce(v_customer, stripe_customer_id),
        stripe_subscription_id  = coalesce(v_subscription, stripe_subscription_id),
        subscription_event_type = case
                                    when coalesce(v_subscription, stripe_subscription_id)
                                         is distinct from stripe_subscription_id
                                    then null else subscription_event_type end
    where id = p_org.id;
    if v_customer is not null then
      perform private.stripe_lock_customer(v_customer);
      perform private.stripe_apply_pending(p_org.id, v_customer);
    end if;
    select * into v_org from public.orgs where id = p_org.id;
  end if;
  if p_subscription is null then
    return null;
  end if;
  return private.stripe_apply_subscription(v_org, p_subscription, false);
end;
$$;

-- invoice.paid renews the token budget: the budget period restarts at the start of the paid
-- period (the latest line's period.start, else the event's time) with the full budget of the
-- org's plan, and a past_due or unpaid subscription is active again unless the org holds a newer
-- subscription state. Invoices that bill no subscription (parent.subscription_details.subscription
-- since 2025-03-31.basil, subscription before) change nothing.
create or replace function private.stripe_apply_invoice_paid(
  p_org public.orgs,
  p_invoice jsonb,
  p_created timestamptz
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_period_start bigint;
  v_current      boolean := p_created >= coalesce(p_org.subscription_event_at, '-infinity');
begin
  if coalesce(private.stripe_id(p_invoice #> '{parent,subscription_details,subscription}'),
              private.stripe_id(p_invoice -> 'subscription')) is null then
    return 'not a subscription invoice';
  end if;
  select max((line #>> '{period,start}')::bigint) into v_period_start
  from jsonb_array_elements(coalesce(p_invoice #> '{lines,data}', '[]'::jsonb)) as line;

  update public.orgs o
  set token_period_started_at = coalesce(to_timestamp(v_period_start), p_created),
      monthly_token_budget    = p.monthly_token_budget,
      subscription_status     = case when v_current and o.subscription_status in ('past_due', 'unpaid')
                                     then 'active' else o.subscription_status end
  from public.plans p
  where o.id = p_org.id and p.name = o.plan;
  return null;
end;
$$;

-- invoice.payment_failed: an active or trialing subscription becomes past_due (Stripe retries
-- the payment) unless the org holds a newer subscription state, and the org gets an alert
-- whatever its status.
create or replace function private.stripe_apply_payment_failed(
  p_org public.orgs,
  p_invoice jsonb,
  p_created timestamptz
)
returns text
language plpgsql
set search_path = ''
as $$
begin
  update public.orgs
  set subscription_status = case when p_created >= coalesce(p_org.subscription_event_at, '-infinity')
                                      and subscription_status in ('active', 'trialing')
                                 then 'past_due' else subscription_status end
  where id = p_org.id;
  insert into public.alerts (org_id, kind, severity, message)
  values (p_org.id, 'billing_payment_failed', 'warning',
          format('Stripe could not collect payment for invoice %s (attempt %s).',
                 p_invoice ->> 'id', coalesce(p_invoice ->> 'attempt_count', '?')));
  return null;
end;
$$;

-- Records how an event ended (webhooks.error holds the reason when ignored or failed) and
-- returns the outcome for the caller.
create or replace function private.stripe_finish(
  p_webhook uuid,
  p_org_id uuid,
  p_status text,
  p_reason text,
  p_outcome text
)
returns text
language sql
set search_path = ''
as $$
  update public.webhooks
  set org_id = p_org_id, status = p_status, error = p_reason, processed_at = now()
  where id = p_webhook;
  select p_outcome;
$$;

-- Orders, applies and records one event of a locked org: p_webhook is its webhooks row,
-- p_subscription the subscription refetched from the Stripe API (null: the event's own copy).
-- Moves the clocks of what it applied and returns the outcome (see apply_stripe_event).
create or replace function private.stripe_apply(
  p_webhook uuid,
  p_org public.orgs,
  p_event jsonb,
  p_subscription jsonb
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_id      text := p_event ->> 'id';
  v_type    text := p_event ->> 'type';
  v_object  jsonb := p_event #> '{data,object}';
  v_created timestamptz := to_timestamp((p_event ->> 'created')::double precision);
  v_stale   boolean := private.stripe_is_stale(p_org, v_type, v_created, v_object);
  v_state   boolean := private.stripe_event_rank(v_type) > 0 or p_subscription is not null;
  v_skipped text;
begin
  if v_stale and p_subscription is null then
    return private.stripe_finish(p_webhook, p_org.id, 'ignored', 'stale', 'stale');
  end if;

  begin
    if v_type = 'checkout.session.completed' then
      v_skipped := private.stripe_apply_checkout(p_org, v_object, p_subscription, not v_stale);
    elsif v_type = 'invoice.paid' then
      v_skipped := private.stripe_apply_invoice_paid(p_org, v_object, v_created);
    elsif v_type = 'invoice.payment_failed' then
      v_skipped := private.stripe_apply_payment_failed(p_org, v_object, v_created);
    else
      v_skipped := private.stripe_apply_subscription(
        p_org, coalesce(p_subscription, v_object), v_type = 'customer.subscription.deleted');
    end if;
  exception when data_exception or integrity_constraint_violation then
    insert into public.alerts (org_id, kind, severity, message)
    values (p_org.id, 'billing_event_failed', 'critical',
            format('Stripe event %s (%s) could not be applied: %s', v_id, v_type, sqlerrm));
    return private.stripe_finish(p_webhook, p_org.id, 'failed', sqlerrm, 'rejected');
  end;

  if v_skipped is not null then
    return private.stripe_finish(p_webhook, p_org.id, 'ignored', v_skipped, 'ignored');
  end if;
  -- A refetched state older than the org's clock (a retry) applies but leaves the clock.
  update public.orgs
  set billing_event_at        = greatest(billing_event_at, v_created),
      subscription_event_at   = case when v_state and v_created >= coalesce(subscription_event_at, '-infinity')
                                     then v_created else subscription_event_at end,
      subscription_event_type = case when private.stripe_event_rank(v_type) > 0
                                          and v_created >= coalesce(subscription_event_at, '-infinity')
                                     then v_type else subscription_event_type end,
      invoice_event_at        = case when v_type like 'invoice.%'
                                     then greatest(invoice_event_at, v_created) else invoice_event_at end
  where id = p_org.id;
  return private.stripe_finish(p_webhook, p_org.id, 'processed', null, 'applied');
end;
$$;

-- =============================================================================================
-- apply_stripe_event: the one entry point (service_role only)
-- =============================================================================================

-- Applies one verified Stripe event. p_subscription is the subscription as the Stripe API
-- returned it when asked at p_fetched_at; unless it is stale (see the rules above) it is the
-- current state and applies without the event's order check.
-- Outcomes:
--   applied           the org changed (webhooks.status processed)
--   duplicate         this event id was already received; nothing changed (attempts + 1)
--   stale             older than its clock, see the rules above (status ignored)
--   ignored           an event type this service does not use, or nothing to change
--   pending           no org has the event's customer yet: kept until a checkout links it
--                     (status received)
--   unknown_customer  a checkout whose org does not exist, or an event without a customer; an
--                     alert with org_id null is raised (status ignored)
--   rejected          the event cannot be applied (e.g. its customer belongs to another org);
--                     an alert is raised (status failed). Retrying would not help.
create or replace function public.apply_stripe_event(
  p_event jsonb,
  p_subscription jsonb default null,
  p_fetched_at timestamptz default null
)
returns text
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_id       text := p_event ->> 'id';
  v_type     text := p_event ->> 'type';
  v_object   jsonb := p_event #> '{data,object}';
  v_customer text;
  v_webhook  uuid;
  v_org      public.orgs;
  v_snapshot jsonb := case when jsonb_typeof(p_subscription) = 'object' then p_subscription end;
begin
  if coalesce(v_id, '') = '' or coalesce(v_type, '') = ''
     or jsonb_typeof(p_event -> 'created') is distinct from 'number'
     or jsonb_typeof(v_object) is distinct from 'object' then
    raise exception 'apply_stripe_event: a Stripe event with id, type, created and data.object is required'
      using errcode = 'invalid_parameter_value';
  end if;

  insert into public.webhooks (source, external_id, event_type)
  values ('stripe', v_id, v_type)
  on conflict (source, external_id) do nothing
  returning id into v_webhook;
  if v_webhook is null then
    update public.webhooks set attempts = attempts + 1
    where source = 'stripe' and external_id = v_id;
    return 'duplicate';
  end if;

  if v_type not in ('checkout.session.completed', 'customer.subscription.created',
                    'customer.subscription.updated', 'customer.subscription.deleted',
                    'invoice.paid', 'invoice.payment_failed') then
    return private.stripe_finish(v_webhook, null, 'ignored', 'unhandled event type', 'ignored');
  end if;

  v_org := private.stripe_lock_org(v_type, v_object);
  if v_org.id is null then
    v_customer := private.stripe_id(v_object -> 'customer');
    if v_type <> 'checkout.session.completed' and v_customer is not null then
      return private.stripe_park(v_webhook, v_customer, p_event);
    end if;
    insert into public.alerts (kind, severity, message)
    values ('billing_unknown_customer', 'warning',
            format('Stripe event %s (%s) matches no org (customer %s, client_reference_id %s).',
                   v_id, v_type, coalesce(v_customer, 'none'),
                   coalesce(v_object ->> 'client_reference_id', 'none')));
    return private.stripe_finish(v_webhook, null, 'ignored', 'unknown customer', 'unknown_customer');
  end if;

  if v_snapshot is not null then
    if private.stripe_snapshot_is_stale(v_org, v_snapshot, p_fetched_at) then
      v_snapshot := null;
    else
      update public.orgs
      set subscription_fetched_at = greatest(subscription_fetched_at, p_fetched_at)
      where id = v_org.id;
    end if;
  end if;
  return private.stripe_apply(v_webhook, v_org, p_event, v_snapshot);
end;
$$;

comment on function public.apply_stripe_event(jsonb, jsonb, timestamptz) is
  'Applies one verified Stripe event to its org in one transaction: dedupe, order, apply or keep for a later checkout, alerts; service_role only.';

-- =============================================================================================
-- Privileges: service_role only (the default privileges would let every role execute them)
-- =============================================================================================

revoke all on function public.apply_stripe_event(jsonb, jsonb, timestamptz) from public, anon, authenticated;
grant execute on function public.apply_stripe_event(jsonb, jsonb, timestamptz) to service_role;

revoke all on function
  private.stripe_event_rank(text),
  private.stripe_is_stale(public.orgs, text, timestamptz, jsonb),
  private.stripe_snapshot_is_stale(public.orgs, jsonb, timestamptz),
  private.stripe_id(jsonb),
  private.stripe_lock_customer(text),
  private.stripe_lock_org(text, jsonb),
  private.stripe_park(uuid, text, jsonb),
  private.stripe_apply_pending(uuid, text),
  private.stripe_apply_subscription(public.orgs, jsonb, boolean),
  private.stripe_apply_checkout(public.orgs, jsonb, jsonb, boolean),
  private.stripe_apply_invoice_paid(public.orgs, jsonb, timestamptz),
  private.stripe_apply_payment_failed(public.orgs, jsonb, timestamptz),
  private.stripe_finish(uuid, uuid, text, text, text),
  private.stripe_apply(uuid, public.orgs, jsonb, jsonb)
from public, anon, authenticated;
grant execute on function
  private.stripe_event_rank(text),
  private.stripe_is_stale(public.orgs, text, timestamptz, jsonb),
  private.stripe_snapshot_is_stale(public.orgs, jsonb, timestamptz),
  private.stripe_id(jsonb),
  private.stripe_lock_customer(text),
  private.stripe_lock_org(text, jsonb),
  private.stripe_park(uuid, text, jsonb),
  private.stripe_apply_pending(uuid, text),
  private.stripe_apply_subscription(public.orgs, jsonb, boolean),
  private.stripe_apply_checkout(public.orgs, jsonb, jsonb, boolean),
  private.stripe_apply_invoice_paid(public.orgs, jsonb, timestamptz),
  private.stripe_apply_payment_failed(public.orgs, jsonb, timestamptz),
  private.stripe_finish(uuid, uuid, text, text, text),
  private.stripe_apply(uuid, public.orgs, jsonb, jsonb)
to service_role;
