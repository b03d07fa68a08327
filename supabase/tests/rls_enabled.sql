-- Guards over the whole public schema: they also catch tables and views added later.
begin;
create extension if not exists pgtap;
select plan(8);

-- Tables and views that belong to extensions (pgTAP's own) are not ours to check.
create temp view our_relations as
select c.oid, c.relname, c.relkind, c.relrowsecurity, c.reloptions
from pg_class c
where c.relnamespace = 'public'::regnamespace
  and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e');

select isnt_empty(
  $$ select relname from our_relations where relkind in ('r', 'p') $$,
  'public has tables to check'
);

select is_empty(
  $$ select relname from our_relations where relkind in ('r', 'p') and not relrowsecurity $$,
  'every table in public has row level security enabled'
);

select is_empty(
  $$ select tablename, policyname from pg_policies
     where schemaname = 'public'
       and (btrim(qual, ' ()') = 'true' or btrim(with_check, ' ()') = 'true') $$,
  'no policy in public is using (true) or with check (true)'
);

select is_empty(
  $$ select tablename, policyname, roles from pg_policies
     where schemaname = 'public' and 'public' = any (roles) $$,
  'every policy in public names its role(s)'
);

select is_empty(
  $$ select tablename, policyname from pg_policies
     where schemaname = 'public' and 'anon' = any (roles) $$,
  'no policy in public applies to anon'
);

select is_empty(
  $$ select relname from our_relations
     where relkind = 'v'
       and not coalesce(reloptions && array['security_invoker=true', 'security_invoker=on',
                                            'security_invoker=1'], false) $$,
  'every view in public is security_invoker'
);

select is_empty(
  $$ select relname from our_relations where relkind = 'm' $$,
  'no materialized view in public (they bypass row level security)'
);

select is_empty(
  $$ select relname from our_relations
     where relkind in ('r', 'p', 'v') and obj_description(oid, 'pg_class') is null $$,
  'every table and view in public has a comment'
);

select * from finish();
rollback;
