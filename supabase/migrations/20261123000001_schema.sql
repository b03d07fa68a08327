-- Schema of the WhatsApp assistant: the tables of tenancy, messaging, AI usage, tools and
-- operations with their RLS policies and grants, the shared helpers and the operator views.
-- Each later file holds one area's own tables, functions and views, in this order (a table is
-- created whole in one file: docs/database.md):
-- 20261123000002_billing, _whatsapp (00003), _cron (00004), _admin (00005), _assistant (00006).
--
-- Access model (docs/architecture.md and docs/database.md):
--   * every table has RLS enabled; every policy names its role (`to authenticated`);
--   * members read their org's rows; owners/admins change settings and act; viewers only read;
--   * anon has no policy anywhere, so it sees nothing;
--   * service_role (bypassrls) does all system writes (webhook, cron, billing);
--   * grants decide which commands and columns users may use at all (e.g. only orgs.name is
--     updatable by users); RLS decides which rows. Writes that are audited or validated
--     (membership and roles, settings, conversation mode, alerts) have no grant at all: users
--     make them only through the `admin_*` security definer functions (20261123000005_admin);
--     audit rows are written by those functions, never by users directly;
--   * every column a user can write, directly or through a function, is constrained here
--     (finite dates in a fixed range, bounded text, checked enums, numbers in range): what the
--     admin API validates, the database enforces too. docs/database.md lists what users may
--     still write directly.
-- Runs unchanged on hosted Supabase: no roles, no superuser-only statements.

-- =============================================================================================
-- Shared: private schema, membership helpers, updated_at trigger
-- =============================================================================================

-- Not in PostgREST's exposed schemas: helpers used by policies and triggers.
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

