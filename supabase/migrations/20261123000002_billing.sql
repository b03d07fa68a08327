-- Billing: Stripe webhook events applied to orgs (issue 5).
--
-- /api/billing/webhook verifies the signature and calls public.apply_stripe_event once through
-- PostgREST as service_role. One call is one transaction: it records the event in webhooks
-- (deduplicated on the event id), locks the org, decides whether the event is new enough,
-- applies it and writes alerts. Nothing is half-applied; a duplicate delivery, even a
-- concurrent one, waits for the first and then changes nothing.
--
-- Order: an event applies only when it is at least as new as the last applied one
-- (orgs.billing_event_at against the event's `created`, whole seconds); an older one is stale.
-- Ties (same second) apply, because Stripe emits several events in one second (checkout with
-- customer.subscription.created, invoice.paid with customer.subscription.updated, ...), with
-- one exception: the events of one subscription follow its lifecycle, created < updated <
-- deleted (private.stripe_event_rank), so a customer.subscription.* event of the org's current
-- subscription that ranks below the last applied one of the same second is stale (an update
-- cannot undo a deletion, a creation cannot undo an update).
--
-- Runs unchanged on hosted Supabase: no roles, no superuser-only statements.

alter table public.orgs
  add column token_period_started_at timestamptz not null default now(),
  add column subscription_event_type text;

comment on column public.orgs.token_period_started_at is
  'Start of the current monthly token budget period (usage counts from here); invoice.paid moves it to the start of the paid period.';
comment on column public.orgs.subscription_event_type is
  'Type of the last applied customer.subscription.* event of the current subscription: orders its events of one second.';

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

-- Whether an event comes too late to apply to the org (see "Order" above).
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
  select coalesce(
    p_org.billing_event_at > p_created
    or (p_org.billing_event_at = p_created
        and private.stripe_event_rank(p_type) > 0
        and p_object ->> 'id' = p_org.stripe_subscription_id
        and private.stripe_event_rank(p_type) < private.stripe_event_rank(p_org.subscription_event_type)),
    false);
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

-- The org an event is about, locked until the transaction ends (all fields null when none):
-- a checkout session names it in client_reference_id, every other event by its customer.
create or replace function private.stripe_lock_org(p_type text, p_object jsonb)
returns public.orgs
language plpgsql
set search_path = ''
as $$
declare
  v_org       public.orgs;
  v_reference text := p_object ->> 'client_reference_id';
begin
  if p_type = 'checkout.session.completed'
     and v_reference ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    select * into v_org from public.orgs where id = v_reference::uuid for update;
  else
    select * into v_org from public.orgs
    where stripe_customer_id = private.stripe_id(p_object -> 'customer')
    for update;
  end if;
  return v_org;
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

-- checkout.session.completed: links the org to its Stripe customer and subscription; when the
-- caller refetched that subscription from the API, applies it as well.
create or replace function private.stripe_apply_checkout(
  p_org public.orgs,
  p_session jsonb,
  p_subscription jsonb
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_org public.orgs;
begin
  update public.orgs
  set stripe_customer_id      = coalesce(private.stripe_id(p_session -> 'customer'), stripe_customer_id),
      stripe_subscription_id  = coalesce(private.stripe_id(p_session -> 'subscription'), stripe_subscription_id),
      subscription_event_type = case
                                  when coalesce(private.stripe_id(p_session -> 'subscription'), stripe_subscription_id)
                                       is distinct from stripe_subscription_id
                                  then null else subscription_event_type end
  where id = p_org.id
  returning * into v_org;
  if p_subscription is null then
    return null;
  end if;
  return private.stripe_apply_subscription(v_org, p_subscription, false);
end;
$$;

-- invoice.paid renews the token budget: the budget period restarts at the start of the paid
-- period (the latest line's period.start, else the event's time) with the full budget of the
-- org's plan, and a past_due or unpaid subscription is active again. Invoices that bill no
-- subscription (parent.subscription_details.subscription since 2025-03-31.basil, subscription
-- before) change nothing.
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
      subscription_status     = case when o.subscription_status in ('past_due', 'unpaid')
                                     then 'active' else o.subscription_status end
  from public.plans p
  where o.id = p_org.id and p.name = o.plan;
  return null;
end;
$$;

-- invoice.payment_failed: an active or trialing subscription becomes past_due (Stripe retries
-- the payment), and the org gets an alert whatever its status.
create or replace function private.stripe_apply_payment_failed(p_org public.orgs, p_invoice jsonb)
returns text
language plpgsql
set search_path = ''
as $$
begin
  update public.orgs
  set subscription_status = case when subscription_status in ('active', 'trialing')
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

-- =============================================================================================
-- apply_stripe_event: the one entry point (service_role only)
-- =============================================================================================

-- Applies one verified Stripe event. p_subscription is the subscription as the Stripe API
-- returned it just now; when given it wins over the event's copy. Outcomes:
--   applied           the org changed (webhooks.status processed)
--   duplicate         this event id was already received; nothing changed (attempts + 1)
--   stale             older than the last applied event, see "Order" above (status ignored)
--   ignored           an event type this service does not use, or nothing to change
--   unknown_customer  no org matches; an alert with org_id null is raised (status ignored)
--   rejected          the event cannot be applied (e.g. its customer belongs to another org);
--                     an alert is raised (status failed). Retrying would not help.
create or replace function public.apply_stripe_event(p_event jsonb, p_subscription jsonb default null)
returns text
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_id           text := p_event ->> 'id';
  v_type         text := p_event ->> 'type';
  v_object       jsonb := p_event #> '{data,object}';
  v_subscription jsonb := case when jsonb_typeof(p_subscription) = 'object' then p_subscription end;
  v_created      timestamptz;
  v_webhook      uuid;
  v_org          public.orgs;
  v_skipped      text;
begin
  if coalesce(v_id, '') = '' or coalesce(v_type, '') = ''
     or jsonb_typeof(p_event -> 'created') is distinct from 'number'
     or jsonb_typeof(v_object) is distinct from 'object' then
    raise exception 'apply_stripe_event: a Stripe event with id, type, created and data.object is required'
      using errcode = 'invalid_parameter_value';
  end if;
  v_created := to_timestamp((p_event ->> 'created')::double precision);

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
    insert into public.alerts (kind, severity, message)
    values ('billing_unknown_customer', 'warning',
            format('Stripe event %s (%s) matches no org (customer %s, client_reference_id %s).',
                   v_id, v_type, coalesce(private.stripe_id(v_object -> 'customer'), 'none'),
                   coalesce(v_object ->> 'client_reference_id', 'none')));
    return private.stripe_finish(v_webhook, null, 'ignored', 'unknown customer', 'unknown_customer');
  end if;

  if private.stripe_is_stale(v_org, v_type, v_created, v_object) then
    return private.stripe_finish(v_webhook, v_org.id, 'ignored', 'stale', 'stale');
  end if;

  begin
    if v_type = 'checkout.session.completed' then
      v_skipped := private.stripe_apply_checkout(v_org, v_object, v_subscription);
    elsif v_type = 'invoice.paid' then
      v_skipped := private.stripe_apply_invoice_paid(v_org, v_object, v_created);
    elsif v_type = 'invoice.payment_failed' then
      v_skipped := private.stripe_apply_payment_failed(v_org, v_object);
    else
      v_skipped := private.stripe_apply_subscription(
        v_org, coalesce(v_subscription, v_object), v_type = 'customer.subscription.deleted');
    end if;
  exception when data_exception or integrity_constraint_violation then
    insert into public.alerts (org_id, kind, severity, message)
    values (v_org.id, 'billing_event_failed', 'critical',
            format('Stripe event %s (%s) could not be applied: %s', v_id, v_type, sqlerrm));
    return private.stripe_finish(v_webhook, v_org.id, 'failed', sqlerrm, 'rejected');
  end;

  if v_skipped is not null then
    return private.stripe_finish(v_webhook, v_org.id, 'ignored', v_skipped, 'ignored');
  end if;
  update public.orgs
  set billing_event_at        = v_created,
      subscription_event_type = case when private.stripe_event_rank(v_type) > 0
                                     then v_type else subscription_event_type end
  where id = v_org.id;
  return private.stripe_finish(v_webhook, v_org.id, 'processed', null, 'applied');
end;
$$;

comment on function public.apply_stripe_event(jsonb, jsonb) is
  'Applies one verified Stripe event to its org in one transaction: dedupe, order, apply, alerts; service_role only.';

-- =============================================================================================
-- Privileges: service_role only
-- =============================================================================================

revoke all on function public.apply_stripe_event(jsonb, jsonb) from public, anon, authenticated;
grant execute on function public.apply_stripe_event(jsonb, jsonb) to service_role;

revoke all on function
  private.stripe_event_rank(text),
  private.stripe_is_stale(public.orgs, text, timestamptz, jsonb),
  private.stripe_id(jsonb),
  private.stripe_lock_org(text, jsonb),
  private.stripe_apply_subscription(public.orgs, jsonb, boolean),
  private.stripe_apply_checkout(public.orgs, jsonb, jsonb),
  private.stripe_apply_invoice_paid(public.orgs, jsonb, timestamptz),
  private.stripe_apply_payment_failed(public.orgs, jsonb),
  private.stripe_finish(uuid, uuid, text, text, text)
from public, anon, authenticated;
grant execute on function
  private.stripe_event_rank(text),
  private.stripe_is_stale(public.orgs, text, timestamptz, jsonb),
  private.stripe_id(jsonb),
  private.stripe_lock_org(text, jsonb),
  private.stripe_apply_subscription(public.orgs, jsonb, boolean),
  private.stripe_apply_checkout(public.orgs, jsonb, jsonb),
  private.stripe_apply_invoice_paid(public.orgs, jsonb, timestamptz),
  private.stripe_apply_payment_failed(public.orgs, jsonb),
  private.stripe_finish(uuid, uuid, text, text, text)
to service_role;
