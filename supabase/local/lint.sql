-- The lint of `supabase db lint`, run directly (scripts/test): plpgsql_check_function over every
-- plpgsql function of the public and private schemas, with its default checks (errors, and the
-- warnings `--level warning` shows). Trigger functions, which the CLI skips, are checked too,
-- against the table of their first trigger and its transition tables. Prints every issue and
-- fails (exit status 3 under ON_ERROR_STOP) on any error or warning. Like the CLI, it creates the
-- extension inside a transaction and rolls it back: the database is left as it was.
\set ON_ERROR_STOP on
begin;
create extension if not exists plpgsql_check;
do $$
declare
  f record;
  i record;
  v_issues int := 0;
  v_functions int := 0;
begin
  for f in
    select p.oid, p.oid::regprocedure as name, t.tgrelid, t.tgoldtable, t.tgnewtable
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    join pg_language l on l.oid = p.prolang
    left join lateral (
      select tg.tgrelid, tg.tgoldtable, tg.tgnewtable from pg_trigger tg
      where tg.tgfoid = p.oid order by tg.oid limit 1
    ) t on p.prorettype = 'trigger'::regtype
    where l.lanname = 'plpgsql' and n.nspname in ('public', 'private')
    order by 2::text
  loop
    v_functions := v_functions + 1;
    for i in
      select * from plpgsql_check_function_tb(f.oid, coalesce(f.tgrelid, 0),
        oldtable => f.tgoldtable, newtable => f.tgnewtable)
    loop
      v_issues := v_issues + 1;
      raise warning '%: % % at line % (%): % %', f.name, i.level, i.sqlstate, i.lineno,
        i.statement, i.message, coalesce('(' || i.detail || ')', '');
    end loop;
  end loop;
  if v_issues > 0 then
    raise exception 'lint: % issue(s) in % plpgsql functions', v_issues, v_functions;
  end if;
  raise notice 'lint: % plpgsql functions, 0 errors, 0 warnings', v_functions;
end $$;
rollback;