-- Helpers are plpgsql so that they may be declared before public.org_members exists.
-- security definer: they read org_members without going through its own policies. The two
-- checks of one org read the caller's orgs through private.my_org_ids (below).
create or replace function private.is_org_member(org uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return org in (select private.my_org_ids());
end;
$$;

create or replace function private.has_org_role(org uuid, roles text[])
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return org in (select private.my_org_ids(roles));
end;
$$;

-- The caller's orgs (with one of p_roles; any role when null), for policies: a policy reads
-- them once per statement as an initPlan, `org_id = any (array(select private.my_org_ids()))`,
-- never a call per row (Supabase's RLS performance guidance; supabase/tests/rls_perf.sql).
create or replace function private.my_org_ids(p_roles text[] default null)
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return query
    select m.org_id
    from public.org_members m
    where m.user_id = auth.uid()
      and (p_roles is null or m.role = any (p_roles));
end;
$$;

comment on function private.is_org_member(uuid) is 'True when auth.uid() is a member of the org (any role).';
comment on function private.has_org_role(uuid, text[]) is 'True when auth.uid() is a member of the org with one of the given roles.';
comment on function private.my_org_ids(text[]) is 'The orgs of auth.uid() (with one of the roles, any when null): for policies, as an initPlan.';

revoke all on function private.is_org_member(uuid) from public, anon;
revoke all on function private.has_org_role(uuid, text[]) from public, anon;
revoke all on function private.my_org_ids(text[]) from public, anon;
grant execute on function private.is_org_member(uuid) to authenticated, service_role;
grant execute on function private.has_org_role(uuid, text[]) to authenticated, service_role;
grant execute on function private.my_org_ids(text[]) to authenticated, service_role;

-- Shared trigger function for every updated_at column.
create or replace function public.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

comment on function public.set_updated_at() is 'BEFORE UPDATE trigger: stamps updated_at with now().';
revoke all on function public.set_updated_at() from public, anon, authenticated;

-- True when every element of p_values is non-null and matches p_pattern (an empty array: true).
-- Immutable, for CHECK constraints on text[] columns.
create or replace function private.all_match(p_values text[], p_pattern text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(bool_and(v is not null and v ~ p_pattern), true) from unnest(p_values) v;
$$;

comment on function private.all_match(text[], text) is 'CHECK helper: every element is non-null and matches the pattern.';
revoke all on function private.all_match(text[], text) from public, anon;
grant execute on function private.all_match(text[], text) to authenticated, service_role;

-- =============================================================================================
-- plans: catalogue of billing plans (reference data)
-- =============================================================================================

create table public.plans (
  name                 text primary key check (name ~ '^[a-z0-9][a-z0-9_-]*$'),
  stripe_price_id      text unique,
  monthly_token_budget bigint not null check (monthly_token_budget >= 0),
  limits               jsonb not null default '{}'::jsonb check (jsonb_typeof(limits) = 'object'),
  -- The AI models an org on this plan may choose (assistant_settings.model and fallback_model);
  -- each must have a price in lib/src/assistant/models.rs (a test checks every plan's list).
  models               text[] not null default array['gpt-6-luna', 'claude-haiku-5-5']
                         check (cardinality(models) between 1 and 50
                                and private.all_match(models, '^[A-Za-z0-9._:/-]{1,100}$')),
  created_at           timestamptz not null default now()
);

comment on table public.plans is 'Billing plans: Stripe price, monthly token budget, limits and the AI models offered; written by service_role only.';
comment on column public.plans.models is 'AI models an org on this plan may use as model or fallback_model (each priced in lib/src/assistant/models.rs).';

alter table public.plans enable row level security;

create policy plans_select_signed_in on public.plans
  for select to authenticated
  using ((select auth.uid()) is not null);

revoke insert, update, delete, truncate, references, trigger on public.plans from anon, authenticated;

-- orgs.plan defaults to 'free', so that plan must exist on every database (hosted included).
insert into public.plans (name, monthly_token_budget, limits, models)
values ('free', 100000, '{"messages_per_minute": 10, "contact_daily_tokens": 20000}',
        array['gpt-6-luna', 'gpt-4o-mini', 'gpt-4.1-mini', 'claude-haiku-5-5', 'claude-haiku-4-5'])
on conflict (name) do nothing;

-- =============================================================================================
-- orgs: tenants
-- =============================================================================================

create table public.orgs (
  id                     uuid primary key default gen_random_uuid(),
  name                   text not null check (char_length(name) between 1 and 200 and btrim(name) <> ''),
  plan                   text not null default 'free' references public.plans (name),
  subscription_status    text not null default 'none' check (subscription_status in (
                           'none', 'trialing', 'active', 'past_due', 'canceled', 'unpaid',
                           'incomplete', 'incomplete_expired', 'paused')),
  stripe_customer_id     text unique,
  stripe_subscription_id text unique,
  current_period_end     timestamptz,
  cancel_at_period_end   boolean not null default false,
  monthly_token_budget   bigint not null default 100000 check (monthly_token_budget >= 0),
  billing_event_at       timestamptz,
  created_at             timestamptz not null default now(),
  updated_at             timestamptz not null default now(),
  -- Billing (20261123000002_billing.sql): the token period and the Stripe events' clocks.
  token_period_started_at timestamptz not null default now(),
  subscription_event_type text,
  subscription_event_at   timestamptz,
  invoice_event_at        timestamptz,
  subscription_fetched_at timestamptz
);

comment on table public.orgs is 'Tenants: name, plan and Stripe billing state; users may only rename their org.';
comment on column public.orgs.token_period_started_at is
  'Start of the current monthly token budget period (usage counts from here); invoice.paid moves it to the start of the paid period.';
comment on column public.orgs.billing_event_at is
  'Creation time of the newest applied Stripe event of any type (for operators; events are ordered by subscription_event_at and invoice_event_at).';
comment on column public.orgs.subscription_event_at is
  'Creation time of the Stripe event whose subscription state the org holds; older customer.subscription.* and checkout events are stale.';
comment on column public.orgs.invoice_event_at is
  'Creation time of the last applied Stripe invoice.* event; older invoice events are stale.';
comment on column public.orgs.subscription_fetched_at is
  'When the refetched subscription the org holds was asked for (this service''s clock); an older snapshot is stale.';
comment on column public.orgs.subscription_event_type is
  'Type of the customer.subscription.* event at subscription_event_at: orders the subscription''s events of one second.';

create index orgs_plan_idx on public.orgs (plan);

create trigger orgs_set_updated_at before update on public.orgs
  for each row execute function public.set_updated_at();

alter table public.orgs enable row level security;

create policy orgs_select_member on public.orgs
  for select to authenticated
  using (id = any (array(select private.my_org_ids())));

create policy orgs_update_admin on public.orgs
  for update to authenticated
  using (id = any (array(select private.my_org_ids(array['owner', 'admin']))))
  with check (id = any (array(select private.my_org_ids(array['owner', 'admin']))));

-- Billing columns are service_role only: users may update the name column and nothing else.
revoke insert, update, delete, truncate, references, trigger on public.orgs from anon, authenticated;
grant update (name) on public.orgs to authenticated;

-- =============================================================================================
-- org_members: who belongs to which org, with which role
-- =============================================================================================

create table public.org_members (
  org_id     uuid not null references public.orgs (id) on delete cascade,
  user_id    uuid not null references auth.users (id) on delete cascade,
  role       text not null check (role in ('owner', 'admin', 'viewer')),
  created_at timestamptz not null default now(),
  primary key (org_id, user_id)
);

comment on table public.org_members is 'Membership of auth users in orgs with role owner, admin or viewer.';

create index org_members_user_id_idx on public.org_members (user_id);

alter table public.org_members enable row level security;

create policy org_members_select_member on public.org_members
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

-- Membership is audited: owners add, re-role and remove members only through admin_add_member,
-- admin_set_member_role and admin_remove_member (20261123000005_admin.sql); no direct writes.
revoke insert, update, delete, truncate, references, trigger on public.org_members from anon, authenticated;

-- Users cannot leave an org without an owner (service_role and cascades are not restricted).
-- Removing or demoting an owner first locks the org's row (no key update: inserts referencing
-- the org are not blocked), so two owners removing each other at once serialize: the second
-- counts the owners after the first has committed, under READ COMMITTED too.
create or replace function private.keep_an_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if coalesce(auth.role(), '') = 'authenticated'
     and old.role = 'owner'
     and (tg_op = 'DELETE' or new.role <> 'owner') then
    perform 1 from public.orgs o where o.id = old.org_id for no key update;
    if not exists (
      select 1 from public.org_members m
      where m.org_id = old.org_id and m.role = 'owner' and m.user_id <> old.user_id
    ) then
      raise exception 'an org must keep at least one owner'
        using errcode = 'check_violation';
    end if;
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  return new;
end;
$$;

revoke all on function private.keep_an_owner() from public, anon, authenticated;

create trigger org_members_keep_an_owner before update or delete on public.org_members
  for each row execute function private.keep_an_owner();

-- =============================================================================================
-- whatsapp_numbers: WhatsApp Business numbers connected to an org
-- =============================================================================================

create table public.whatsapp_numbers (
  id                   uuid primary key default gen_random_uuid(),
  org_id               uuid not null references public.orgs (id) on delete cascade,
  phone_number_id      text not null unique check (phone_number_id <> ''),
  display_phone_number text not null check (display_phone_number ~ '^[0-9+() .-]{1,32}$'),
  waba_id              text check (waba_id ~ '^[0-9]{1,32}$'),
  -- Health, from Meta's account webhooks (private.whatsapp_apply_account_events): the last
  -- phone_number_quality_update event (FLAGGED, DOWNGRADE, UPGRADE...) and messaging limit
  -- (TIER_1K...), the WABA's last account_update event and its restrictions
  -- ([{restriction_type, expiration}]), and when any of them last changed.
  quality_event        text check (quality_event ~ '^[A-Z0-9_]{1,64}$'),
  messaging_limit      text check (messaging_limit ~ '^[A-Z0-9_]{1,64}$'),
  account_event        text check (account_event ~ '^[A-Z0-9_]{1,64}$'),
  restrictions         jsonb not null default '[]'
                         check (jsonb_typeof(restrictions) = 'array' and pg_column_size(restrictions) <= 8192),
  health_updated_at    timestamptz,
  created_at           timestamptz not null default now()
);

comment on table public.whatsapp_numbers is 'WhatsApp Cloud API numbers; inbound webhooks are routed to an org by phone_number_id.';

create index whatsapp_numbers_org_id_idx on public.whatsapp_numbers (org_id);
-- Account-level webhooks name the WABA (entry.id), not a number.
create index whatsapp_numbers_waba_id_idx on public.whatsapp_numbers (waba_id) where waba_id is not null;

alter table public.whatsapp_numbers enable row level security;

create policy whatsapp_numbers_select_member on public.whatsapp_numbers
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

create policy whatsapp_numbers_update_admin on public.whatsapp_numbers
  for update to authenticated
  using (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))))
  with check (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))));

create policy whatsapp_numbers_delete_admin on public.whatsapp_numbers
  for delete to authenticated
  using (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))));

