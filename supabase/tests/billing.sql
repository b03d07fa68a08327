-- public.apply_stripe_event: dedupe, order (one clock for subscription state, one for invoices,
-- ties included; refetched subscriptions unordered), every event type, events kept until their
-- customer's checkout, alerts, privileges.
begin;
create extension if not exists pgtap;
select plan(65);

-- Plans and orgs of its own, so the seed does not matter.
insert into public.plans (name, monthly_token_budget) values ('free', 100000) on conflict (name) do nothing;
insert into public.plans (name, stripe_price_id, monthly_token_budget) values
  ('tap_basic', 'price_tap_basic', 500),
  ('tap_plus', 'price_tap_plus', 900);
insert into public.orgs (id, name, stripe_customer_id) values
  ('b0000000-0000-4000-8000-000000000001', 'Billing Test Org', 'cus_tap_1'),
  ('b0000000-0000-4000-8000-000000000002', 'Billing Other Org', 'cus_tap_2'),
  ('b0000000-0000-4000-8000-000000000003', 'Billing Checkout Org', null),
  ('b0000000-0000-4000-8000-000000000004', 'Billing Late Checkout Org', null);

-- A Stripe event envelope around p_object.
create function pg_temp.ev(p_id text, p_type text, p_created bigint, p_object jsonb)
returns jsonb language sql as $$
  select jsonb_build_object(
    'id', p_id, 'object', 'event', 'api_version', '2025-03-31.basil', 'created', p_created,
    'data', jsonb_build_object('object', p_object), 'livemode', false, 'pending_webhooks', 1,
    'request', jsonb_build_object('id', null, 'idempotency_key', null), 'type', p_type);
$$;

-- A Subscription as API version 2025-03-31.basil renders it (period on the item).
create function pg_temp.sub(p_id text, p_customer text, p_status text, p_price text)
returns jsonb language sql as $$
  select jsonb_build_object(
    'id', p_id, 'object', 'subscription', 'customer', p_customer, 'status', p_status,
    'cancel_at_period_end', false, 'created', 1767225600,
    'items', jsonb_build_object('object', 'list', 'data', jsonb_build_array(jsonb_build_object(
      'id', 'si_' || p_id, 'object', 'subscription_item',
      'current_period_start', 1767225600, 'current_period_end', 1769904000,
      'price', jsonb_build_object('id', p_price, 'object', 'price', 'type', 'recurring')))));
$$;

create function pg_temp.apply(p_event jsonb, p_subscription jsonb default null)
returns text language sql as $$
  select public.apply_stripe_event(p_event, p_subscription);
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------
select ok(has_function_privilege('service_role', 'public.apply_stripe_event(jsonb, jsonb, timestamptz)', 'execute'),
  'service_role may apply Stripe events');
select ok(not has_function_privilege('anon', 'public.apply_stripe_event(jsonb, jsonb, timestamptz)', 'execute'),
  'anon may not apply Stripe events');
select ok(not has_function_privilege('authenticated', 'public.apply_stripe_event(jsonb, jsonb, timestamptz)', 'execute'),
  'authenticated may not apply Stripe events');
select ok(not has_function_privilege('authenticated', 'private.stripe_finish(uuid, uuid, text, text, text)', 'execute'),
  'authenticated may not call the private helpers');
select ok(not has_function_privilege('authenticated', 'private.stripe_apply(uuid, public.orgs, jsonb, jsonb)', 'execute'),
  'authenticated may not call the ordering helpers');
select ok(not has_table_privilege('authenticated', 'private.stripe_pending_events', 'select')
          and not has_table_privilege('anon', 'private.stripe_pending_events', 'select'),
  'users cannot read events kept for a later checkout');
select ok(has_table_privilege('service_role', 'private.stripe_pending_events', 'insert'),
  'service_role keeps events for a later checkout');

-- Everything below runs as the webhook does.
set local role service_role;

