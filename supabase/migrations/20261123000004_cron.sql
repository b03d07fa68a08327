-- Cron: reminders sent by /api/cron/check-reminders; dead letters and stuck inbound messages
-- re-driven by /api/cron/retry-failed; webhooks retention.
--
-- Reminders are sent exactly once, whatever runs overlap or crash:
--   * cron_claim_reminders takes due reminders in batches (FOR UPDATE SKIP LOCKED) with a
--     lease and a fresh lease_token; a lease that runs out (a crashed run) makes them
--     claimable again; cron_release_reminders un-claims those a run claimed but did not begin
--     before its time budget ran out, so the next run takes them at once;
--   * cron_begin_reminder moves a reminder from pending to `sending` (only the holder of the
--     token can) and records the outbound message before the Graph API call;
--   * cron_finish_reminder records the send (and the next occurrence of a recurring one);
--     cron_fail_reminder records a failure: retried with backoff, or failed for good with a
--     dead letter entry and an alert;
--   * a reminder still `sending` after its lease has an unknown outcome: its occurrence is
--     marked failed with an alert and never sent again.
-- Opt-out is honoured on every path to a send: cron_claim_reminders cancels the reminders of a
-- contact who opted out, cron_begin_reminder refuses to begin one (and cancels it), and
-- cron_redrive_reminder cancels a failed one (its dead letter entry then settles as discarded).
-- A recurring reminder's series survives a failed occurrence. The caller computes the next
-- occurrence before the send (lib/src/domain/reminder.rs, `Recurrence::next_after`: local
-- wall-clock time, DST-correct) and passes it to cron_begin_reminder, which stores it in
-- reminders.next_due_at, and to cron_fail_reminder. When the occurrence fails for good (final
-- failure, retries exhausted) or its outcome is unknown (a Graph timeout, a run that died
-- mid-send), the occurrence is split off the series as a one-off reminder of its own
-- (occurrence_of = the series, status failed) that carries the failure — its dead letter entry
-- and re-drive, or, for an unknown outcome, nothing that could ever send it again — and the
-- series is pending again at its next occurrence.
-- Every function here is for the service role only (the cron routes).
-- Runs unchanged on hosted Supabase: no roles, no superuser-only statements.

-- =============================================================================================
-- Columns and indexes
-- =============================================================================================

-- The columns (reminders.retry_at, lease_token, next_due_at, occurrence_of; messages.reminder_id)
-- are part of their tables in 20261123000001_schema.sql.
create index reminders_sending_lease_idx on public.reminders (lease_until) where status = 'sending';
create index reminders_occurrence_of_idx on public.reminders (occurrence_of) where occurrence_of is not null;

create index messages_reminder_id_idx on public.messages (reminder_id) where reminder_id is not null;

create index dead_letter_queue_kind_ref_idx on public.dead_letter_queue (kind, ref)
  where status in ('pending', 'retrying');

-- =============================================================================================
-- Helpers (private: not exposed by PostgREST)
-- =============================================================================================

-- The wait before the next attempt: base * 2^(attempts-1), at most 6 hours.
create or replace function private.cron_backoff(p_attempts int, p_base_seconds int)
returns interval
language sql
immutable
set search_path = ''
as $$
  select least(interval '6 hours',
               make_interval(secs => greatest(p_base_seconds, 0)
                                     * power(2, least(greatest(p_attempts - 1, 0), 20))));
$$;

-- A uuid from text, or null when the text is not one (dead letter refs are free text).
create or replace function private.try_uuid(p_text text)
returns uuid
language sql
immutable
set search_path = ''
as $$
  select case when p_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then p_text::uuid end;
$$;

