-- Local-only bootstrap: recreates what hosted Supabase provides before any migration runs.
-- Never part of supabase/migrations (hosted Supabase already has all of this).
-- Applied by scripts/stack as the cluster superuser; idempotent.
-- psql variable :authenticator_password is set by scripts/stack.

do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

alter role authenticator with password :'authenticator_password';
grant anon, authenticated, service_role to authenticator;

create extension if not exists pgcrypto;
-- Query statistics, in the schema hosted Supabase keeps its extensions in (the runbook's slow
-- queries read extensions.pg_stat_statements; scripts/stack preloads the library).
create schema if not exists extensions;
create extension if not exists pg_stat_statements with schema extensions;

-- auth schema: the parts of Supabase Auth that migrations and policies rely on.
create schema if not exists auth;

create table if not exists auth.users (
  id uuid primary key default gen_random_uuid(),
  email text unique,
  raw_app_meta_data jsonb not null default '{}'::jsonb,
  raw_user_meta_data jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

grant usage on schema auth to anon, authenticated, service_role;
grant execute on all functions in schema auth to anon, authenticated, service_role;
grant all on auth.users to service_role;

-- public schema privileges as on hosted Supabase: RLS, not grants, decides access.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;

-- PostgREST reloads its schema cache whenever DDL runs.
create schema if not exists local_stack;

create or replace function local_stack.pgrst_watch() returns event_trigger
language plpgsql
as $$
begin
  notify pgrst, 'reload schema';
end;
$$;

drop event trigger if exists pgrst_watch;
create event trigger pgrst_watch on ddl_command_end execute procedure local_stack.pgrst_watch();

-- Applied migrations, so that `scripts/stack up` can run twice.
create table if not exists local_stack.migrations (
  name text primary key,
  applied_at timestamptz not null default now()
);
-- The file's SHA-256 when applied: a migration edited since (allowed until the first release)
-- makes `scripts/stack up` recreate a test or bench stack, and stop a dev one.
alter table local_stack.migrations add column if not exists checksum text;