-- ---------------------------------------------------------------------------------------------
-- Subscription lifecycle, dedupe and order
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.apply(pg_temp.ev('evt_tap_01', 'customer.subscription.created', 1767225600,
  pg_temp.sub('sub_tap_1', 'cus_tap_1', 'active', 'price_tap_basic'))), 'applied',
  'customer.subscription.created applies');
select results_eq(
  $$ select plan, subscription_status, monthly_token_budget, stripe_subscription_id,
            current_period_end, cancel_at_period_end, billing_event_at, subscription_event_at,
            subscription_event_type, invoice_event_at
     from public.orgs where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('tap_basic', 'active', 500::bigint, 'sub_tap_1', to_timestamp(1769904000), false,
             to_timestamp(1767225600), to_timestamp(1767225600), 'customer.subscription.created',
             null::timestamptz) $$,
  'plan, budget, status, ids and the period end on the item are applied; the subscription clock moves');

select is(pg_temp.apply(pg_temp.ev('evt_tap_01', 'customer.subscription.created', 1767225600,
  pg_temp.sub('sub_tap_1', 'cus_tap_1', 'active', 'price_tap_basic'))), 'duplicate',
  'the same event id again is a duplicate');
select results_eq(
  $$ select status, attempts, org_id, event_type from public.webhooks
     where source = 'stripe' and external_id = 'evt_tap_01' $$,
  $$ values ('processed', 2, 'b0000000-0000-4000-8000-000000000001'::uuid, 'customer.subscription.created') $$,
  'one webhooks row, processed, with two attempts');

-- Before API version 2025-03-31.basil the period end is on the subscription itself.
select is(pg_temp.apply(pg_temp.ev('evt_tap_02', 'customer.subscription.updated', 1767225700,
  pg_temp.sub('sub_tap_1', 'cus_tap_1', 'active', 'price_tap_plus')
    || '{"cancel_at_period_end": true, "current_period_end": 1770000000}')), 'applied',
  'a newer customer.subscription.updated applies');
select results_eq(
  $$ select plan, monthly_token_budget, cancel_at_period_end, current_period_end
     from public.orgs where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('tap_plus', 900::bigint, true, to_timestamp(1770000000)) $$,
  'the new plan sets the budget; the subscription-level period end wins');

select is(pg_temp.apply(pg_temp.ev('evt_tap_03', 'customer.subscription.updated', 1767225650,
  pg_temp.sub('sub_tap_1', 'cus_tap_1', 'past_due', 'price_tap_basic'))), 'stale',
  'an older event is stale');
select results_eq(
  $$ select plan, subscription_status from public.orgs where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('tap_plus', 'active') $$,
  'a stale event changes nothing');
select results_eq(
  $$ select status, error from public.webhooks where source = 'stripe' and external_id = 'evt_tap_03' $$,
  $$ values ('ignored', 'stale') $$,
  'a stale event is recorded as ignored');

-- Same second: deletion outranks an update, whatever the delivery order.
select is(pg_temp.apply(pg_temp.ev('evt_tap_04', 'customer.subscription.deleted', 1767225800,
  pg_temp.sub('sub_tap_1', 'cus_tap_1', 'canceled', 'price_tap_plus'))), 'applied',
  'customer.subscription.deleted applies');
select results_eq(
  $$ select plan, subscription_status, monthly_token_budget from public.orgs
     where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('free', 'canceled', 100000::bigint) $$,
  'deletion cancels and puts the org back on free');
select is(pg_temp.apply(pg_temp.ev('evt_tap_05', 'customer.subscription.updated', 1767225800,
  pg_temp.sub('sub_tap_1', 'cus_tap_1', 'active', 'price_tap_plus'))), 'stale',
  'an update created in the same second as the applied deletion is stale');

-- A second subscription takes over; the end of the old one then changes nothing.
select is(pg_temp.apply(pg_temp.ev('evt_tap_06', 'customer.subscription.created', 1767226000,
  pg_temp.sub('sub_tap_2', 'cus_tap_1', 'active', 'price_tap_plus'))), 'applied',
  'a new subscription of the same customer applies');