-- Everything needed to send one claimed reminder: the contact, the contact's most recent
-- conversation with one of the org's numbers (and whether its 24 h window is open), the
-- org's reminder template.
create or replace function private.cron_reminder_claim(p_reminder_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', r.id, 'token', r.lease_token, 'text', r.text, 'due_at', r.due_at,
    'recurrence', r.recurrence, 'timezone', r.timezone, 'attempts', r.attempts,
    'wa_id', c.wa_id, 'user_id', c.user_id, 'conversation_id', v.id, 'phone_number_id', v.phone_number_id,
    'window_open', private.window_open(v.last_inbound_at),
    'reminder_template', private.usable_template(r.org_id, s.reminder_template, s.template_language),
    'template_language', private.template_language(s.template_language))
  from public.reminders r
  join public.contacts c on c.id = r.contact_id
  left join lateral (
    select cv.id, cv.last_inbound_at, n.phone_number_id
    from public.conversations cv
    join public.whatsapp_numbers n on n.id = cv.whatsapp_number_id
    where cv.contact_id = r.contact_id and cv.org_id = r.org_id and cv.group_id is null
    order by cv.last_inbound_at desc nulls last, cv.created_at desc
    limit 1
  ) v on true
  left join public.assistant_settings s on s.org_id = r.org_id
  where r.id = p_reminder_id;
$$;

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
-- continues at its stored next_due_at), its outbound message left `sending` for the outcome
-- resolver (naming the occurrence, which it settles), its open dead letter entry discarded (a
-- re-drive must never send it again), an alert per org. The failed
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
  v_orgs uuid[] := '{}'::uuid[];
  v_org uuid;
  v_count int := 0;
begin
  for r in select * from public.reminders where id = any (p_ids) for update loop
    v_occurrence := private.cron_fail_occurrence(r.id, r.next_due_at, v_error, true);
    -- Its message stays `sending`: the outcome resolver confirms or resends it, then settles
    -- this occurrence (private.whatsapp_settle_answered).
    update public.messages
    set payload = payload || jsonb_build_object('occurrence', v_occurrence)
    where reminder_id = r.id and status = 'sending';
    update public.dead_letter_queue
    set status = 'discarded', lease_until = null, resolved_at = now(), error = v_error
    where kind = 'reminder' and ref = v_occurrence::text and status in ('pending', 'retrying');
    v_orgs := v_orgs || r.org_id;
    v_count := v_count + 1;
  end loop;
  for v_org in select distinct unnest(v_orgs) loop
    perform private.raise_alert(v_org, 'reminder_outcome_unknown', 'warning',
      'A reminder''s send outcome is unknown; it is confirmed by its status or sent again once WhatsApp shows it was never accepted.');
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

-- Discards dead letter entries past the last attempt (one of them, or every due one), with
-- a critical alert per org naming the reason (the attempts and the last error); an inbound
-- message discarded so is never claimed again (messages.discarded_at). Returns how many were
-- discarded.
create or replace function private.cron_discard_exhausted(p_max_attempts int, p_only uuid default null)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_rows jsonb;
  v_count int;
  v_org uuid;
  v_reason text;
begin
  with discarded as (
    update public.dead_letter_queue d
    set status = 'discarded', lease_until = null, resolved_at = now()
    where d.attempts >= p_max_attempts
      and d.kind in ('inbound_message', 'reminder')
      and case when p_only is null
               then d.next_attempt_at <= now()
                    and (d.status = 'pending' or (d.status = 'retrying' and d.lease_until < now()))
               else d.id = p_only and d.status in ('pending', 'retrying') end
    returning d.org_id, d.kind, d.ref, d.attempts, d.error
  )
  select count(*)::int,
         coalesce(jsonb_agg(jsonb_build_object('org_id', org_id, 'kind', kind, 'ref', ref,
                                               'attempts', attempts, 'error', error)), '[]')
  into v_count, v_rows from discarded;

  update public.messages m
  set discarded_at = now(), lease_until = null
  from jsonb_array_elements(v_rows) x
  where x ->> 'kind' = 'inbound_message' and m.id = private.try_uuid(x ->> 'ref')
    and m.discarded_at is null;

  for v_org, v_reason in
    select distinct on (x ->> 'org_id') (x ->> 'org_id')::uuid,
           format('%s work failed %s attempts (last error: %s)',
                  replace(x ->> 'kind', '_', ' '), x ->> 'attempts', left(x ->> 'error', 300))
    from jsonb_array_elements(v_rows) x
  loop
    perform private.raise_alert(v_org, 'dead_letter_discarded', 'critical',
      format('Discarded: %s; see dead_letter_queue (status discarded).', v_reason));
  end loop;
  return v_count;