-- Numbers are connected by onboarding (the service role), not by org admins. Inbound
-- deliveries are routed to the org whose number has the delivery's phone_number_id, and
-- replies go out with the platform's one access token: an admin who could write a
-- phone_number_id could claim another business's number before it is connected, receive its
-- customers' messages and answer from it. So users may only edit a number's display form (and
-- disconnect it); connecting one (checking with the Graph API that it belongs to the org's
-- WABA) is a service-role step.
revoke insert, update, delete, truncate, references, trigger on public.whatsapp_numbers from anon, authenticated;
grant update (display_phone_number) on public.whatsapp_numbers to authenticated;
grant delete on public.whatsapp_numbers to authenticated;

-- =============================================================================================
-- assistant_settings: per-org assistant configuration
-- =============================================================================================

create table public.assistant_settings (
  org_id                  uuid primary key references public.orgs (id) on delete cascade,
  -- These CHECK constraints are the settings' limits: the admin API answers 400 naming the
  -- column, openapi.json (SettingsUpdate) states them, tests/api/admin/limits.rs keeps the two equal.
  system_prompt           text not null default
    'You are a helpful assistant on WhatsApp. Answer briefly and clearly, in the user''s language. '
    'Use your tools to manage reminders, expenses and calendar events.'
    check (char_length(system_prompt) between 1 and 8000 and system_prompt ~ '[^[:space:]]'),
  model                   text not null default 'gpt-6-luna'
                            check (model ~ '^[A-Za-z0-9._:/-]{1,100}$'),
  fallback_model          text not null default 'claude-haiku-5-5'
                            check (fallback_model ~ '^[A-Za-z0-9._:/-]{1,100}$'),
  enabled_tools           text[] not null default array[
                            'create_reminder', 'list_reminders', 'cancel_reminder', 'log_expense',
                            'expense_summary', 'create_calendar_event', 'list_calendar_events']
                            check (cardinality(enabled_tools) <= 50
                                   and private.all_match(enabled_tools, '^[a-z0-9_]{1,64}$')),
  language                text not null default 'en' check (language ~ '^[A-Za-z0-9_-]{1,35}$'),
  timezone                text not null default 'UTC' check (timezone ~ '^[A-Za-z0-9/_+-]{1,64}$'),
  reply_template          text check (char_length(reply_template) between 1 and 512 and reply_template ~ '^[a-z0-9_]+$'),
  reminder_template       text check (char_length(reminder_template) between 1 and 512 and reminder_template ~ '^[a-z0-9_]+$'),
  template_language       text not null default 'en_US' check (template_language ~ '^[A-Za-z0-9_]{1,15}$'),
  rate_limit_per_minute   int not null default 10 check (rate_limit_per_minute between 1 and 10000),
  contact_daily_token_cap bigint not null default 20000
                            check (contact_daily_token_cap between 0 and 1000000000),
  -- The answer to a contact's first open of the chat (request_welcome); null: the built-in
  -- welcome in the contact's language.
  welcome_message         text check (char_length(welcome_message) between 1 and 1024
                                      and welcome_message ~ '[^[:space:]]'),
  -- After the owner answers from the WhatsApp Business app, the conversation stays in human
  -- mode until they have been idle this long.
  staff_idle_minutes      int not null default 30 check (staff_idle_minutes between 1 and 10080),
  -- Group messages are answered in the group (never privately); off: stored, never answered.
  answer_groups           boolean not null default false,
  -- Messages older than this many days are deleted by the retention cron; null keeps them.
  message_retention_days  int check (message_retention_days between 1 and 36500),
  -- The monitor (/api/cron/monitor) opens an ai_cost alert once the budget period's AI cost is over it.
  monthly_cost_budget_usd numeric(12, 2) not null default 100
                            check (monthly_cost_budget_usd between 0 and 1000000),
  updated_at              timestamptz not null default now()
);

comment on table public.assistant_settings is 'Per-org assistant configuration: prompt, models, tools, language, time zone, templates, limits.';
comment on column public.assistant_settings.reply_template is 'Approved template name used to reply outside the 24 h customer-service window.';

create trigger assistant_settings_set_updated_at before update on public.assistant_settings
  for each row execute function public.set_updated_at();

alter table public.assistant_settings enable row level security;

create policy assistant_settings_select_member on public.assistant_settings
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

-- Settings are validated and audited: users change them only through admin_update_settings
-- (20261123000005_admin.sql); no direct writes.
revoke insert, update, delete, truncate, references, trigger on public.assistant_settings from anon, authenticated;

-- The models are the org's plan's to offer (plans.models): any other is refused, for every
-- writer (the platform's AI keys pay for them, and an unpriced model would be recorded as
-- costing 0). Checked when a model is set, so that a plan change does not lock other edits.
create or replace function private.check_settings_models()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_plan text;
  v_models text[];
begin
  if tg_op = 'UPDATE' and new.model is not distinct from old.model
     and new.fallback_model is not distinct from old.fallback_model then
    return new;
  end if;
  select o.plan, p.models into v_plan, v_models
  from public.orgs o join public.plans p on p.name = o.plan
  where o.id = new.org_id;
  if v_models is null then
    raise exception 'the org has no plan' using errcode = 'invalid_parameter_value';
  end if;
  if (tg_op = 'INSERT' or new.model is distinct from old.model) and not new.model = any (v_models) then
    raise exception 'model: % is not offered on the % plan (offered: %)',
      new.model, v_plan, array_to_string(v_models, ', ')
      using errcode = 'invalid_parameter_value';
  end if;
  if (tg_op = 'INSERT' or new.fallback_model is distinct from old.fallback_model)
     and not new.fallback_model = any (v_models) then
    raise exception 'fallback_model: % is not offered on the % plan (offered: %)',
      new.fallback_model, v_plan, array_to_string(v_models, ', ')
      using errcode = 'invalid_parameter_value';
  end if;
  return new;
end;
$$;

comment on function private.check_settings_models() is
  'BEFORE INSERT/UPDATE trigger: model and fallback_model must be offered by the org''s plan (22023).';
revoke all on function private.check_settings_models() from public, anon, authenticated;

create trigger assistant_settings_check_models before insert or update on public.assistant_settings
  for each row execute function private.check_settings_models();

-- The template language of an org's settings, or WhatsApp's default when the org has no
-- settings row (a left join): written once. Inlinable like private.window_open.
create function private.template_language(p_template_language text)
returns text
language sql immutable parallel safe
as $$ select coalesce(p_template_language, 'en_US') $$;

-- Pure: every API role may run it (a view it is inlined into is still guarded by its RLS).
revoke execute on function private.template_language(text) from public;
grant execute on function private.template_language(text) to anon, authenticated, service_role;