select is(pg_temp.apply(pg_temp.ev('evt_tap_07', 'customer.subscription.deleted', 1767226100,
  pg_temp.sub('sub_tap_1', 'cus_tap_1', 'canceled', 'price_tap_plus'))), 'ignored',
  'the end of a subscription that is not the current one is ignored');
select results_eq(
  $$ select plan, subscription_status, stripe_subscription_id from public.orgs
     where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('tap_plus', 'active', 'sub_tap_2') $$,
  'the current subscription stands');

-- The refetched subscription wins over the event's copy.
select is(pg_temp.apply(
  pg_temp.ev('evt_tap_08', 'customer.subscription.updated', 1767226150,
             pg_temp.sub('sub_tap_2', 'cus_tap_1', 'active', 'price_tap_plus')),
  pg_temp.sub('sub_tap_2', 'cus_tap_1', 'trialing', 'price_tap_basic')), 'applied',
  'an update with a refetched subscription applies');
select results_eq(
  $$ select plan, subscription_status from public.orgs where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('tap_basic', 'trialing') $$,
  'the API''s subscription is applied, not the event''s copy');
select is(pg_temp.apply(
  pg_temp.ev('evt_tap_30', 'customer.subscription.updated', 1767226050,
             pg_temp.sub('sub_tap_2', 'cus_tap_1', 'active', 'price_tap_plus')),
  pg_temp.sub('sub_tap_2', 'cus_tap_1', 'active', 'price_tap_basic')), 'applied',
  'a refetched subscription applies although its event is older than the clock (a retry)');
select results_eq(
  $$ select subscription_status, subscription_event_at from public.orgs
     where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('active', to_timestamp(1767226150)) $$,
  'the current state is applied and the clock stays');
select is(pg_temp.apply(pg_temp.ev('evt_tap_31', 'customer.subscription.updated', 1767226060,
  pg_temp.sub('sub_tap_2', 'cus_tap_1', 'past_due', 'price_tap_basic'))), 'stale',
  'the event''s own copy older than the clock is still stale');

-- A late checkout of a replaced subscription does not link it back, refetched or not.
select is(pg_temp.apply(pg_temp.ev('evt_tap_32', 'checkout.session.completed', 1767225900, jsonb_build_object(
  'id', 'cs_test_tap_old', 'object', 'checkout.session', 'mode', 'subscription',
  'client_reference_id', 'b0000000-0000-4000-8000-000000000001',
  'customer', 'cus_tap_1', 'subscription', 'sub_tap_1'))), 'stale',
  'a checkout older than the subscription state is stale');
select is(pg_temp.apply(
  pg_temp.ev('evt_tap_33', 'checkout.session.completed', 1767225900, jsonb_build_object(
    'id', 'cs_test_tap_old2', 'object', 'checkout.session', 'mode', 'subscription',
    'client_reference_id', 'b0000000-0000-4000-8000-000000000001',
    'customer', 'cus_tap_1', 'subscription', 'sub_tap_1')),
  pg_temp.sub('sub_tap_1', 'cus_tap_1', 'canceled', 'price_tap_plus')), 'ignored',
  'an old checkout with its refetched, ended subscription changes nothing');
select results_eq(
  $$ select stripe_subscription_id, plan, subscription_status from public.orgs
     where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('sub_tap_2', 'tap_basic', 'active') $$,
  'the current subscription stays linked');

-- ---------------------------------------------------------------------------------------------
-- Invoices
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.apply(pg_temp.ev('evt_tap_09', 'invoice.payment_failed', 1767226200, jsonb_build_object(
  'id', 'in_tap_1', 'object', 'invoice', 'customer', 'cus_tap_1', 'attempt_count', 1,
  'parent', jsonb_build_object('type', 'subscription_details',
    'subscription_details', jsonb_build_object('subscription', 'sub_tap_2'))))), 'applied',
  'invoice.payment_failed applies');
select results_eq(
  $$ select subscription_status from public.orgs where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('past_due') $$,
  'a failed payment makes the subscription past_due');