end;
$$;

-- Gives up reminder p_id for good after its last attempt (a claim past p_max_attempts): its
-- occurrence failed (private.cron_fail_occurrence; a recurring series continues at a stored
-- next_due_at, else it ends), its dead letter entry discarded (created if it has none), and a
-- critical dead_letter_discarded alert naming p_reason. Never claimed or re-driven again.
create or replace function private.cron_discard_reminder(p_id uuid, p_reason text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  r public.reminders;
  v_occurrence uuid;
begin
  select * into r from public.reminders where id = p_id for update;
  if not found then
    return;
  end if;
  v_occurrence := private.cron_fail_occurrence(r.id, r.next_due_at, p_reason, false);
  update public.dead_letter_queue
  set status = 'discarded', lease_until = null, resolved_at = now(), error = p_reason,
      attempts = greatest(attempts, r.attempts)
  where kind = 'reminder' and ref = v_occurrence::text and status in ('pending', 'retrying');
  if not found then
    insert into public.dead_letter_queue
      (org_id, kind, ref, payload, error, attempts, status, resolved_at)
    values (r.org_id, 'reminder', v_occurrence::text,
            jsonb_strip_nulls(jsonb_build_object(
              'reminder_id', v_occurrence, 'due_at', r.due_at,
              'occurrence_of', case when v_occurrence <> r.id then r.id end)),
            p_reason, r.attempts, 'discarded', now());
  end if;
  perform private.raise_alert(r.org_id, 'dead_letter_discarded', 'critical',
    format('A reminder was discarded: %s; see dead_letter_queue (status discarded).',
           left(p_reason, 300)));
end;
$$;

-- =============================================================================================
-- check-reminders
-- =============================================================================================

-- Claims up to p_limit due reminders for p_lease_seconds. Reminders of opted-out contacts are
-- cancelled instead; sends whose lease ran out (outcome unknown) are marked failed
-- (private.cron_mark_unknown). Every claim counts an attempt (whatever ends it: a failure, a
-- panic, a crash; cron_release_reminders gives it back for a claim never begun); a reminder
-- claimed p_max_attempts times already is poison: discarded (private.cron_discard_reminder).
-- Returns {reminders: [claim], skipped: int, unknown: int, discarded: int}.
create or replace function public.cron_claim_reminders(
  p_limit int, p_lease_seconds int, p_max_attempts int default 5)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_stale uuid[];
  v_ids uuid[];
  v_unknown int;
  v_skipped int;
  v_poison uuid[];
  v_id uuid;
begin
  -- Sends whose run stopped before recording the outcome: never sent again.
  select coalesce(array_agg(s.id), '{}') into v_stale
  from (
    select r.id from public.reminders r
    where r.status = 'sending' and r.lease_until < now()
    order by r.lease_until
    limit p_limit
    for update skip locked
  ) s;
  v_unknown := private.cron_mark_unknown(v_stale, 'the run sending it stopped');

  select coalesce(array_agg(d.id), '{}') into v_ids
  from (
    select r.id
    from public.reminders r
    where r.status = 'pending'
      and r.due_at <= now()
      and (r.retry_at is null or r.retry_at <= now())
      and (r.lease_until is null or r.lease_until < now())
    order by r.due_at
    limit p_limit
    for update skip locked
  ) d;

  with cancelled as (
    update public.reminders r
    set status = 'cancelled', lease_until = null, lease_token = null,
        last_error = 'not sent: the contact opted out'
    from public.contacts c
    where r.id = any (v_ids) and c.id = r.contact_id and c.opted_out
    returning r.id
  )
  select count(*) into v_skipped from cancelled;

  select coalesce(array_agg(r.id), '{}') into v_poison
  from public.reminders r
  where r.id = any (v_ids) and r.status = 'pending' and r.attempts >= p_max_attempts;
  foreach v_id in array v_poison loop
    perform private.cron_discard_reminder(v_id, format(
      'discarded after %s attempts (last error: %s)',
      (select attempts from public.reminders where id = v_id),
      coalesce((select last_error from public.reminders where id = v_id),
               'none recorded: the attempt did not finish')));
  end loop;

  update public.reminders
  set lease_until = now() + make_interval(secs => p_lease_seconds),
      lease_token = gen_random_uuid(),
      attempts = attempts + 1
  where id = any (v_ids) and id <> all (v_poison) and status = 'pending';

  return jsonb_build_object(
    'reminders', coalesce((
      select jsonb_agg(private.cron_reminder_claim(r.id) order by r.due_at)
      from public.reminders r
      where r.id = any (v_ids) and r.id <> all (v_poison) and r.status = 'pending'), '[]'),
    'skipped', v_skipped,
    'unknown', v_unknown,
    'discarded', cardinality(v_poison));
end;
$$;

-- Moves a claimed reminder to `sending` and records its outbound message (status sending) on
-- the conversation; renews the lease; stores p_next_due_at, the next occurrence of a recurring
-- reminder (where the series continues whatever this send's outcome). Returns the message id,
-- or null when the claim is no longer this caller's (another run took it over, or it was
-- cancelled) or the contact opted out (the reminder is cancelled): do not send then.
create or replace function public.cron_begin_reminder(
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
  set status = 'sending',
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

  -- The lease token's holder sent it: recorded even when a status report overtook the answer.
  perform private.record_send_outcome(m.id, p_result, true)
  from public.messages m
  where m.id = p_message_id and m.reminder_id = p_reminder_id;

  update public.dead_letter_queue
  set status = 'resolved', resolved_at = now(), lease_until = null
  where kind = 'reminder' and ref = r.id::text and status in ('pending', 'retrying');
  return true;
end;
$$;

-- The send failed. p_mode: `retry` (known not sent: try again after a backoff, until
-- p_max_attempts), `final` (no point retrying now, e.g. no template), `unknown` (it may have
-- been sent: never again). An occurrence that fails for good (or again while it has an open
-- dead letter entry) is failed, with its dead letter entry (attempts and backoff) and an
-- alert; a recurring reminder continues at p_next_due_at (or the next_due_at stored when it
-- began) while the failed occurrence is split off (private.cron_fail_occurrence). p_alert
-- ({kind, severity, message}) is raised too. Returns retrying | failed | unknown, or null when
-- the token does not hold the reminder.
create or replace function public.cron_fail_reminder(
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

  if p_message_id is not null and p_mode <> 'unknown' then
    perform private.record_send_outcome(m.id, jsonb_build_object(
        'status', 'failed', 'error', jsonb_build_object('message', p_error)))
    from public.messages m
    where m.id = p_message_id and m.reminder_id = r.id;
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
-- next run takes them at once instead of after their lease, and gives back the attempt their
-- claim counted. p_claims: [{id, token}]; only the holder of a claim can release it. Returns how
-- many were released.
create or replace function public.cron_release_reminders(p_claims jsonb)
returns int
language sql
set search_path = ''
as $$
  with released as (
    update public.reminders r
    set lease_until = null, lease_token = null, attempts = greatest(r.attempts - 1, 0)
    from jsonb_to_recordset(p_claims) as c(id uuid, token uuid)
    where r.id = c.id and r.lease_token = c.token and r.status = 'pending'
    returning 1
  )
  select count(*)::int from released;
$$;

-- =============================================================================================
-- retry-failed
-- =============================================================================================

-- Discards due entries past the last attempt, then claims up to p_limit due dead letter
-- entries (inbound messages and reminders) for p_lease_seconds.
-- Returns {entries: [{id, kind, ref}], discarded: int}.
create or replace function public.cron_claim_dead_letters(
  p_limit int, p_lease_seconds int, p_max_attempts int)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_discarded int := private.cron_discard_exhausted(p_max_attempts);
  v_entries jsonb;
begin
  with due as (
    select d.id
    from public.dead_letter_queue d
    where d.kind in ('inbound_message', 'reminder')
      and d.next_attempt_at <= now()
      and (d.status = 'pending' or (d.status = 'retrying' and d.lease_until < now()))
    order by d.next_attempt_at
    limit p_limit
    for update skip locked
  ),
  claimed as (
    update public.dead_letter_queue d
    set status = 'retrying', lease_until = now() + make_interval(secs => p_lease_seconds)
    from due
    where d.id = due.id
    returning d.id, d.kind, d.ref, d.next_attempt_at
  )
  select coalesce(jsonb_agg(jsonb_build_object('id', id, 'kind', kind, 'ref', ref)
                            order by next_attempt_at), '[]')
  into v_entries from claimed;
  return jsonb_build_object('entries', v_entries, 'discarded', v_discarded);
end;
$$;

-- Takes a failed reminder back for one more attempt (claimed, as by cron_claim_reminders).
-- Returns its claim, or null when it is not failed any more (sent, cancelled, deleted...) or
-- must not be sent any more (private.cron_cancel_reason: the contact opted out, or the
-- occurrence's series was cancelled): it is cancelled then, and its dead letter entry settles
-- as discarded. The claim counts an attempt; a reminder claimed p_max_attempts times already is
-- discarded instead (private.cron_discard_reminder), and null returned.
create or replace function public.cron_redrive_reminder(
  p_reminder_id uuid, p_lease_seconds int, p_max_attempts int default 5)
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
  if r.attempts >= p_max_attempts then
    perform private.cron_discard_reminder(r.id, format('discarded after %s attempts (last error: %s)',
      r.attempts, coalesce(r.last_error, 'none recorded: the attempt did not finish')));
    return null;
  end if;

  update public.reminders
  set status = 'pending', retry_at = null,
      lease_until = now() + make_interval(secs => p_lease_seconds),
      lease_token = gen_random_uuid(),
      attempts = attempts + 1
  where id = r.id;
  return private.cron_reminder_claim(r.id);
end;
$$;

-- After one re-drive of a claimed entry: records the outcome the work's own functions did not
-- (a processed message resolves it; work that is gone or cancelled discards it; anything else
-- waits for its next attempt), then discards it if it is past the last attempt. p_error: the
-- re-drive itself failed (a database error, a panic) before the work could record an outcome:
-- that counts an attempt of the entry, with p_error as its error, so that an entry whose
-- re-drive always fails ends discarded too.
-- Returns the entry's status: resolved | pending | discarded.
create or replace function public.cron_settle_dead_letter(
  p_id uuid, p_max_attempts int, p_backoff_seconds int, p_error text default null)
returns text
language plpgsql
set search_path = ''
as $$
declare
  e public.dead_letter_queue;
  v_state text;
begin
  select * into e from public.dead_letter_queue where id = p_id for update;
  if not found then
    return null;
  end if;

  if e.status = 'retrying' and p_error is not null then
    update public.dead_letter_queue
    set attempts = attempts + 1, error = p_error
    where id = p_id
    returning * into e;
  end if;

  if e.status = 'retrying' then
    if e.kind = 'inbound_message' then
      select case status when 'processed' then 'resolved' else 'pending' end into v_state
      from public.messages where id = private.try_uuid(e.ref);
    else
      select case status when 'failed' then 'pending' when 'cancelled' then 'discarded'
                         else 'resolved' end into v_state
      from public.reminders where id = private.try_uuid(e.ref);
    end if;
    v_state := coalesce(v_state, 'discarded');
    update public.dead_letter_queue
    set status = v_state, lease_until = null,
        resolved_at = case when v_state = 'pending' then null else now() end,
        next_attempt_at = case when v_state = 'pending'
                               then now() + private.cron_backoff(e.attempts, p_backoff_seconds)
                               else next_attempt_at end
    where id = p_id;
  end if;

  if private.cron_discard_exhausted(p_max_attempts, p_id) > 0 then
    return 'discarded';
  end if;
  return (select status from public.dead_letter_queue where id = p_id);
end;
$$;

-- Inbound messages stored but never processed: `received` for longer than p_min_age_seconds
-- (a full in-process backlog leaves them there) or `processing` with an expired lease (its
-- attempt ended without an outcome: a crash). One past its last attempt is listed too: its
-- claim discards it (whatsapp_claim_message). Discarded messages never are.
-- Returns up to p_limit message ids, oldest first.
create or replace function public.cron_stuck_messages(p_limit int, p_min_age_seconds int)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(s.id order by s.created_at), '[]')
  from (
    select m.id, m.created_at
    from public.messages m
    where m.status in ('received', 'processing')
      and m.direction = 'inbound'
      and m.discarded_at is null
      and case m.status
            when 'received' then m.created_at < now() - make_interval(secs => p_min_age_seconds)
            else m.lease_until < now() end
    order by m.created_at
    limit p_limit
  ) s;
$$;

-- =============================================================================================
-- Privileges: service role only (the default privileges would let every role execute them)
-- =============================================================================================

revoke execute on function
  public.cron_claim_reminders(int, int, int),
  public.cron_begin_reminder(uuid, uuid, uuid, text, text, int, timestamptz),
  public.cron_finish_reminder(uuid, uuid, uuid, jsonb),
  public.cron_fail_reminder(uuid, uuid, uuid, text, text, int, int, jsonb, timestamptz),
  public.cron_release_reminders(jsonb),
  public.cron_claim_dead_letters(int, int, int),
  public.cron_redrive_reminder(uuid, int, int),
  public.cron_settle_dead_letter(uuid, int, int, text),
  public.cron_stuck_messages(int, int)
from public, anon, authenticated;
grant execute on function
  public.cron_claim_reminders(int, int, int),
  public.cron_begin_reminder(uuid, uuid, uuid, text, text, int, timestamptz),
  public.cron_finish_reminder(uuid, uuid, uuid, jsonb),
  public.cron_fail_reminder(uuid, uuid, uuid, text, text, int, int, jsonb, timestamptz),
  public.cron_release_reminders(jsonb),
  public.cron_claim_dead_letters(int, int, int),
  public.cron_redrive_reminder(uuid, int, int),
  public.cron_settle_dead_letter(uuid, int, int, text),
  public.cron_stuck_messages(int, int)
to service_role;

revoke execute on function
  private.cron_backoff(int, int),
  private.try_uuid(text),
  private.cron_reminder_claim(uuid),
  private.cron_fail_occurrence(uuid, timestamptz, text, boolean),
  private.cron_mark_unknown(uuid[], text),
  private.cron_cancel_reason(public.reminders),
  private.cron_discard_exhausted(int, uuid),
  private.cron_discard_reminder(uuid, text)
from public, anon, authenticated;
grant execute on function
  private.cron_backoff(int, int),
  private.try_uuid(text),
  private.cron_reminder_claim(uuid),
  private.cron_fail_occurrence(uuid, timestamptz, text, boolean),
  private.cron_mark_unknown(uuid[], text),
  private.cron_cancel_reason(public.reminders),
  private.cron_discard_exhausted(int, uuid),
  private.cron_discard_reminder(uuid, text)
to service_role;

-- =============================================================================================
-- Retention (/api/cron/retention): bounded deletes, each behind an index
-- =============================================================================================

-- Deletes up to p_limit rows of p_kind older than p_days days, oldest first; returns how many.
-- Kinds: webhooks (received_at), ai_requests (created_at; their tool executions go with them),
-- tool_executions (created_at), rate_limits (window_start), dead_letters and alerts (resolved
-- ones, by resolved_at), messages (per org, only where assistant_settings.message_retention_days
-- is set; p_days is ignored).
create or replace function public.cron_purge(p_kind text, p_days int, p_limit int)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_before timestamptz := now() - make_interval(days => coalesce(p_days, 0));
  v_count int;
begin
  if p_limit is null or p_limit < 1 or (p_kind <> 'messages' and coalesce(p_days, 0) < 1) then
    raise exception 'cron_purge: p_days >= 1 and p_limit >= 1 are required'
      using errcode = 'invalid_parameter_value';
  end if;
  case p_kind
    when 'webhooks' then
      delete from public.webhooks where id in (
        select w.id from public.webhooks w where w.received_at < v_before
        order by w.received_at limit p_limit);
    when 'ai_requests' then
      delete from public.ai_requests where id in (
        select r.id from public.ai_requests r where r.created_at < v_before
        order by r.created_at limit p_limit);
    when 'tool_executions' then
      delete from public.tool_executions where id in (
        select t.id from public.tool_executions t where t.created_at < v_before
        order by t.created_at limit p_limit);
    when 'rate_limits' then
      delete from public.rate_limits where (key, window_start) in (
        select r.key, r.window_start from public.rate_limits r where r.window_start < v_before
        order by r.window_start limit p_limit);
    when 'dead_letters' then
      delete from public.dead_letter_queue where id in (
        select d.id from public.dead_letter_queue d
        where d.status = 'resolved' and d.resolved_at < v_before
        order by d.resolved_at limit p_limit);
    when 'alerts' then
      delete from public.alerts where id in (
        select a.id from public.alerts a
        where a.status = 'resolved' and a.resolved_at < v_before
        order by a.resolved_at limit p_limit);
    when 'messages' then
      delete from public.messages where id in (
        select m.id from public.assistant_settings s
        cross join lateral (
          select m.id from public.messages m
          where m.org_id = s.org_id
            and m.created_at < now() - make_interval(days => s.message_retention_days)
            and m.status not in ('received', 'processing', 'sending')
          order by m.created_at limit p_limit) m
        where s.message_retention_days is not null
        limit p_limit);
    else
      raise exception 'cron_purge: unknown kind %', p_kind using errcode = 'invalid_parameter_value';
  end case;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

comment on function public.cron_purge(text, int, int) is
  'Retention: deletes up to p_limit rows of one kind past its age, oldest first; service_role only.';

revoke execute on function public.cron_purge(text, int, int) from public, anon, authenticated;
grant execute on function public.cron_purge(text, int, int) to service_role;

-- =============================================================================================
-- Monitor (/api/cron/monitor): threshold alerts opened and resolved
-- =============================================================================================

-- Computes every org's figures over the last p_window_seconds in one statement, each bounded by
-- an (org_id, created_at) index: error_rate (failed among processed + failed inbound messages),
-- webhook_latency (p95 of webhooks.latency_ms, by (org_id, received_at)), ai_latency (p95 of
-- ai_requests.latency_ms), tool_failure_rate (tool executions in error),
-- ai_cost (the budget period's AI cost and Meta's charges, from private.usage_totals, against
-- assistant_settings.monthly_cost_budget_usd), and db_latency (p_db_latency_ms, measured by the
-- caller; platform-wide, org null). p_limits holds the thresholds (error_rate,
-- tool_failure_rate as fractions; ai_latency_ms, db_latency_ms) and min_samples (the rates and
-- the p95 count only over at least that many rows in the window), p_alerts each kind's
-- {severity, message}. Opens an alert for each figure over its threshold unless one is open
-- or acknowledged (alerts_open_monitor_key), resolves the open or acknowledged ones whose
-- figure is back under (or has too little data in the window). Returns {"opened": n, "resolved": n}.
create or replace function public.cron_monitor(
  p_window_seconds int, p_limits jsonb, p_db_latency_ms numeric, p_alerts jsonb)
returns jsonb
language sql
set search_path = ''
as $$
  with figures (org_id, kind, over) as (
    select o.id, f.kind, coalesce(f.over, false)
    from public.orgs o
    cross join lateral (select now() - make_interval(secs => p_window_seconds) as at) w
    left join public.assistant_settings s on s.org_id = o.id
    left join lateral (
      select count(*) filter (where m.status = 'failed')::numeric / nullif(count(*), 0) as rate,
             count(*) as n
      from public.messages m
      where m.org_id = o.id and m.created_at >= w.at
        and m.direction = 'inbound' and m.status in ('processed', 'failed')) e on true
    left join lateral (
      select percentile_cont(0.95) within group (order by h.latency_ms) as p95, count(*) as n
      from public.webhooks h
      where h.org_id = o.id and h.received_at >= w.at and h.latency_ms is not null) h on true
    left join lateral (
      select percentile_cont(0.95) within group (order by r.latency_ms) as p95, count(*) as n
      from public.ai_requests r
      where r.org_id = o.id and r.created_at >= w.at and r.latency_ms is not null) a on true
    left join lateral (
      select count(*) filter (where t.status = 'error')::numeric / nullif(count(*), 0) as rate,
             count(*) as n
      from public.tool_executions t
      where t.org_id = o.id and t.created_at >= w.at) t on true
    left join lateral (
      select u.cost_usd + u.whatsapp_cost_usd as cost_usd from private.usage_totals u
      where u.org_id = o.id and u.bucket = 'period' and u.contact_id is null
        and u.starts_at = private.token_period_start(o.token_period_started_at)) c on true
    cross join lateral (select (p_limits ->> 'min_samples')::int as min_samples) k
    cross join lateral (values
      ('error_rate', e.n >= k.min_samples and e.rate > (p_limits ->> 'error_rate')::numeric),
      ('webhook_latency',
       h.n >= k.min_samples and h.p95 > (p_limits ->> 'webhook_latency_ms')::numeric),
      ('ai_latency', a.n >= k.min_samples and a.p95 > (p_limits ->> 'ai_latency_ms')::numeric),
      ('tool_failure_rate',
       t.n >= k.min_samples and t.rate > (p_limits ->> 'tool_failure_rate')::numeric),
      ('ai_cost', c.cost_usd > coalesce(s.monthly_cost_budget_usd, 100))) f(kind, over)
    union all
    select null, 'db_latency', p_db_latency_ms > (p_limits ->> 'db_latency_ms')::numeric
  ),
  opened as (
    insert into public.alerts (org_id, kind, severity, message)
    select f.org_id, f.kind, p_alerts -> f.kind ->> 'severity', p_alerts -> f.kind ->> 'message'
    from figures f
    where f.over
      and not exists (  -- an acknowledged alert stays the one of its kind until resolved
        select 1 from public.alerts a
        where a.org_id is not distinct from f.org_id and a.kind = f.kind
          and a.status = 'acknowledged')
    on conflict do nothing
    returning 1
  ),
  resolved as (
    update public.alerts a set status = 'resolved'
    where a.status in ('open', 'acknowledged')
      and a.kind in ('error_rate', 'webhook_latency', 'ai_latency', 'ai_cost', 'tool_failure_rate',
                     'db_latency')
      and not exists (
        select 1 from figures f
        where f.over and f.org_id is not distinct from a.org_id and f.kind = a.kind)
    returning 1
  )
  select jsonb_build_object(
    'opened', (select count(*) from opened), 'resolved', (select count(*) from resolved))
$$;

comment on function public.cron_monitor(int, jsonb, numeric, jsonb) is
  'Monitor: opens one alert per org and kind whose figure is over its threshold, resolves those back under; service_role only.';

revoke execute on function public.cron_monitor(int, jsonb, numeric, jsonb) from public, anon, authenticated;
grant execute on function public.cron_monitor(int, jsonb, numeric, jsonb) to service_role;