-- Whether a staff text fits one WhatsApp text message (4096 characters, graph.rs
-- MAX_TEXT_CHARS): admin_begin_staff_message refuses a longer one, and the outcome resolver
-- fails one that got past it. Written once; inlinable like private.window_open.
create function private.staff_text_fits(p_text text)
returns boolean
language sql immutable parallel safe
as $$ select char_length(p_text) <= 4096 $$;

revoke execute on function private.staff_text_fits(text) from public;
grant execute on function private.staff_text_fits(text) to service_role;

-- =============================================================================================
-- contacts: people who chat with an org's assistant
-- =============================================================================================

create table public.contacts (
  id           uuid primary key default gen_random_uuid(),
  org_id       uuid not null references public.orgs (id) on delete cascade,
  -- A person is known by a phone number (wa_id), a business-scoped user id (user_id, BSUID),
  -- or both: a user with a WhatsApp username may withhold the number (whatsapp_ingest finds a
  -- contact by either, and merges two contacts that turn out to be one person).
  wa_id          text check (wa_id ~ '^[0-9]{1,32}$'),
  user_id        text check (user_id ~ '^[A-Z]{2}\.[A-Za-z0-9.]{1,150}$'),
  parent_user_id text check (parent_user_id ~ '^[A-Z]{2}\.[A-Za-z0-9.]{1,150}$'),
  username       text check (char_length(username) between 1 and 64),
  name         text,
  locale       text check (locale ~ '^[A-Za-z0-9_-]{1,35}$'),
  timezone     text check (timezone ~ '^[A-Za-z0-9/_+-]{1,64}$'),
  opted_out    boolean not null default false,
  opted_out_at timestamptz check (opted_out_at between '2000-01-01 00:00:00+00' and '2100-01-01 00:00:00+00'),
  -- Meta's user_preferences webhook: the contact stopped marketing messages (null: resumed or
  -- never stopped). Service replies are still sent; only marketing templates would stop.
  marketing_stopped_at timestamptz check (marketing_stopped_at between '2000-01-01 00:00:00+00' and '2100-01-01 00:00:00+00'),
  erased_at    timestamptz,  -- admin_erase_contact: only the opt-out is left
  created_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now(),
  check (wa_id is not null or user_id is not null),
  unique (org_id, wa_id),
  unique (org_id, user_id)
);

comment on table public.contacts is 'WhatsApp users (phone number wa_id and/or business-scoped user_id) talking to an org, with locale and opt-out state.';

create trigger contacts_set_updated_at before update on public.contacts
  for each row execute function public.set_updated_at();

alter table public.contacts enable row level security;

create policy contacts_select_member on public.contacts
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

create policy contacts_update_admin on public.contacts
  for update to authenticated
  using (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))))
  with check (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))));

-- Staff may correct a contact's locale and time zone (the assistant's language, reminder times).
-- The name is the contact's WhatsApp profile (written by ingest). The opt-out is the contact's
-- own: STOP and START through WhatsApp set it (the service role); no grant or function lets
-- staff change it, so an opt-out cannot be undone by anyone but the contact.
revoke insert, update, delete, truncate, references, trigger on public.contacts from anon, authenticated;
grant update (locale, timezone) on public.contacts to authenticated;

-- =============================================================================================
-- conversations: one thread per (WhatsApp number, contact)
-- =============================================================================================

create table public.conversations (
  id                 uuid primary key default gen_random_uuid(),
  org_id             uuid not null references public.orgs (id) on delete cascade,
  contact_id         uuid not null references public.contacts (id) on delete cascade,
  whatsapp_number_id uuid not null references public.whatsapp_numbers (id),
  mode               text not null default 'bot' check (mode in ('bot', 'human')),
  last_inbound_at    timestamptz,
  last_message_at    timestamptz,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  -- One turn at a time per conversation: the conversation's row is the turn's lock, and
  -- turn_token / turn_lease_until its lease (whatsapp_claim_message).
  turn_token         uuid,
  turn_lease_until   timestamptz,
  -- Human mode because the owner answered from the WhatsApp Business app (an echo): the
  -- conversation returns to bot mode at this time (staff idle for staff_idle_minutes). Null
  -- in a handoff made through the admin API (it lasts until handed back).
  human_until        timestamptz,
  -- A WhatsApp group's messages from this contact (null: the private conversation). Stored,
  -- never answered; they open no 24 h window.
  group_id           text check (group_id ~ '^[A-Za-z0-9@._-]{1,128}$'),
  unique nulls not distinct (whatsapp_number_id, contact_id, group_id)
);

comment on table public.conversations is 'A contact''s thread with one WhatsApp number: bot or human mode, last inbound time (24 h window).';
comment on column public.conversations.turn_token is
  'The token of the turn being answered (null when none): only its holder may begin, finish or fail it.';
comment on column public.conversations.turn_lease_until is
  'When the running turn''s lease ends; after that another worker may claim the conversation.';

-- The admin inbox's keyset order (conversation_summaries.activity_at desc, id desc).
create index conversations_org_id_activity_idx
  on public.conversations (org_id, coalesce(last_message_at, created_at) desc, id desc);
create index conversations_contact_id_idx on public.conversations (contact_id);
-- system_health_summary's last inbound message per org: one index probe, not a scan.
create index conversations_org_id_last_inbound_at_idx on public.conversations (org_id, last_inbound_at);

create trigger conversations_set_updated_at before update on public.conversations
  for each row execute function public.set_updated_at();

alter table public.conversations enable row level security;

create policy conversations_select_member on public.conversations
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

-- The handoff (mode) is audited: users change it only through admin_set_conversation_mode.
revoke insert, update, delete, truncate, references, trigger on public.conversations from anon, authenticated;

-- WhatsApp's 24 h customer-service window, written once: when it ends after the contact's last
-- inbound message, and whether it is open now (false when the contact never wrote). Used by
-- the views below and every function that decides between a freeform reply and a template.
-- `language sql`, stable, no `set` clause, not security definer: the planner inlines them
-- into the calling query (no per-row function call), so `set search_path` is deliberately
-- absent; they name nothing but pg_catalog's operators and now().
-- Stable, not immutable: timestamptz + interval is a stable operator, and an immutable SQL
-- function calling it would not be inlined.
create function private.window_expires_at(p_last_inbound_at timestamptz)
returns timestamptz
language sql stable parallel safe
as $$ select p_last_inbound_at + interval '24 hours' $$;

create function private.window_open(p_last_inbound_at timestamptz)
returns boolean
language sql stable parallel safe
as $$ select coalesce(private.window_expires_at(p_last_inbound_at) > now(), false) $$;

