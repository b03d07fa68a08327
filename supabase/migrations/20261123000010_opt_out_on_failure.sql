-- STOP and START count even when the rest of a message's processing fails.
--
-- The opt-out used to be recorded only by whatsapp_finish_message. When the confirmation could
-- not be sent (e.g. an expired access token), the message was dead-lettered and the opt-out
-- lost: reminders kept going to a contact who had said STOP. whatsapp_fail_message now takes
-- p_opt_out and records it first.

drop function if exists public.whatsapp_fail_message(uuid, text, uuid, jsonb, jsonb);

create or replace function public.whatsapp_fail_message(
  p_message_id uuid, p_error text, p_outbound_id uuid default null, p_alert jsonb default null,
  p_ledger jsonb default null, p_opt_out boolean default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
  v_pending int;
begin
  -- Contact first: the order whatsapp_ingest locks rows in.
  if p_opt_out is not null then
    update public.contacts c
    set opted_out = p_opt_out, opted_out_at = case when p_opt_out then now() end
    from public.messages mm
    where mm.id = p_message_id and c.id = mm.contact_id;
  end if;

  update public.messages
  set status = 'failed', lease_until = null, error = jsonb_build_object('message', p_error)
  where id = p_message_id
  returning * into m;
  if not found then
    return;
  end if;

  perform private.record_ledger(m, p_ledger);

  if p_outbound_id is not null then
    update public.messages
    set status = 'failed', error = jsonb_build_object('message', p_error), status_at = now()
    where id = p_outbound_id and status = 'sending';
  end if;

  update public.dead_letter_queue
  set attempts = m.attempts, error = p_error, status = 'pending',
      next_attempt_at = now() + least(interval '6 hours', interval '1 minute' * 2 ^ (m.attempts - 1))
  where kind = 'inbound_message' and ref = m.id::text and status in ('pending', 'retrying');
  if not found then
    insert into public.dead_letter_queue (org_id, kind, ref, payload, error, attempts, next_attempt_at)
    values (m.org_id, 'inbound_message', m.id::text,
            jsonb_build_object('message_id', m.id, 'wamid', m.wa_message_id), p_error, m.attempts,
            now() + least(interval '6 hours', interval '1 minute' * 2 ^ (m.attempts - 1)));
  end if;

  if p_alert is not null then
    perform private.raise_alert(m.org_id, p_alert ->> 'kind',
      coalesce(p_alert ->> 'severity', 'warning'), p_alert ->> 'message');
  end if;

  select count(*) into v_pending
  from public.dead_letter_queue
  where org_id = m.org_id and status in ('pending', 'retrying');
  if m.attempts >= 3 or v_pending >= 5 then
    perform private.raise_alert(m.org_id, 'processing_failures', 'critical',
      'WhatsApp messages keep failing to process; see dead_letter_queue');
  end if;
end;
$$;

revoke execute on function public.whatsapp_fail_message(uuid, text, uuid, jsonb, jsonb, boolean)
  from public, anon, authenticated;
grant execute on function public.whatsapp_fail_message(uuid, text, uuid, jsonb, jsonb, boolean)
  to service_role;
