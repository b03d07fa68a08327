-- Cron fixes (review of 20261123000004_cron.sql):
--
-- 1. Opt-out is honoured on every path to a send, not only by cron_claim_reminders:
--    cron_redrive_reminder cancels a failed reminder of a contact who opted out (its dead
--    letter entry then settles as discarded), and cron_begin_reminder refuses to begin one
--    (and cancels it).
-- 2. A recurring reminder's series survives a failed occurrence. The caller computes the next
--    occurrence before the send (lib/src/domain/reminder.rs, `Recurrence::next_after`: local
--    wall-clock time, DST-correct) and passes it to cron_begin_reminder, which stores it in
--    reminders.next_due_at, and to cron_fail_reminder. When the occurrence fails for good
--    (final failure, retries exhausted) or its outcome is unknown (a Graph timeout, a run that
--    died mid-send), the occurrence is split off the series as a one-off reminder of its own
--    (occurrence_of = the series, status failed) that carries the failure — its dead letter
--    entry and re-drive as before, or, for an unknown outcome, nothing that could ever send
--    it again — and the series is pending again at its next occurrence.
-- 3. cron_release_reminders un-claims reminders a run claimed but did not begin before its
--    time budget ran out, so the next run takes them at once instead of after the lease.
-- Every function here is for the service role only (the cron routes).
-- Runs unchanged on hosted Supabase: no roles, no superuser-only statements.

-- =============================================================================================
-- Columns
-- =============================================================================================

alter table public.reminders
  add column next_due_at timestamptz,
  add column occurrence_of uuid references public.reminders (id) on delete cascade,
  add constraint reminders_occurrence_is_one_off check (occurrence_of is null or recurrence = 'none');

comment on column public.reminders.next_due_at is
  'While a recurring reminder is sending: its next occurrence (computed by the cron before the '
  'send), where the series continues whatever the outcome of this one.';
comment on column public.reminders.occurrence_of is
  'A failed occurrence split off a recurring reminder (the series it belongs to): it carries the '
  'failure (dead letter entry, re-drive) while the series continues.';

create index reminders_occurrence_of_idx on public.reminders (occurrence_of) where occurrence_of is not null;

-- =============================================================================================
-- Helpers (private: not exposed by PostgREST)
-- =============================================================================================

-- Ends the current occurrence of reminder p_id as failed with p_error, and returns the id of
-- the row that now holds the failed occurrence:
--   * without p_next_due_at (a one-off reminder): the reminder itself, status failed;
--   * with it (a recurring one): a new one-off reminder (occurrence_of = p_id, the occurrence's
--     due_at, attempts and error), which takes over the series' open dead letter entry; the
--     series is pending again at p_next_due_at, with its attempts reset.
-- p_keep_token leaves the lease token on the failed occurrence, so that a late
-- cron_finish_reminder of a send whose outcome was unknown can still record its success.
create or replace function private.cron_fail_occurrence(
  p_id uuid, p_next_due_at timestamptz, p_error text, p_keep_token boolean)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  r public.reminders;
  v_token uuid;
  v_id uuid;
begin
  select * into r from public.reminders where id = p_id for update;
  v_token := case when p_keep_token then r.lease_token end;
  if r.recurrence = 'none' or p_next_due_at is null then
    update public.reminders
    set status = 'failed', lease_until = null, lease_token = v_token, retry_at = null,
        next_due_at = null, last_error = p_error
    where id = p_id;
    return p_id;
  end if;

  insert into public.reminders
    (org_id, contact_id, text, due_at, recurrence, timezone, status, attempts, lease_token,
     last_error, occurrence_of)
  values (r.org_id, r.contact_id, r.text, r.due_at, 'none', r.timezone, 'failed', r.attempts,
          v_token, p_error, r.id)
  returning id into v_id;

  update public.reminders
  set status = 'pending', due_at = p_next_due_at, next_due_at = null, attempts = 0,
      retry_at = null, lease_until = null, lease_token = null, last_error = p_error
  where id = p_id;

  update public.dead_letter_queue
  set ref = v_id::text,
      payload = payload || jsonb_build_object('reminder_id', v_id, 'occurrence_of', p_id)
  where kind = 'reminder' and ref = p_id::text and status in ('pending', 'retrying');
  return v_id;
end;
$$;