select results_eq(
  $$ select count(*)::int from public.alerts
     where org_id = 'b0000000-0000-4000-8000-000000000001' and kind = 'billing_payment_failed'
       and message like '%in_tap_1%' $$,
  $$ values (1) $$,
  'a failed payment raises one alert for the org');

update public.orgs set monthly_token_budget = 1 where id = 'b0000000-0000-4000-8000-000000000001';
select is(pg_temp.apply(pg_temp.ev('evt_tap_10', 'invoice.paid', 1767226300, jsonb_build_object(
  'id', 'in_tap_2', 'object', 'invoice', 'customer', 'cus_tap_1', 'billing_reason', 'subscription_cycle',
  'subscription', 'sub_tap_2',
  'lines', jsonb_build_object('object', 'list', 'data', jsonb_build_array(jsonb_build_object(
    'id', 'il_tap_1', 'object', 'line_item', 'period', jsonb_build_object('start', 1769904000, 'end', 1772323200))))))),
  'applied', 'invoice.paid (subscription on the invoice, before basil) applies');
select results_eq(
  $$ select subscription_status, monthly_token_budget, token_period_started_at
     from public.orgs where id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('active', 500::bigint, to_timestamp(1769904000)) $$,
  'a paid invoice restarts the token period at the paid period with the plan''s budget');
select is(pg_temp.apply(pg_temp.ev('evt_tap_34', 'invoice.payment_failed', 1767226250, jsonb_build_object(
  'id', 'in_tap_5', 'object', 'invoice', 'customer', 'cus_tap_1', 'attempt_count', 1,
  'subscription', 'sub_tap_2'))), 'stale',
  'a payment failure older than the last invoice event is stale');
select results_eq(
  $$ select o.subscription_status, o.invoice_event_at, (select count(*)::int from public.alerts a
     where a.kind = 'billing_payment_failed' and a.message like '%in_tap_5%')
     from public.orgs o where o.id = 'b0000000-0000-4000-8000-000000000001' $$,
  $$ values ('active', to_timestamp(1767226300), 0) $$,
  'a stale payment failure changes nothing and raises no alert');
select is(pg_temp.apply(pg_temp.ev('evt_tap_11', 'invoice.paid', 1767226400, jsonb_build_object(
  'id', 'in_tap_3', 'object', 'invoice', 'customer', 'cus_tap_1', 'billing_reason', 'manual',
  'parent', null, 'subscription', null))), 'ignored',
  'a paid invoice that bills no subscription changes nothing');

-- ---------------------------------------------------------------------------------------------
-- Checkout, unknown customers, conflicts, other events
-- ---------------------------------------------------------------------------------------------
select is(pg_temp.apply(pg_temp.ev('evt_tap_12', 'checkout.session.completed', 1767226500, jsonb_build_object(
  'id', 'cs_test_tap_1', 'object', 'checkout.session', 'mode', 'subscription',
  'client_reference_id', 'b0000000-0000-4000-8000-000000000003',
  'customer', 'cus_tap_3', 'subscription', 'sub_tap_3', 'status', 'complete', 'payment_status', 'paid'))),
  'applied', 'checkout.session.completed applies to the org in client_reference_id');
select results_eq(
  $$ select stripe_customer_id, stripe_subscription_id, plan from public.orgs
     where id = 'b0000000-0000-4000-8000-000000000003' $$,
  $$ values ('cus_tap_3', 'sub_tap_3', 'free') $$,
  'checkout links the customer and subscription');
select is(pg_temp.apply(
  pg_temp.ev('evt_tap_13', 'checkout.session.completed', 1767226500, jsonb_build_object(
    'id', 'cs_test_tap_2', 'object', 'checkout.session', 'mode', 'subscription',
    'client_reference_id', 'b0000000-0000-4000-8000-000000000003',
    'customer', 'cus_tap_3', 'subscription', 'sub_tap_3')),
  pg_temp.sub('sub_tap_3', 'cus_tap_3', 'active', 'price_tap_plus')), 'applied',
  'checkout with the refetched subscription applies');