-- Pure: every API role may run them (the views' own grants and RLS decide what is read).
revoke execute on function private.window_expires_at(timestamptz), private.window_open(timestamptz)
  from public;
grant execute on function private.window_expires_at(timestamptz), private.window_open(timestamptz)
  to anon, authenticated, service_role;

-- messaging_windows: WhatsApp's 24 h customer-service window per conversation.
create view public.messaging_windows
with (security_invoker = true)
as
select
  c.id                                                        as conversation_id,
  c.org_id,
  c.contact_id,
  c.last_inbound_at,
  private.window_expires_at(c.last_inbound_at)                as expires_at,
  private.window_open(c.last_inbound_at)                      as is_open,
  c.whatsapp_number_id
from public.conversations c;

comment on view public.messaging_windows is 'Per conversation: when the 24 h window expires and whether freeform replies are allowed now.';

revoke insert, update, delete, truncate, references, trigger on public.messaging_windows from anon, authenticated, service_role;

-- =============================================================================================
-- messages: every inbound and outbound WhatsApp message
-- =============================================================================================

create table public.messages (
  id              uuid primary key default gen_random_uuid(),
  org_id          uuid not null references public.orgs (id) on delete cascade,
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  contact_id      uuid not null references public.contacts (id) on delete cascade,
  direction       text not null check (direction in ('inbound', 'outbound')),
  wa_message_id   text unique,
  type            text not null,
  -- Inbound bodies are cut at 8192 (payload.rs MAX_BODY_CHARS), staff texts at 4096; an
  -- assistant answer (split into 4096-character parts when sent) stays far below 65536.
  body            text check (char_length(body) <= 65536),
  payload         jsonb not null default '{}'::jsonb,
  status          text not null check (status in (
                    'received', 'processing', 'processed', 'sending', 'sent', 'delivered', 'read',
                    'failed', 'simulated')),
  error           jsonb,
  attempts        int not null default 0 check (attempts >= 0),
  lease_until     timestamptz,
  status_at       timestamptz,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  -- Processing (20261123000003_whatsapp.sql) and reminders (20261123000004_cron.sql).
  reply_to        uuid references public.messages (id) on delete set null,
  discarded_at    timestamptz,
  claim_token     uuid,
  rate_hits       int check (rate_hits >= 0),
  sending_since   timestamptz,
  -- references public.reminders, created below (constraint messages_reminder_id_fkey there).
  reminder_id     uuid,
  -- The contact's latest reaction (an emoji) to this message; null when none or removed.
  reaction        text check (char_length(reaction) between 1 and 32)
);

comment on table public.messages is 'Inbound and outbound WhatsApp messages, deduplicated on wa_message_id, with processing status and lease.';
comment on column public.messages.reply_to is
  'For an outbound reply: the inbound message it answers. At most one reply per message, so a retry never sends twice.';
comment on column public.messages.discarded_at is
  'For an inbound message: when it was given up after its last attempt (its dead letter entry is discarded); never claimed again.';
comment on column public.messages.claim_token is
  'For an inbound message: the token of the turn that claimed it last.';
comment on column public.messages.rate_hits is
  'For an inbound message: its number in the contact''s rate-limit window, counted once when stored.';
comment on column public.messages.sending_since is
  'For an outbound message: when its current send began (status became sending, or the outcome resolver sent it again).';
comment on column public.messages.reminder_id is
  'For an outbound reminder: the reminder it delivers (one message per occurrence sent).';

create index messages_conversation_id_created_at_idx on public.messages (conversation_id, created_at desc, id desc);
create index messages_org_id_created_at_idx on public.messages (org_id, created_at desc);
create index messages_contact_id_created_at_idx on public.messages (contact_id, created_at desc);
create index messages_pending_created_at_idx on public.messages (created_at)
  where status in ('received', 'processing');
-- system_health_summary's pending and failed counts of one org: its pending or failed rows only.
create index messages_org_id_pending_idx on public.messages (org_id)
  where status in ('received', 'processing');
create index messages_org_id_failed_created_at_idx on public.messages (org_id, created_at)
  where status = 'failed';

create trigger messages_set_updated_at before update on public.messages
  for each row execute function public.set_updated_at();

alter table public.messages enable row level security;

create policy messages_select_member on public.messages
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.messages from anon, authenticated;

-- =============================================================================================
-- webhooks: every received webhook delivery (WhatsApp, Stripe), deduplicated
-- =============================================================================================

create table public.webhooks (
  id           uuid primary key default gen_random_uuid(),
  source       text not null check (source in ('whatsapp', 'stripe')),
  external_id  text not null,
  org_id       uuid references public.orgs (id) on delete set null,
  event_type   text,
  status       text not null default 'received' check (status in ('received', 'processed', 'ignored', 'failed')),
  attempts     int not null default 1 check (attempts >= 0),
  error        text,
  received_at  timestamptz not null default now(),
  processed_at timestamptz,
  -- From the webhook route's start to the delivery's row (WhatsApp; the monitor's figure).
  latency_ms   int check (latency_ms >= 0),
  unique (source, external_id)
);

comment on table public.webhooks is 'Webhook deliveries from WhatsApp and Stripe, unique per (source, external_id) for idempotency.';

create index webhooks_received_at_idx on public.webhooks (received_at);
create index webhooks_org_id_received_at_idx on public.webhooks (org_id, received_at)
  where org_id is not null;

alter table public.webhooks enable row level security;

create policy webhooks_select_member on public.webhooks
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.webhooks from anon, authenticated;

-- =============================================================================================
-- ai_requests: one row per LLM call, for cost and latency accounting
-- =============================================================================================

create table public.ai_requests (
  id              uuid primary key default gen_random_uuid(),
  org_id          uuid not null references public.orgs (id) on delete cascade,
  contact_id      uuid references public.contacts (id) on delete set null,
  conversation_id uuid,  -- soft reference: usage records outlive their conversation
  message_id      uuid,  -- soft reference: usage records outlive their message
  provider        text not null,
  model           text not null,
  tokens_in       int not null default 0 check (tokens_in >= 0),
  tokens_out      int not null default 0 check (tokens_out >= 0),
  tokens_cached   int not null default 0 check (tokens_cached >= 0),
  cost_usd        numeric(12, 6) not null default 0 check (cost_usd >= 0),
  latency_ms      int check (latency_ms >= 0),
  status          text not null check (status in ('success', 'error', 'timeout')),
  error           text,
  created_at      timestamptz not null default now()
);

comment on table public.ai_requests is 'LLM calls: provider, model, tokens in/out/cached, cost in USD, latency and outcome.';

create index ai_requests_org_id_created_at_idx on public.ai_requests (org_id, created_at);
create index ai_requests_contact_id_created_at_idx on public.ai_requests (contact_id, created_at);
create index ai_requests_created_at_idx on public.ai_requests (created_at);  -- retention

alter table public.ai_requests enable row level security;

create policy ai_requests_select_member on public.ai_requests
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.ai_requests from anon, authenticated;

-- =============================================================================================
-- tool_executions: tools called by the assistant
-- =============================================================================================

create table public.tool_executions (
  id            uuid primary key default gen_random_uuid(),
  org_id        uuid not null references public.orgs (id) on delete cascade,
  ai_request_id uuid references public.ai_requests (id) on delete cascade,
  contact_id    uuid references public.contacts (id) on delete set null,
  tool          text not null,
  input         jsonb not null default '{}'::jsonb,
  output        jsonb,
  status        text not null check (status in ('success', 'error')),
  error         text,
  latency_ms    int check (latency_ms >= 0),
  created_at    timestamptz not null default now()
);

comment on table public.tool_executions is 'Tool calls made by the assistant, with input, output, outcome and latency.';

create index tool_executions_org_id_created_at_idx on public.tool_executions (org_id, created_at desc);
create index tool_executions_ai_request_id_idx on public.tool_executions (ai_request_id);
create index tool_executions_contact_id_idx on public.tool_executions (contact_id);
create index tool_executions_created_at_idx on public.tool_executions (created_at);  -- retention

alter table public.tool_executions enable row level security;

create policy tool_executions_select_member on public.tool_executions
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.tool_executions from anon, authenticated;

-- =============================================================================================
-- reminders: reminders created by contacts, sent by cron
-- =============================================================================================

create table public.reminders (
  id                 uuid primary key default gen_random_uuid(),
  org_id             uuid not null references public.orgs (id) on delete cascade,
  contact_id         uuid not null references public.contacts (id) on delete cascade,
  text               text not null check (char_length(text) between 1 and 1000),
  -- A fixed, finite range: no infinity, no BC date, no year 10000 (the cron sends every org's
  -- due reminders in one pass; one unrepresentable date must not stop it).
  due_at             timestamptz not null
                       check (due_at >= '2000-01-01 00:00:00+00' and due_at < '2100-01-01 00:00:00+00'),
  recurrence         text not null default 'none' check (recurrence in ('none', 'daily', 'weekly', 'monthly')),
  timezone           text not null default 'UTC' check (timezone ~ '^[A-Za-z0-9/_+-]{1,64}$'),
  status             text not null default 'pending' check (status in ('pending', 'sending', 'sent', 'failed', 'cancelled')),
  attempts           int not null default 0 check (attempts >= 0),
  lease_until        timestamptz,
  sent_wa_message_id text,
  last_error         text,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  -- The cron's sends (20261123000004_cron.sql) and the assistant's tool calls
  -- (20261123000006_assistant.sql).
  retry_at           timestamptz,
  lease_token        uuid,
  next_due_at        timestamptz,
  occurrence_of      uuid references public.reminders (id) on delete cascade,
  idempotency_key    text check (char_length(idempotency_key) <= 200),
  cancel_key         text check (char_length(cancel_key) <= 200),
  constraint reminders_occurrence_is_one_off check (occurrence_of is null or recurrence = 'none'),
  constraint reminders_idempotency_key unique (org_id, idempotency_key)
);

comment on table public.reminders is 'Contact reminders: due time, recurrence, delivery status and claim lease for cron.';
comment on column public.reminders.retry_at is
  'After a failed send: the reminder is not tried again before this time (backoff).';
comment on column public.reminders.lease_token is
  'The claim holding the reminder: only its holder may send it (see cron_begin_reminder).';
comment on column public.reminders.next_due_at is
  'While a recurring reminder is sending: its next occurrence (computed by the cron before the '
  'send), where the series continues whatever the outcome of this one.';
comment on column public.reminders.occurrence_of is
  'A failed occurrence split off a recurring reminder (the series it belongs to): it carries the '
  'failure (dead letter entry, re-drive) while the series continues.';
comment on column public.reminders.idempotency_key is
  'The assistant tool call that created it: a retried call finds it instead of creating a second reminder.';
comment on column public.reminders.cancel_key is
  'The assistant tool call that cancelled it: a retried call finds it instead of cancelling another one.';

-- messages.reminder_id (messages is created before reminders).
alter table public.messages
  add constraint messages_reminder_id_fkey
  foreign key (reminder_id) references public.reminders (id) on delete set null;

create index reminders_pending_due_at_idx on public.reminders (due_at) where status = 'pending';
create index reminders_org_id_due_at_idx on public.reminders (org_id, due_at);
create index reminders_contact_id_due_at_idx on public.reminders (contact_id, due_at);

create trigger reminders_set_updated_at before update on public.reminders
  for each row execute function public.set_updated_at();

alter table public.reminders enable row level security;

create policy reminders_select_member on public.reminders
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

create policy reminders_update_admin on public.reminders
  for update to authenticated
  using (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))))
  with check (org_id = any (array(select private.my_org_ids(array['owner', 'admin']))));