-- Reminders whose send may have happened: their occurrence failed (a recurring reminder
-- continues at its stored next_due_at), its outbound message failed, its open dead letter
-- entry discarded (a re-drive must never send it again), an alert per org. The failed
-- occurrence keeps the lease token, so that a late cron_finish_reminder can still record a
-- success. Returns how many were marked.
create or replace function private.cron_mark_unknown(p_ids uuid[], p_reason text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_error text := 'send outcome unknown (' || p_reason || '); not sent again';
  r public.reminders;
  v_occurrence uuid;
  v_orgs uuid[] := '{}';
  v_org uuid;
  v_count int := 0;
begin
  for r in select * from public.reminders where id = any (p_ids) for update loop
    v_occurrence := private.cron_fail_occurrence(r.id, r.next_due_at, v_error, true);
    update public.messages
    set status = 'failed', status_at = now(), error = jsonb_build_object('message', v_error)
    where reminder_id = r.id and status = 'sending';
    update public.dead_letter_queue
    set status = 'discarded', lease_until = null, resolved_at = now(), error = v_error
    where kind = 'reminder' and ref = v_occurrence::text and status in ('pending', 'retrying');
    v_orgs := v_orgs || r.org_id;
    v_count := v_count + 1;
  end loop;
  for v_org in select distinct unnest(v_orgs) loop
    perform private.raise_alert(v_org, 'reminder_outcome_unknown', 'warning',
      'A reminder''s send outcome is unknown; it was not sent again (see reminders.last_error).');
  end loop;
  return v_count;
end;
$$;

-- Why a reminder must not be sent any more although it is due: its contact opted out, or it is
-- a failed occurrence of a series that was cancelled. Null when it may be sent.
create or replace function private.cron_cancel_reason(p_reminder public.reminders)
returns text
language sql
stable
set search_path = ''
as $$
  select case
    when exists (select 1 from public.contacts c where c.id = p_reminder.contact_id and c.opted_out)
      then 'not sent: the contact opted out'
    when exists (select 1 from public.reminders s
                 where s.id = p_reminder.occurrence_of and s.status = 'cancelled')
      then 'not sent: its recurring reminder was cancelled'
  end;
$$;

-- =============================================================================================
-- check-reminders
-- =============================================================================================

-- The signature gains p_next_due_at: the old one goes, so that PostgREST never has two to
-- choose from.
drop function public.cron_begin_reminder(uuid, uuid, uuid, text, text, int);

-- Moves a claimed reminder to `sending` and records its outbound message (status sending) on
-- the conversation; renews the lease; stores p_next_due_at, the next occurrence of a recurring
-- reminder (where the series continues whatever this send's outcome). Returns the message id,
-- or null when the claim is no longer this caller's (another run took it over, or it was
-- cancelled) or the contact opted out (the reminder is cancelled): do not send then.
create function public.cron_begin_reminder(
  p_reminder_id uuid, p_token uuid, p_conversation_id uuid, p_type text, p_body text,
  p_lease_seconds int, p_next_due_at timestamptz default null)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  r public.reminders;
  v_reason text;
  v_id uuid;
begin
  select * into r from public.reminders
  where id = p_reminder_id and lease_token = p_token and status = 'pending'
  for update;
  if not found then
    return null;
  end if;
  v_reason := private.cron_cancel_reason(r);
  if v_reason is not null then
    update public.reminders
    set status = 'cancelled', lease_until = null, lease_token = null, last_error = v_reason
    where id = r.id;
    return null;
  end if;

  update public.reminders
  set status = 'sending', attempts = attempts + 1,
      next_due_at = case when recurrence = 'none' then null else p_next_due_at end,
      lease_until = now() + make_interval(secs => p_lease_seconds)
  where id = r.id;

  insert into public.messages
    (org_id, conversation_id, contact_id, direction, type, body, status, reminder_id)
  select r.org_id, v.id, r.contact_id, 'outbound', p_type, p_body, 'sending', r.id
  from public.conversations v
  where v.id = p_conversation_id and v.contact_id = r.contact_id
  returning id into v_id;
  if v_id is null then
    raise exception 'cron_begin_reminder: conversation % is not the reminder''s contact''s', p_conversation_id
      using errcode = 'invalid_parameter_value';
  end if;
  return v_id;
end;
$$;

-- The reminder was sent. p_result: {status: sent|simulated, wamid, wamids, type}. A recurring
-- reminder is pending again at the next_due_at stored when it began; a one-off is sent. An
-- open dead letter entry of the reminder is resolved. Also accepted after the lease ran out
-- and the send was marked unknown (the outcome is known now): the token then holds the failed
-- occurrence (p_reminder_id's own row, or the one split off the series), which becomes sent.
-- Returns false when the token does not hold the reminder.
create or replace function public.cron_finish_reminder(
  p_reminder_id uuid, p_token uuid, p_message_id uuid, p_result jsonb)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  r public.reminders;
begin
  update public.reminders
  set status = case when next_due_at is null then 'sent' else 'pending' end,
      due_at = coalesce(next_due_at, due_at),
      attempts = case when next_due_at is null then attempts else 0 end,
      next_due_at = null, retry_at = null, lease_until = null, lease_token = null,
      last_error = null, sent_wa_message_id = p_result ->> 'wamid'
  where lease_token = p_token and (id = p_reminder_id or occurrence_of = p_reminder_id)
    and status in ('sending', 'failed')
  returning * into r;
  if not found then
    return false;
  end if;

  -- Conversation before message: the order whatsapp_ingest locks them in.
  update public.conversations v
  set last_message_at = now()
  from public.messages m
  where m.id = p_message_id and v.id = m.conversation_id;

  update public.messages
  set status = p_result ->> 'status',
      wa_message_id = p_result ->> 'wamid',
      type = coalesce(p_result ->> 'type', type),
      payload = payload || jsonb_build_object('wamids', coalesce(p_result -> 'wamids', '[]')),
      error = null,
      status_at = now()
  where id = p_message_id and reminder_id = p_reminder_id;

  update public.dead_letter_queue
  set status = 'resolved', resolved_at = now(), lease_until = null
  where kind = 'reminder' and ref = r.id::text and status in ('pending', 'retrying');
  return true;
end;
$$;

-- The signature gains p_next_due_at: the old one goes.
drop function public.cron_fail_reminder(uuid, uuid, uuid, text, text, int, int, jsonb);

-- The send failed. p_mode: `retry` (known not sent: try again after a backoff, until
-- p_max_attempts), `final` (no point retrying now, e.g. no template), `unknown` (it may have
-- been sent: never again). An occurrence that fails for good (or again while it has an open
-- dead letter entry) is failed, with its dead letter entry (attempts and backoff) and an
-- alert; a recurring reminder continues at p_next_due_at (or the next_due_at stored when it
-- began) while the failed occurrence is split off (private.cron_fail_occurrence). p_alert
-- ({kind, severity, message}) is raised too. Returns retrying | failed | unknown, or null when
-- the token does not hold the reminder.
create function public.cron_fail_reminder(
  p_reminder_id uuid, p_token uuid, p_message_id uuid, p_error text, p_mode text,
  p_max_attempts int, p_backoff_seconds int, p_alert jsonb default null,
  p_next_due_at timestamptz default null)
returns text
language plpgsql
set search_path = ''
as $$
declare
  r public.reminders;
  v_occurrence uuid;
  v_attempts int;
begin
  if p_mode not in ('retry', 'final', 'unknown') then
    raise exception 'cron_fail_reminder: p_mode must be retry, final or unknown'
      using errcode = 'invalid_parameter_value';
  end if;
  select * into r from public.reminders
  where id = p_reminder_id and lease_token = p_token and status in ('pending', 'sending')
  for update;
  if not found then
    return null;
  end if;

  if p_message_id is not null then
    update public.messages
    set status = 'failed', status_at = now(), error = jsonb_build_object('message', p_error)
    where id = p_message_id and reminder_id = r.id and status = 'sending';
  end if;
  if p_alert is not null then
    perform private.raise_alert(r.org_id, p_alert ->> 'kind',
      coalesce(p_alert ->> 'severity', 'warning'), p_alert ->> 'message');
  end if;

  if p_mode = 'unknown' then
    update public.reminders set next_due_at = coalesce(p_next_due_at, next_due_at)
    where id = r.id and recurrence <> 'none';
    perform private.cron_mark_unknown(array[r.id], p_error);
    return 'unknown';
  end if;

  if p_mode = 'retry' and r.attempts < p_max_attempts
     and not exists (select 1 from public.dead_letter_queue
                     where kind = 'reminder' and ref = r.id::text
                       and status in ('pending', 'retrying')) then
    update public.reminders
    set status = 'pending', lease_until = null, lease_token = null, next_due_at = null,
        last_error = p_error, retry_at = now() + private.cron_backoff(r.attempts, p_backoff_seconds)
    where id = r.id;
    return 'retrying';
  end if;

  v_occurrence := private.cron_fail_occurrence(
    r.id, coalesce(p_next_due_at, r.next_due_at), p_error, false);

  -- The entry counts the attempts of the work: the occurrence's sends, and at least one per
  -- re-drive (a failure before the send, e.g. no template, counts too).
  update public.dead_letter_queue
  set attempts = greatest(attempts + 1, r.attempts), error = p_error, status = 'pending',
      lease_until = null,
      next_attempt_at = now() + private.cron_backoff(greatest(attempts + 1, r.attempts), p_backoff_seconds)
  where kind = 'reminder' and ref = v_occurrence::text and status in ('pending', 'retrying');
  if not found then
    v_attempts := greatest(r.attempts, 1);
    insert into public.dead_letter_queue (org_id, kind, ref, payload, error, attempts, next_attempt_at)
    values (r.org_id, 'reminder', v_occurrence::text,
            jsonb_strip_nulls(jsonb_build_object(
              'reminder_id', v_occurrence, 'due_at', r.due_at,
              'occurrence_of', case when v_occurrence <> r.id then r.id end)),
            p_error, v_attempts, now() + private.cron_backoff(v_attempts, p_backoff_seconds));
  end if;
  perform private.raise_alert(r.org_id, 'reminder_failed', 'warning',
    'A reminder could not be sent; see dead_letter_queue (kind reminder) and reminders.last_error.');
  return 'failed';
end;
$$;

-- Un-claims reminders a run claimed but did not begin (its time budget ran out), so that the
-- next run takes them at once instead of after their lease. p_claims: [{id, token}]; only the
-- holder of a claim can release it. Returns how many were released.
create or replace function public.cron_release_reminders(p_claims jsonb)
returns int
language sql
set search_path = ''
as $$
  with released as (
    update public.reminders r
    set lease_until = null, lease_token = null
    from jsonb_to_recordset(p_claims) as c(id uuid, token uuid)
    where r.id = c.id and r.lease_token = c.token and r.status = 'pending'
    returning 1
  )
  select count(*)::int from released;
$$;

-- =============================================================================================
-- retry-failed
-- =============================================================================================

-- Takes a failed reminder back for one more attempt (claimed, as by cron_claim_reminders).
-- Returns its claim, or null when it is not failed any more (sent, cancelled, deleted...) or
-- must not be sent any more (private.cron_cancel_reason: the contact opted out, or the
-- occurrence's series was cancelled): it is cancelled then, and its dead letter entry settles
-- as discarded.
create or replace function public.cron_redrive_reminder(p_reminder_id uuid, p_lease_seconds int)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  r public.reminders;
  v_reason text;
begin
  select * into r from public.reminders where id = p_reminder_id and status = 'failed' for update;
  if not found then
    return null;
  end if;
  v_reason := private.cron_cancel_reason(r);
  if v_reason is not null then
    update public.reminders
    set status = 'cancelled', lease_until = null, lease_token = null, retry_at = null,
        last_error = v_reason
    where id = r.id;
    return null;
  end if;

  update public.reminders
  set status = 'pending', retry_at = null,
      lease_until = now() + make_interval(secs => p_lease_seconds),
      lease_token = gen_random_uuid()
  where id = r.id;
  return private.cron_reminder_claim(r.id);
end;
$$;

-- =============================================================================================
-- Privileges: service role only (the default privileges would let every role execute them)
-- =============================================================================================

revoke execute on function
  public.cron_begin_reminder(uuid, uuid, uuid, text, text, int, timestamptz),
  public.cron_fail_reminder(uuid, uuid, uuid, text, text, int, int, jsonb, timestamptz),
  public.cron_release_reminders(jsonb)
from public, anon, authenticated;
grant execute on function
  public.cron_begin_reminder(uuid, uuid, uuid, text, text, int, timestamptz),
  public.cron_fail_reminder(uuid, uuid, uuid, text, text, int, int, jsonb, timestamptz),
  public.cron_release_reminders(jsonb)
to service_role;

revoke execute on function
  private.cron_fail_occurrence(uuid, timestamptz, text, boolean),
  private.cron_cancel_reason(public.reminders)
from public, anon, authenticated;
grant execute on function
  private.cron_fail_occurrence(uuid, timestamptz, text, boolean),
  private.cron_cancel_reason(public.reminders)
to service_role;