select results_eq(
  $$ select plan, subscription_status from public.orgs where id = 'b0000000-0000-4000-8000-000000000003' $$,
  $$ values ('tap_plus', 'active') $$,
  'checkout applies the refetched subscription too');

select is(pg_temp.apply(pg_temp.ev('evt_tap_14', 'checkout.session.completed', 1767226600, jsonb_build_object(
  'id', 'cs_test_tap_3', 'object', 'checkout.session',
  'client_reference_id', 'b0000000-0000-4000-8000-000000000003', 'customer', 'cus_tap_2'))), 'rejected',
  'a customer that belongs to another org is rejected, not retried');
select results_eq(
  $$ select w.status, o.stripe_customer_id from public.webhooks w, public.orgs o
     where w.source = 'stripe' and w.external_id = 'evt_tap_14' and o.id = 'b0000000-0000-4000-8000-000000000003' $$,
  $$ values ('failed', 'cus_tap_3') $$,
  'the rejected event is recorded as failed and changed nothing');
select results_eq(
  $$ select severity from public.alerts where kind = 'billing_event_failed' and message like '%evt_tap_14%' $$,
  $$ values ('critical') $$,
  'a rejected event raises a critical alert');

-- Same second: an invoice does not make the subscription's own events stale; its lifecycle does.
select is(pg_temp.apply(pg_temp.ev('evt_tap_18', 'invoice.paid', 1767227000, jsonb_build_object(
  'id', 'in_tap_4', 'object', 'invoice', 'customer', 'cus_tap_3', 'subscription', 'sub_tap_3'))), 'applied',
  'invoice.paid applies');
select is(pg_temp.apply(pg_temp.ev('evt_tap_19', 'customer.subscription.created', 1767227000,
  pg_temp.sub('sub_tap_3', 'cus_tap_3', 'active', 'price_tap_basic'))), 'applied',
  'customer.subscription.created of the same second still applies after the invoice');
select is(pg_temp.apply(pg_temp.ev('evt_tap_20', 'customer.subscription.updated', 1767227000,
  pg_temp.sub('sub_tap_3', 'cus_tap_3', 'past_due', 'price_tap_basic'))), 'applied',
  'customer.subscription.updated of the same second applies after its creation');
select is(pg_temp.apply(pg_temp.ev('evt_tap_21', 'customer.subscription.created', 1767227000,
  pg_temp.sub('sub_tap_3', 'cus_tap_3', 'incomplete', 'price_tap_basic'))), 'stale',
  'customer.subscription.created of the same second after its update is stale');

-- A customer no org has yet: kept, then applied in order by the checkout that links it.
select is(pg_temp.apply(pg_temp.ev('evt_tap_15', 'customer.subscription.updated', 1767226700,
  pg_temp.sub('sub_tap_5', 'cus_tap_late', 'active', 'price_tap_plus'))), 'pending',
  'an event for a customer no org has yet is kept');
select is(pg_temp.apply(pg_temp.ev('evt_tap_35', 'customer.subscription.created', 1767226700,
  pg_temp.sub('sub_tap_5', 'cus_tap_late', 'incomplete', 'price_tap_plus'))), 'pending',
  'its creation of the same second, delivered later, is kept too');
select results_eq(
  $$ select w.status, w.org_id, (select count(*)::int from public.alerts a where a.message like '%evt_tap_15%')
     from public.webhooks w where w.source = 'stripe' and w.external_id = 'evt_tap_15' $$,
  $$ values ('received', null::uuid, 0) $$,
  'a kept event is recorded as received, without org or alert');
select is(pg_temp.apply(pg_temp.ev('evt_tap_36', 'checkout.session.completed', 1767226701, jsonb_build_object(
  'id', 'cs_test_tap_late', 'object', 'checkout.session', 'mode', 'subscription',
  'client_reference_id', 'b0000000-0000-4000-8000-000000000004',
  'customer', 'cus_tap_late', 'subscription', 'sub_tap_5'))), 'applied',
  'the checkout that links the customer applies');