revoke insert, update, delete, truncate, references, trigger on public.reminders from anon, authenticated;
grant update (text, due_at, recurrence, timezone, status) on public.reminders to authenticated;

-- Users may reschedule, reword, re-arm or cancel a reminder, but the delivery states (sending,
-- sent, failed) are the cron's: a user sets status only to pending or cancelled, re-arms
-- (back to pending) only a cancelled reminder, and never moves due_at into the past (a minute
-- of slack for the browser's clock): a sent reminder is not sent again, nor one back-dated.
create or replace function private.reminder_user_rules()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- The user's own direct write (current_user, not the JWT: the cron's functions run as the
  -- service role or as their owner).
  if current_user <> 'authenticated' then
    return new;
  end if;
  if new.status is distinct from old.status then
    if new.status not in ('pending', 'cancelled') then
      raise exception 'status: a reminder may only be set to pending or cancelled'
        using errcode = 'check_violation';
    end if;
    if new.status = 'pending' and old.status <> 'cancelled' then
      raise exception 'status: only a cancelled reminder may be set back to pending'
        using errcode = 'check_violation';
    end if;
  end if;
  if (new.due_at is distinct from old.due_at
      or (new.status = 'pending' and old.status <> 'pending'))
     and new.due_at < now() - interval '1 minute' then
    raise exception 'due_at: a reminder may not be moved or re-armed into the past'
      using errcode = 'check_violation';
  end if;
  return new;
end;
$$;

