-- Local demo data (never applied to hosted Supabase). Runs after the migrations as superuser.
-- Every insert is keyed on fixed ids, so running it again changes nothing.
--
--   org                                    user (password-less, local auth.users)        role
--   Acme Dental   11111111-...-111111111111  admin@acme.test    aaaaaaaa-0000-0000-0000-000000000001  owner
--                                           viewer@acme.test   aaaaaaaa-0000-0000-0000-000000000002  viewer
--   Bravo Fitness 22222222-...-222222222222  admin@bravo.test   bbbbbbbb-0000-0000-0000-000000000001  owner
--                                           viewer@bravo.test  bbbbbbbb-0000-0000-0000-000000000002  viewer

-- Plans --------------------------------------------------------------------------------------
-- models: what an org on the plan may choose (each priced in lib/src/assistant/models.rs).
insert into public.plans (name, stripe_price_id, monthly_token_budget, limits, models) values
  ('free',    null,                  100000,  '{"messages_per_minute": 10, "contact_daily_tokens": 20000}',
   array['gpt-6-luna', 'gpt-4o-mini', 'gpt-4.1-mini', 'claude-haiku-5-5', 'claude-haiku-4-5']),
  ('starter', 'price_starter_local', 1000000, '{"messages_per_minute": 30, "contact_daily_tokens": 100000}',
   array['gpt-6-luna', 'gpt-4o-mini', 'gpt-4.1-mini', 'claude-haiku-5-5', 'claude-haiku-4-5',
         'gpt-6.1-terra', 'gpt-4o', 'gpt-4.1']),
  ('pro',     'price_pro_local',     5000000, '{"messages_per_minute": 60, "contact_daily_tokens": 500000}',
   array['gpt-6-luna', 'gpt-4o-mini', 'gpt-4.1-mini', 'claude-haiku-5-5', 'claude-haiku-4-5',
         'gpt-6.1-terra', 'gpt-4o', 'gpt-4.1', 'claude-sonnet-5-5', 'claude-opus-5-5'])
on conflict (name) do update
  set stripe_price_id = excluded.stripe_price_id,
      monthly_token_budget = excluded.monthly_token_budget,
      limits = excluded.limits,
      models = excluded.models;

-- Orgs ---------------------------------------------------------------------------------------
insert into public.orgs (id, name, plan, subscription_status, stripe_customer_id, monthly_token_budget) values
  ('11111111-1111-1111-1111-111111111111', 'Acme Dental',   'free',    'none',   null,              100000),
  ('22222222-2222-2222-2222-222222222222', 'Bravo Fitness', 'starter', 'active', 'cus_bravo_local', 1000000)
on conflict (id) do nothing;

-- Users and memberships ----------------------------------------------------------------------
insert into auth.users (id, email) values
  ('aaaaaaaa-0000-0000-0000-000000000001', 'admin@acme.test'),
  ('aaaaaaaa-0000-0000-0000-000000000002', 'viewer@acme.test'),
  ('bbbbbbbb-0000-0000-0000-000000000001', 'admin@bravo.test'),
  ('bbbbbbbb-0000-0000-0000-000000000002', 'viewer@bravo.test')
on conflict (id) do nothing;

insert into public.org_members (org_id, user_id, role) values
  ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000001', 'owner'),
  ('11111111-1111-1111-1111-111111111111', 'aaaaaaaa-0000-0000-0000-000000000002', 'viewer'),
  ('22222222-2222-2222-2222-222222222222', 'bbbbbbbb-0000-0000-0000-000000000001', 'owner'),
  ('22222222-2222-2222-2222-222222222222', 'bbbbbbbb-0000-0000-0000-000000000002', 'viewer')
on conflict (org_id, user_id) do nothing;

-- WhatsApp numbers ---------------------------------------------------------------------------
insert into public.whatsapp_numbers (id, org_id, phone_number_id, display_phone_number, waba_id) values
  ('11111111-1111-1111-1111-000000000001', '11111111-1111-1111-1111-111111111111',
   '100000000000001', '+1 555 010 0001', '200000000000001'),
  ('22222222-2222-2222-2222-000000000001', '22222222-2222-2222-2222-222222222222',
   '100000000000002', '+1 555 010 0002', '200000000000002')
on conflict (id) do nothing;

-- Templates as Meta's webhooks described them -------------------------------------------------
insert into public.whatsapp_templates (org_id, name, language, template_id, status, category) values
  ('11111111-1111-1111-1111-111111111111', 'assistant_reply', 'en_US', '300000000000001', 'APPROVED', 'UTILITY'),
  ('22222222-2222-2222-2222-222222222222', 'assistant_reply', 'en_US', '300000000000002', 'APPROVED', 'UTILITY')
on conflict do nothing;

-- Assistant settings -------------------------------------------------------------------------
insert into public.assistant_settings (org_id, system_prompt, language, timezone, template_language) values
  ('11111111-1111-1111-1111-111111111111',
   'You are the WhatsApp assistant of Acme Dental. Help patients with reminders for their '
   'appointments and answer briefly and kindly. Never give medical advice.',
   'en', 'America/New_York', 'en_US'),
  ('22222222-2222-2222-2222-222222222222',
   'Eres el asistente de WhatsApp de Bravo Fitness. Ayuda a los socios con recordatorios de '
   'entrenamiento, gastos y eventos. Responde en español, de forma breve y motivadora.',
   'es', 'Europe/Madrid', 'es_ES')
on conflict (org_id) do nothing;

-- Contacts and conversations -----------------------------------------------------------------
insert into public.contacts (id, org_id, wa_id, name, locale, timezone) values
  ('11111111-1111-1111-1111-000000000002', '11111111-1111-1111-1111-111111111111',
   '15550001111', 'Alice Patient', 'en_US', 'America/New_York'),
  ('22222222-2222-2222-2222-000000000002', '22222222-2222-2222-2222-222222222222',
   '34600000000', 'Beatriz Socia', 'es_ES', 'Europe/Madrid')
on conflict (id) do nothing;

insert into public.conversations (id, org_id, contact_id, whatsapp_number_id) values
  ('11111111-1111-1111-1111-000000000003', '11111111-1111-1111-1111-111111111111',
   '11111111-1111-1111-1111-000000000002', '11111111-1111-1111-1111-000000000001'),
  ('22222222-2222-2222-2222-000000000003', '22222222-2222-2222-2222-222222222222',
   '22222222-2222-2222-2222-000000000002', '22222222-2222-2222-2222-000000000001')
on conflict (id) do nothing;