select results_eq(
  $$ select plan, subscription_status, stripe_customer_id, subscription_event_at, subscription_event_type
     from public.orgs where id = 'b0000000-0000-4000-8000-000000000004' $$,
  $$ values ('tap_plus', 'active', 'cus_tap_late', to_timestamp(1767226700), 'customer.subscription.updated') $$,
  'the kept events applied in their lifecycle order');
select results_eq(
  $$ select external_id, status, org_id from public.webhooks
     where source = 'stripe' and external_id in ('evt_tap_15', 'evt_tap_35') order by external_id $$,
  $$ values ('evt_tap_15', 'processed', 'b0000000-0000-4000-8000-000000000004'::uuid),
            ('evt_tap_35', 'processed', 'b0000000-0000-4000-8000-000000000004'::uuid) $$,
  'the kept events are recorded as applied, with their org');
select is_empty(
  $$ select 1 from private.stripe_pending_events where stripe_customer_id = 'cus_tap_late' $$,
  'applied events are no longer kept');

select is(pg_temp.apply(pg_temp.ev('evt_tap_37', 'invoice.paid', 1767226702, jsonb_build_object(
  'id', 'in_tap_6', 'object', 'invoice', 'customer', 'cus_tap_gone', 'subscription', 'sub_tap_6'))), 'pending',
  'an invoice for a customer no org has yet is kept');
delete from public.webhooks where source = 'stripe' and external_id = 'evt_tap_37';
select is_empty(
  $$ select 1 from private.stripe_pending_events where stripe_customer_id = 'cus_tap_gone' $$,
  'a kept event goes with its webhooks row (retention)');

select is(pg_temp.apply(pg_temp.ev('evt_tap_38', 'checkout.session.completed', 1767226703, jsonb_build_object(
  'id', 'cs_test_tap_nowhere', 'object', 'checkout.session',
  'client_reference_id', 'b0000000-0000-4000-8000-0000000000ff', 'customer', 'cus_tap_nobody'))),
  'unknown_customer', 'a checkout for an org that does not exist is reported');
select results_eq(
  $$ select a.org_id, w.status, w.error from public.alerts a, public.webhooks w
     where a.kind = 'billing_unknown_customer' and a.message like '%evt_tap_38%'
       and w.source = 'stripe' and w.external_id = 'evt_tap_38' $$,
  $$ values (null::uuid, 'ignored', 'unknown customer') $$,
  'an unknown org raises an alert without org and is recorded');

select is(pg_temp.apply(pg_temp.ev('evt_tap_16', 'customer.subscription.updated', 1767226800,
  pg_temp.sub('sub_tap_4', 'cus_tap_2', 'active', 'price_nobody_sells'))), 'applied',
  'a subscription with an unknown price still applies');
select results_eq(
  $$ select o.plan, o.subscription_status, (select count(*)::int from public.alerts a
     where a.org_id = o.id and a.kind = 'billing_unknown_price')
     from public.orgs o where o.id = 'b0000000-0000-4000-8000-000000000002' $$,
  $$ values ('free', 'active', 1) $$,
  'an unknown price keeps the plan and raises an alert');

select is(pg_temp.apply(pg_temp.ev('evt_tap_17', 'customer.created', 1767226900,
  jsonb_build_object('id', 'cus_tap_5', 'object', 'customer'))), 'ignored',
  'an event type this service does not use is ignored');
select results_eq(
  $$ select status, error, org_id from public.webhooks where source = 'stripe' and external_id = 'evt_tap_17' $$,
  $$ values ('ignored', 'unhandled event type', null::uuid) $$,
  'an unused event type is recorded');

select throws_ok(
  $$ select public.apply_stripe_event('{"id": "evt_tap_bad", "type": "invoice.paid"}') $$,
  '22023', null, 'an event without created and data.object is refused');

select * from finish();
rollback;