revoke all on function private.reminder_user_rules() from public, anon, authenticated;

create trigger reminders_user_rules before update on public.reminders
  for each row execute function private.reminder_user_rules();

-- =============================================================================================
-- expenses: expenses logged by contacts
-- =============================================================================================

create table public.expenses (
  id         uuid primary key default gen_random_uuid(),
  org_id     uuid not null references public.orgs (id) on delete cascade,
  contact_id uuid not null references public.contacts (id) on delete cascade,
  amount     numeric(12, 2) not null check (amount > 0),
  currency   char(3) not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
  category   text not null default 'other',
  note       text,
  spent_at   timestamptz not null default now(),
  created_at timestamptz not null default now(),
  idempotency_key text check (char_length(idempotency_key) <= 200),
  constraint expenses_idempotency_key unique (org_id, idempotency_key)
);

comment on table public.expenses is 'Expenses logged by contacts through the assistant (amount, ISO currency, category).';
comment on column public.expenses.idempotency_key is
  'The assistant tool call that logged it: a retried call finds it instead of logging it twice.';

create index expenses_org_id_contact_id_spent_at_idx on public.expenses (org_id, contact_id, spent_at);
create index expenses_contact_id_spent_at_idx on public.expenses (contact_id, spent_at);

alter table public.expenses enable row level security;

create policy expenses_select_member on public.expenses
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.expenses from anon, authenticated;

-- =============================================================================================
-- calendar_events: events created by contacts
-- =============================================================================================

create table public.calendar_events (
  id          uuid primary key default gen_random_uuid(),
  org_id      uuid not null references public.orgs (id) on delete cascade,
  contact_id  uuid not null references public.contacts (id) on delete cascade,
  title       text not null,
  starts_at   timestamptz not null,
  ends_at     timestamptz check (ends_at >= starts_at),
  external_id text,
  created_at  timestamptz not null default now(),
  idempotency_key text check (char_length(idempotency_key) <= 200),
  constraint calendar_events_idempotency_key unique (org_id, idempotency_key)
);

comment on table public.calendar_events is 'Calendar events created by contacts through the assistant.';
comment on column public.calendar_events.idempotency_key is
  'The assistant tool call that created it (its Google event id is derived from the same key).';

create index calendar_events_org_id_starts_at_idx on public.calendar_events (org_id, starts_at);
create index calendar_events_contact_id_starts_at_idx on public.calendar_events (contact_id, starts_at);

alter table public.calendar_events enable row level security;

create policy calendar_events_select_member on public.calendar_events
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.calendar_events from anon, authenticated;

-- =============================================================================================
-- rate_limits: fixed-window counters, hit atomically through rate_limit_hit()
-- =============================================================================================

create table public.rate_limits (
  key          text not null,
  window_start timestamptz not null,
  count        int not null default 0 check (count >= 0),
  org_id       uuid references public.orgs (id) on delete cascade,
  primary key (key, window_start)
);

comment on table public.rate_limits is 'Fixed-window rate limit counters per key; old windows may be deleted at any time.';

create index rate_limits_org_id_idx on public.rate_limits (org_id) where org_id is not null;
create index rate_limits_window_start_idx on public.rate_limits (window_start);

alter table public.rate_limits enable row level security;

create policy rate_limits_select_member on public.rate_limits
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.rate_limits from anon, authenticated;

-- Counts one hit for p_key in the current window of p_window_seconds; allowed = hits <= p_limit.
-- Windows are aligned to the epoch; give each window length its own key (e.g. 'msg:<org>:60').
create or replace function public.rate_limit_hit(
  p_key text,
  p_window_seconds int,
  p_limit int,
  p_org_id uuid default null
)
returns table (hits int, allowed boolean)
language plpgsql
volatile
set search_path = ''
as $$
begin
  if p_key is null or p_window_seconds is null or p_window_seconds <= 0 or p_limit is null then
    raise exception 'rate_limit_hit: p_key, p_window_seconds > 0 and p_limit are required'
      using errcode = 'invalid_parameter_value';
  end if;

  insert into public.rate_limits as rl (key, window_start, count, org_id)
  values (
    p_key,
    to_timestamp(floor(extract(epoch from now()) / p_window_seconds) * p_window_seconds),
    1,
    p_org_id
  )
  on conflict (key, window_start) do update set count = rl.count + 1
  returning rl.count into hits;

  allowed := hits <= p_limit;
  return next;
end;
$$;

comment on function public.rate_limit_hit(text, int, int, uuid) is 'Atomically counts one hit in the current fixed window; service_role only.';

revoke all on function public.rate_limit_hit(text, int, int, uuid) from public, anon, authenticated;
grant execute on function public.rate_limit_hit(text, int, int, uuid) to service_role;

-- =============================================================================================
-- dead_letter_queue: work that failed and is retried by cron
-- =============================================================================================

create table public.dead_letter_queue (
  id              uuid primary key default gen_random_uuid(),
  org_id          uuid references public.orgs (id) on delete cascade,
  kind            text not null check (kind in ('inbound_message', 'outbound_message', 'reminder', 'billing_event')),
  ref             text,
  payload         jsonb not null default '{}'::jsonb,
  error           text not null,
  attempts        int not null default 1 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  lease_until     timestamptz,
  status          text not null default 'pending' check (status in ('pending', 'retrying', 'resolved', 'discarded')),
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  resolved_at     timestamptz
);

comment on table public.dead_letter_queue is 'Failed work items (messages, reminders, billing events) with retry schedule and lease.';

create index dead_letter_queue_due_idx on public.dead_letter_queue (next_attempt_at)
  where status in ('pending', 'retrying');
create index dead_letter_queue_org_id_idx on public.dead_letter_queue (org_id, created_at desc, id desc);
create index dead_letter_queue_resolved_at_idx on public.dead_letter_queue (resolved_at)
  where status = 'resolved';  -- retention

create trigger dead_letter_queue_set_updated_at before update on public.dead_letter_queue
  for each row execute function public.set_updated_at();

alter table public.dead_letter_queue enable row level security;

create policy dead_letter_queue_select_member on public.dead_letter_queue
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

revoke insert, update, delete, truncate, references, trigger on public.dead_letter_queue from anon, authenticated;

-- =============================================================================================
-- alerts: operational alerts, acknowledged and resolved by admins
-- =============================================================================================

create table public.alerts (
  id              uuid primary key default gen_random_uuid(),
  org_id          uuid references public.orgs (id) on delete cascade,
  kind            text not null,
  severity        text not null default 'warning' check (severity in ('info', 'warning', 'critical')),
  message         text not null,
  status          text not null default 'open' check (status in ('open', 'acknowledged', 'resolved')),
  acknowledged_by uuid references auth.users (id) on delete set null,
  acknowledged_at timestamptz,
  resolved_at     timestamptz,
  created_at      timestamptz not null default now()
);

comment on table public.alerts is 'Operational alerts (org-wide or system-wide when org_id is null) and their acknowledgement.';

create index alerts_org_id_status_idx on public.alerts (org_id, status);
create index alerts_org_id_created_at_idx on public.alerts (org_id, created_at desc, id desc);
create index alerts_acknowledged_by_idx on public.alerts (acknowledged_by) where acknowledged_by is not null;
create index alerts_resolved_at_idx on public.alerts (resolved_at) where status = 'resolved';  -- retention
-- At most one open alert per org (or platform-wide, org null) of each kind the monitor watches;
-- other kinds (billing events) record one alert per event.
create unique index alerts_open_monitor_key on public.alerts (org_id, kind) nulls not distinct
  where status = 'open'
    and kind in ('error_rate', 'webhook_latency', 'ai_latency', 'ai_cost', 'tool_failure_rate',
                 'db_latency');

-- A user acknowledging or resolving an alert is recorded as themselves, at the current time.
create or replace function private.stamp_alert()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status = 'acknowledged' and old.status <> 'acknowledged' then
    new.acknowledged_at := coalesce(new.acknowledged_at, now());
    new.acknowledged_by := coalesce(new.acknowledged_by, auth.uid());
  elsif new.status = 'resolved' and old.status <> 'resolved' then
    new.resolved_at := coalesce(new.resolved_at, now());
  end if;
  -- Users cannot attribute an acknowledgement to someone else.
  if coalesce(auth.role(), '') = 'authenticated'
     and new.acknowledged_by is distinct from old.acknowledged_by then
    new.acknowledged_by := auth.uid();
  end if;
  return new;
end;
$$;

revoke all on function private.stamp_alert() from public, anon, authenticated;

create trigger alerts_stamp before update on public.alerts
  for each row execute function private.stamp_alert();

alter table public.alerts enable row level security;

create policy alerts_select_member on public.alerts
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

-- Acknowledging is audited: users do it only through admin_acknowledge_alert; no direct writes.
revoke insert, update, delete, truncate, references, trigger on public.alerts from anon, authenticated;

-- =============================================================================================
-- audit_log_entries: append-only record of admin actions
-- =============================================================================================

create table public.audit_log_entries (
  id         uuid primary key default gen_random_uuid(),
  org_id     uuid not null references public.orgs (id) on delete cascade,
  actor_id   uuid default auth.uid(),  -- no FK: the record outlives the user
  action     text not null check (action <> ''),
  target     text,
  details    jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);

comment on table public.audit_log_entries is 'Append-only audit log of admin actions, written by the system (the admin_* security definer functions), never by users.';

create index audit_log_entries_org_id_created_at_idx on public.audit_log_entries (org_id, created_at desc, id desc);

alter table public.audit_log_entries enable row level security;

create policy audit_log_entries_select_member on public.audit_log_entries
  for select to authenticated
  using (org_id = any (array(select private.my_org_ids())));

-- Users write no audit row themselves (no insert, update or delete): the admin_* security
-- definer functions write them with the change they record (private.audit).
revoke insert, update, delete, truncate, references, trigger on public.audit_log_entries from anon, authenticated;

-- =============================================================================================
-- Operator views (security_invoker: the caller's RLS applies; service_role sees every org)
-- =============================================================================================

create view public.system_health_summary
with (security_invoker = true)
as
select
  o.id as org_id,
  (select count(*) from public.messages m
    where m.org_id = o.id and m.created_at > now() - interval '1 hour')              as messages_last_hour,
  (select count(*) from public.messages m
    where m.org_id = o.id and m.status in ('received', 'processing'))                 as inbound_pending,
  (select count(*) from public.messages m
    where m.org_id = o.id and m.status = 'failed'
      and m.created_at > now() - interval '1 day')                                   as failed_last_day,
  (select count(*) from public.dead_letter_queue d
    where d.org_id = o.id and d.status in ('pending', 'retrying'))                    as dead_letters_pending,
  (select count(*) from public.alerts a
    where a.org_id = o.id and a.status = 'open')                                      as open_alerts,
  (select max(c.last_inbound_at) from public.conversations c where c.org_id = o.id)  as last_inbound_at
from public.orgs o;

comment on view public.system_health_summary is 'One row per org: recent traffic, pending and failed messages, dead letters, open alerts.';

-- Months are calendar months in UTC.
create view public.ai_cost_per_contact_monthly
with (security_invoker = true)
as
select
  r.org_id,
  r.contact_id,
  date_trunc('month', r.created_at at time zone 'UTC')::date as month,
  count(*)                                                   as requests,
  sum(r.tokens_in)::bigint                                   as tokens_in,
  sum(r.tokens_out)::bigint                                  as tokens_out,
  sum(r.tokens_cached)::bigint                               as tokens_cached,
  sum(r.cost_usd)                                            as cost_usd
from public.ai_requests r
group by r.org_id, r.contact_id, date_trunc('month', r.created_at at time zone 'UTC');

comment on view public.ai_cost_per_contact_monthly is 'AI requests, tokens and cost per contact per calendar month (UTC).';

create view public.ai_cost_per_org_monthly
with (security_invoker = true)
as
select
  r.org_id,
  date_trunc('month', r.created_at at time zone 'UTC')::date as month,
  count(*)                                                   as requests,
  sum(r.tokens_in)::bigint                                   as tokens_in,
  sum(r.tokens_out)::bigint                                  as tokens_out,
  sum(r.cost_usd)                                            as cost_usd,
  sum(r.tokens_cached)::bigint                               as tokens_cached
from public.ai_requests r
group by r.org_id, date_trunc('month', r.created_at at time zone 'UTC');

comment on view public.ai_cost_per_org_monthly is 'AI requests, tokens and cost per org per calendar month (UTC).';

revoke insert, update, delete, truncate, references, trigger
  on public.system_health_summary, public.ai_cost_per_contact_monthly, public.ai_cost_per_org_monthly
  from anon, authenticated, service_role;

-- =============================================================================================
-- db_ping: liveness probe for /api/health (service_role only)
-- =============================================================================================

create or replace function public.db_ping()
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select now();
$$;

comment on function public.db_ping() is 'Health check: returns the database time; service_role only.';

revoke all on function public.db_ping() from public, anon, authenticated;
grant execute on function public.db_ping() to service_role;
